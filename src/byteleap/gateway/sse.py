"""Server-Sent Events framing for live job logs.

A stream is ``log`` events (``id`` = the line's seq, so a client that reconnects with
``Last-Event-ID`` resumes after it), a ``: keep-alive`` comment when nothing happened for a
while (so proxies keep the connection), and one ``end`` event carrying the job's final view —
or, when the stream is cut short (its API key was revoked), one ``error`` event instead,
carrying the error body with its HTTP status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from byteleap.protocol.api import JobView, LogEntry

KEEPALIVE_S = 15.0


def log_event(entry: LogEntry) -> str:
    return f"id: {entry.seq}\nevent: log\ndata: {entry.model_dump_json()}\n\n"


def end_event(view: JobView) -> str:
    return f"event: end\ndata: {view.model_dump_json()}\n\n"


def error_event(status: int, reason: str, detail: str) -> str:
    body = {"status": status, "error": reason, "detail": detail}
    return f"event: error\ndata: {json.dumps(body)}\n\n"


async def log_stream(
    entries: AsyncIterator[LogEntry],
    final_view: Callable[[], Awaitable[JobView]],
    *,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    """Frame ``entries`` as SSE, then the ``end`` event once they run out."""
    pending: asyncio.Task[LogEntry] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(entries))
            # wait without cancelling: cancelling anext() would close the generator
            done, _ = await asyncio.wait({pending}, timeout=keepalive_s)
            if not done:
                yield ": keep-alive\n\n"
                continue
            task, pending = pending, None
            try:
                entry = task.result()
            except StopAsyncIteration:
                break
            yield log_event(entry)
        yield end_event(await final_view())
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
        aclose = getattr(entries, "aclose", None)
        if aclose is not None:
            await aclose()
