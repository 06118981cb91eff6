"""The reference model server (byteleap.devnet.tiny_llm): OpenAI's response and chunk formats,
deterministic output, one token at a time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from byteleap.devnet.tiny_llm import MODEL, create_app

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 12}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://tiny") as client:
        yield client


def _events(body: str) -> list[str]:
    assert body.endswith("\n\n")
    lines = body.split("\n\n")[:-1]
    assert all(line.startswith("data: ") for line in lines)
    return [line.removeprefix("data: ") for line in lines]


async def test_models_lists_the_model(http: httpx.AsyncClient) -> None:
    r = await http.get("/v1/models")
    assert r.json()["data"][0]["id"] == MODEL and r.json()["object"] == "list"


async def test_a_chat_completion_is_deterministic_printable_and_as_long_as_asked(
    http: httpx.AsyncClient,
) -> None:
    first = (await http.post("/v1/chat/completions", json=CHAT)).json()
    again = (await http.post("/v1/chat/completions", json=CHAT)).json()
    text = first["choices"][0]["message"]["content"]
    assert first["object"] == "chat.completion" and first["choices"][0]["finish_reason"]
    assert len(text) == 12 and text.isprintable()
    assert again["choices"][0]["message"]["content"] == text
    assert first["usage"]["completion_tokens"] == 12


async def test_a_streamed_chat_sends_one_chunk_per_token_then_done(
    http: httpx.AsyncClient,
) -> None:
    whole = (await http.post("/v1/chat/completions", json=CHAT)).json()
    r = await http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    assert sum(1 for d in deltas if d) == 12  # a chunk per token
    assert "".join(deltas) == whole["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_completions_stream_and_not(http: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "prompt": "Once", "max_tokens": 5}
    whole = (await http.post("/v1/completions", json=body)).json()
    assert whole["object"] == "text_completion"
    text = whole["choices"][0]["text"]
    events = _events((await http.post("/v1/completions", json={**body, "stream": True})).text)
    assert events[-1] == "[DONE]"
    streamed = "".join(json.loads(e)["choices"][0]["text"] for e in events[:-1])
    assert streamed == text and len(text) == 5
