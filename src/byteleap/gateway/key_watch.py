"""Open streams end soon after their API key is revoked.

A request is authenticated once, when it starts; a log stream (SSE or gRPC) or an exec
session may then run for hours. Each re-checks its key through the service (one indexed
store lookup) every ``every_s`` seconds and ends with `KeyRevoked` once the key no longer
authenticates. A failed check (the store is briefly unreachable) is not a revocation: the
stream goes on and the next check decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

from byteleap.gateway.errors import KeyRevoked, Unauthorized
from byteleap.gateway.port import CloudService

log = logging.getLogger(__name__)

T = TypeVar("T")
REVOKED_DETAIL = "the API key was revoked"


async def key_revoked(service: CloudService, api_key: str, every_s: float) -> None:
    """Return once ``api_key`` no longer authenticates (checked every ``every_s``)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await service.authenticate(api_key)
        except Unauthorized:
            return
        except Exception as exc:  # not an answer about the key: ask again next time
            log.warning("API key re-check failed", extra={"why": repr(exc)})


async def until_revoked(
    items: AsyncIterator[T], service: CloudService, api_key: str, every_s: float
) -> AsyncGenerator[T, None]:
    """``items`` as they come, until they end or the key is revoked (`KeyRevoked`, at most
    about ``every_s`` later, even while ``items`` is waiting for its next one)."""
    watch = asyncio.ensure_future(key_revoked(service, api_key, every_s))
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            # wait without cancelling the read: cancelling anext() would close ``items``
            racing: set[asyncio.Future[Any]] = {pending, watch}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            if watch.done():
                raise KeyRevoked(REVOKED_DETAIL)
            done, pending = pending, None
            try:
                item = done.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        for task in (watch, pending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        aclose = getattr(items, "aclose", None)  # the port promises an iterator only
        if aclose is not None:
            await aclose()
