"""An async generator of the SDK read as a plain iterator, one step at a time, on the blocking
client's event-loop thread (`sync._LoopThread`). Log streams and streamed service answers
share it."""

from __future__ import annotations

import concurrent.futures
import contextlib
from collections.abc import AsyncGenerator, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Loop(Protocol):
    def run(self, coro: Coroutine[Any, Any, T]) -> T: ...

    @property
    def closed(self) -> bool: ...


def iterate(loop: Loop, items: AsyncGenerator[T, None]) -> Iterator[T]:
    """Each item of ``items`` as the loop produces it; closing the iterator (or leaving a
    ``for`` early) closes the generator, and with it the HTTP stream, on the loop."""

    async def step() -> T:
        return await anext(items)

    try:
        while True:
            try:
                yield loop.run(step())
            except StopAsyncIteration:
                return
    finally:
        if not loop.closed:
            with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
                # RuntimeError: a Ctrl-C left the stream mid-step; it is torn down anyway
                loop.run(items.aclose())
