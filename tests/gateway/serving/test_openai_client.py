"""OpenAI's own client against a service with ``openai: true``: two replicas of the reference
model server (byteleap.devnet.tiny_llm) behind the real gateway, desk and streaming proxy.

The replicas hold every stream after its first token until the test opens their gate: the
client has that token in hand while the rest is not generated yet, which a gateway that
buffered answers could never show (no timing is compared to a bound).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import openai
import pytest

from byteleap.devnet.tiny_llm import MODEL
from gateway.serving.replica_harness import Gateway, serving_gateway, spec, start_replica

pytestmark = pytest.mark.slow

TOKENS = 8
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say something"}
]


@pytest.fixture
async def replicas(free_port: Callable[[], int]) -> AsyncIterator[list[str]]:
    gated = {"TINY_LLM_GATE": "1"}
    with start_replica("-m byteleap.devnet.tiny_llm", free_port(), gated) as one:
        with start_replica("-m byteleap.devnet.tiny_llm", free_port(), gated) as two:
            yield [one, two]


@pytest.fixture
async def gateway(
    tmp_path: Path, free_port: Callable[[], int], replicas: list[str]
) -> AsyncIterator[Gateway]:
    async with serving_gateway(tmp_path, free_port(), replicas) as gw:
        yield gw


async def _generated(http: httpx.AsyncClient, endpoints: list[str]) -> list[list[float]]:
    """When each replica generated each of its tokens (asked of the replicas directly)."""
    return [(await http.get(f"http://{e}/stats")).json()["generated"] for e in endpoints]


async def test_the_openai_client_streams_through_the_gateway(
    gateway: Gateway, replicas: list[str]
) -> None:
    await gateway.ready_service(spec("tiny", replicas=2, openai=True), replicas=2)
    direct = httpx.AsyncClient(trust_env=False, timeout=10)
    client = openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1/openai/tiny/v1",
        api_key=gateway.api_key,
        http_client=httpx.AsyncClient(trust_env=False, timeout=30),
        max_retries=0,
    )
    async with direct, client:
        models = await client.models.list()
        assert [m.id for m in models.data] == [MODEL]

        stream = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=TOKENS, stream=True
        )
        pieces: list[str] = []
        async for chunk in stream:
            content = chunk.choices[0].delta.content if chunk.choices else None
            if not content:
                continue
            if not pieces:
                first_at = time.time()
                # The first token is here; its replica waits at the gate for the others.
                assert sum(map(len, await _generated(direct, replicas))) == 1
                for endpoint in replicas:
                    await direct.post(f"http://{endpoint}/gate")
            pieces.append(content)
        assert len(pieces) == TOKENS and all(len(p) == 1 for p in pieces)
        streamed = "".join(pieces)
        made = sorted(t for times in await _generated(direct, replicas) for t in times)
        assert len(made) == TOKENS and made[0] < first_at < made[-1]

        # Not streamed: the same answer (the model is greedy and seeded), from the other
        # replica (least outstanding, then least served).
        whole = await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, max_tokens=TOKENS
        )
        assert whole.choices[0].message.content == streamed
        assert whole.usage is not None and whole.usage.completion_tokens == TOKENS
        assert [len(times) for times in await _generated(direct, replicas)] == [TOKENS, TOKENS]

        text = await client.completions.create(model=MODEL, prompt="Once", max_tokens=3)
        assert len(text.choices[0].text) == 3
