"""A reference OpenAI-compatible model server that runs anywhere with nothing downloaded.

``PORT=8000 python -m byteleap.devnet.tiny_llm`` serves ``GET /v1/models``,
``POST /v1/chat/completions`` and ``POST /v1/completions`` (``stream`` true: server-sent
``data: {chunk}`` events in OpenAI's chunk format, ending ``data: [DONE]``), and
``GET /health``. The model is a tiny PyTorch transformer with deterministic random weights
over bytes (printable ASCII out): its text is nonsense, but it is generated a token at a
time, so a stream is a real one. Deploy it as a service with ``openai: true``.

For tests: ``GET /stats`` says when each token was generated, and with ``TINY_LLM_GATE=1``
every stream waits after its first token until ``POST /gate`` (so a test can tell a
streamed answer from a buffered one without timing anything).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

MODEL = "tiny-byte-lm"
CONTEXT = 128  # bytes of prompt and output the model sees
PRINTABLE = range(32, 127)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's many options are accepted, ignored
    model: str = MODEL
    messages: list[Message]
    max_tokens: int | None = Field(default=None, ge=1, le=512)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=512)
    stream: bool = False


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = MODEL
    prompt: str | list[str] = ""
    max_tokens: int | None = Field(default=16, ge=1, le=512)
    stream: bool = False


class TinyLM:
    """A 2-layer causal transformer over bytes; seeded, so every run says the same."""

    def __init__(self, seed: int = 0, dim: int = 64) -> None:
        import torch
        from torch import nn

        torch.manual_seed(seed)
        torch.set_num_threads(1)
        self.torch = torch
        self.embed = nn.Embedding(256, dim)
        self.position = nn.Embedding(CONTEXT, dim)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=4 * dim, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, 256)
        self.allowed = torch.full((256,), float("-inf"))
        self.allowed[list(PRINTABLE)] = 0.0
        for module in (self.embed, self.position, self.blocks, self.head):
            module.eval()

    def next_byte(self, context: bytes) -> int:
        """The most likely printable byte after ``context`` (greedy: deterministic)."""
        torch = self.torch
        ids = torch.tensor([list(context[-CONTEXT:]) or [32]])
        n = ids.shape[1]
        with torch.no_grad():
            x = self.embed(ids) + self.position(torch.arange(n))
            mask = torch.nn.Transformer.generate_square_subsequent_mask(n)
            logits = self.head(self.blocks(x, mask=mask, is_causal=True))[0, -1]
            return int((logits + self.allowed).argmax())


class Generator:
    def __init__(self, gated: bool) -> None:
        self.model = TinyLM()
        self.gate = asyncio.Event()
        self.gated = gated
        self.generated: list[float] = []  # when each token was made (time.time())

    async def tokens(self, prompt: bytes, n: int) -> AsyncIterator[str]:
        context = prompt
        for i in range(n):
            # off the event loop, so health checks and the gate are answered meanwhile
            token = await asyncio.to_thread(self.model.next_byte, context)
            self.generated.append(time.time())
            context += bytes([token])
            yield chr(token)
            if i == 0 and self.gated:
                await asyncio.wait_for(self.gate.wait(), 60)


def _chat_prompt(messages: list[Message]) -> bytes:
    text = "".join(f"{m.role}: {m.content or ''}\n" for m in messages) + "assistant: "
    return text.encode()


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


def create_app(gated: bool = False) -> FastAPI:
    app = FastAPI(title="tiny-llm")
    gen = Generator(gated)

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        return {"generated": gen.generated, "pid": os.getpid()}

    @app.post("/gate")
    async def open_gate() -> dict[str, bool]:
        gen.gate.set()
        return {"open": True}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        card = {"id": MODEL, "object": "model", "created": 0, "owned_by": "byteleap"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatRequest) -> StreamingResponse | JSONResponse:
        n = body.max_completion_tokens or body.max_tokens or 16
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": MODEL}
        tokens = gen.tokens(_chat_prompt(body.messages), n)
        if body.stream:

            async def events() -> AsyncIterator[bytes]:
                def chunk(delta: dict[str, str], finish: str | None) -> bytes:
                    choice = {"index": 0, "delta": delta, "finish_reason": finish}
                    return _sse({**head, "object": "chat.completion.chunk", "choices": [choice]})

                yield chunk({"role": "assistant", "content": ""}, None)
                async for token in tokens:
                    yield chunk({"content": token}, None)
                yield chunk({}, "length")
                yield _sse("[DONE]")

            return StreamingResponse(events(), media_type="text/event-stream")
        text = "".join([t async for t in tokens])
        message = {"role": "assistant", "content": text}
        return JSONResponse(
            {
                **head,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                "usage": _usage(len(_chat_prompt(body.messages)), n),
            }
        )

    @app.post("/v1/completions", response_model=None)
    async def completions(body: CompletionRequest) -> StreamingResponse | JSONResponse:
        n = body.max_tokens or 16
        prompt = (body.prompt if isinstance(body.prompt, str) else "".join(body.prompt)).encode()
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": MODEL}
        tokens = gen.tokens(prompt, n)

        def choice(text: str, finish: str | None) -> dict[str, Any]:
            return {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}

        if body.stream:

            async def events() -> AsyncIterator[bytes]:
                async for token in tokens:
                    yield _sse(
                        {**head, "object": "text_completion", "choices": [choice(token, None)]}
                    )
                yield _sse({**head, "object": "text_completion", "choices": [choice("", "length")]})
                yield _sse("[DONE]")

            return StreamingResponse(events(), media_type="text/event-stream")
        text = "".join([t async for t in tokens])
        return JSONResponse(
            {
                **head,
                "object": "text_completion",
                "choices": [choice(text, "length")],
                "usage": _usage(len(prompt), n),
            }
        )

    return app


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def main() -> None:
    import uvicorn

    app = create_app(gated=os.environ.get("TINY_LLM_GATE") == "1")
    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ["PORT"]))


if __name__ == "__main__":
    main()
