"""What a doctor check returns, and the bound every check runs under.

A check is an async function that returns one `Finding` or several; `bounded` gives it a
deadline so that `byteleap doctor` never hangs on a dead endpoint or a stuck driver, and
`blocking` runs a blocking call (NVML, a keyfile, a socket) in a daemon thread, which a
process can exit past if it never returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail", "skip"]
T = TypeVar("T")

#: The default deadline of one check, in seconds.
CHECK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Finding:
    """One line of the report: the check, what it found and, on warn/fail, how to fix it."""

    status: Status
    check: str
    detail: str
    fix: str | None = None
    role: str = ""

    def for_role(self, role: str) -> Finding:
        return Finding(self.status, self.check, self.detail, self.fix, role)


def ok(check: str, detail: str) -> Finding:
    return Finding("ok", check, detail)


def skip(check: str, why: str) -> Finding:
    return Finding("skip", check, why)


def warn(check: str, detail: str, fix: str) -> Finding:
    return Finding("warn", check, detail, fix)


def fail(check: str, detail: str, fix: str) -> Finding:
    return Finding("fail", check, detail, fix)


async def blocking(fn: Callable[[], T]) -> T:
    """``fn()`` in a daemon thread: awaiting it can be abandoned (a deadline), and a call that
    never returns does not keep the process from exiting, as an executor's thread would."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]

    def work() -> None:
        try:
            result: T | None = fn()
            error: BaseException | None = None
        except BaseException as exc:  # handed to the awaiting task, raised there
            result, error = None, exc
        # The loop is closed when the check was abandoned and doctor has finished.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="doctor-check", daemon=True).start()
    return await future


async def bounded(
    check: str,
    work: Awaitable[Finding | Sequence[Finding]],
    *,
    timeout_s: float = CHECK_TIMEOUT_S,
    fix: str,
) -> list[Finding]:
    """``work``'s findings, or one ``fail`` naming the check when it takes over ``timeout_s``
    or raises something a check did not expect (a bug there must not hide the other lines)."""
    try:
        found = await asyncio.wait_for(work, timeout_s)
    except TimeoutError:
        return [fail(check, f"no answer in {timeout_s:g} s", fix)]
    except Exception as exc:
        log.debug("check %s raised", check, exc_info=True)
        return [fail(check, f"check failed: {type(exc).__name__}: {exc}", fix)]
    return [found] if isinstance(found, Finding) else list(found)
