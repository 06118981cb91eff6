"""The devnet's inference step: an OpenAI-compatible service (the reference `tiny_llm`, a
tiny seeded PyTorch model, nothing downloaded) and one streamed chat completion through the
gateway's ``/v1/openai/{service}`` route, as a customer's OpenAI client would send it.

The summary gives the tokens, the time to the first and the whole answer (that the first token
arrives before the last is generated is proven without timing in
tests/gateway/serving/test_openai_client.py). Without torch installed (``make TORCH_SPEC=
devnet``) the step says so and passes.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time

import httpx

from byteleap.devnet.services import wait_for_service
from byteleap.devnet.state import DevnetError, DevnetState
from byteleap.devnet.summary import InferenceSummary
from byteleap.sdk import AsyncClient

NAME = "devnet-llm"
MAX_TOKENS = 24


async def step_inference(state: DevnetState) -> None:
    """A customer deploys a small model as an OpenAI-compatible service and streams a chat
    completion from it through the gateway."""
    if importlib.util.find_spec("torch") is None:
        state.summary.inference = InferenceSummary(skipped="torch is not installed")
        return
    spec = {
        "name": NAME,
        "openai": True,
        "command": [sys.executable, "-m", "byteleap.devnet.tiny_llm"],
        "autoscale": {"min_replicas": 1, "max_replicas": 1},
        "resources": {"ram_mib": 1024},  # torch alone takes more than the default 256 MiB
        "health": {"path": "/health", "start_timeout_s": 120},
    }
    async with AsyncClient(state.gateway_url, state.api_key, timeout=30) as client:
        service = await client.create_service(spec)
        try:
            await wait_for_service(
                state, client, service.id, "ready replica", lambda v: v.ready_replicas >= 1,
                timeout_s=150,
            )  # fmt: skip
            state.summary.inference = await _stream_once(state)
        finally:
            await client.delete_service(service.id)


async def _stream_once(state: DevnetState) -> InferenceSummary:
    url = f"{state.gateway_url}/v1/openai/{NAME}/v1/chat/completions"
    body = {
        "model": "tiny-byte-lm",
        "messages": [{"role": "user", "content": "Hello from the devnet"}],
        "max_tokens": MAX_TOKENS,
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {state.api_key}"}
    began = time.monotonic()
    text, chunks, first_at = "", 0, None
    async with httpx.AsyncClient(timeout=60) as http:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                raise DevnetError(f"chat completion: {response.status_code} {response.text}")
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content")
                if delta:
                    chunks += 1
                    first_at = first_at if first_at is not None else time.monotonic() - began
                    text += delta
                    state.progress(f"inference: {chunks} tokens")
    return InferenceSummary(
        tokens=chunks,
        text=text,
        seconds=round(time.monotonic() - began, 3),
        first_token_s=None if first_at is None else round(first_at, 3),
    )
