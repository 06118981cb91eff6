"""Where a validator round's CPU goes: the meter of ``byteleap bench validator``.

The headline is ``time.process_time`` of the validator's own process over one real round
(``validator.rounds.RoundRunner``): every thread of it, the event loop's, BLAS's, the store
driver's, the TLS probes'. The stages split it by ``time.thread_time`` taken around each step
in the thread that runs it (no profiler, so nothing is slowed):

- ``sign``: btauth/1, signing each request and verifying each response: sha256 of the body and
  an sr25519 signature (``net.auth``);
- ``tls``: the client's TLS objects, handshakes and record encryption and decryption, and each
  miner's pinned-certificate probe (``net.tls``);
- ``parse``: a miner's verified answer into its message (``net.miner_client.parse_answer``);
- ``verify``: ``proof.verify``, the commitment's signature, Merkle proofs, row hashes and the
  recomputed entries;
- ``store``: the listing, issuing and recording of the round's challenges (``record_listing``,
  ``RoundRunner._issue`` and ``_finish``), counted over their own coroutine steps only, not
  over what other tasks run while they wait;
- ``loop_other``: the rest of the event loop's thread (httpx, asyncio, the small messages,
  the round's bookkeeping);
- ``other_threads``: every other thread not counted above (aiosqlite's, BLAS workers').

The meter wraps module attributes for the length of the round; the benchmark's validator runs
in a process of its own, so nothing else sees them.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any, TypeVar

from byteleap.net import miner_client
from byteleap.proof import Reveal
from byteleap.validator import batch, rounds

T = TypeVar("T")

STAGES = ("sign", "tls", "parse", "verify", "store")


class StageMeter:
    def __init__(self) -> None:
        self.cpu_s: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.off_loop_s = 0.0  # of cpu_s, what ran outside the event loop's thread
        self.reveal_bytes: list[int] = []
        self.answer_bytes = 0
        self.answers: Counter[str] = Counter()  # miners' answers by message
        self._loop_thread = threading.get_ident()

    def add(self, stage: str, seconds: float) -> None:
        self.cpu_s[stage] += seconds
        if threading.get_ident() != self._loop_thread:
            self.off_loop_s += seconds

    @contextlib.contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        started = time.thread_time()
        try:
            yield
        finally:
            self.add(stage, time.thread_time() - started)

    def timed(self, stage: str, fn: Callable[..., T]) -> Callable[..., T]:
        def metered(*args: Any, **kwargs: Any) -> T:
            with self.timing(stage):
                return fn(*args, **kwargs)

        return metered

    def exclusive(self, stage: str, coro: Coroutine[Any, Any, T]) -> Awaitable[T]:
        """``coro``, with the CPU of its own steps counted to ``stage``."""
        return _Exclusive(coro, lambda seconds: self.add(stage, seconds))

    def ssl_object_class(self) -> type[ssl.SSLObject]:
        meter = self

        class MeteredSSLObject(ssl.SSLObject):
            def do_handshake(self) -> None:
                with meter.timing("tls"):
                    super().do_handshake()

            def read(self, len: int = 1024, buffer: Any = None) -> Any:
                with meter.timing("tls"):
                    return super().read(len, buffer)

            def write(self, data: Any) -> int:
                with meter.timing("tls"):
                    return super().write(data)

            def unwrap(self) -> Any:
                with meter.timing("tls"):
                    return super().unwrap()

        return MeteredSSLObject


class _Exclusive(Awaitable[T]):
    """Drives a coroutine step by step and times each step: what it costs itself, without the
    tasks that run while it waits."""

    def __init__(self, coro: Coroutine[Any, Any, T], add: Callable[[float], None]) -> None:
        self._coro = coro
        self._add = add

    def __await__(self) -> Generator[Any, Any, T]:
        coro = self._coro
        value: Any = None
        error: BaseException | None = None
        while True:
            started = time.thread_time()
            try:
                yielded = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as done:
                self._add(time.thread_time() - started)
                return done.value  # type: ignore[no-any-return]
            except BaseException:
                self._add(time.thread_time() - started)
                raise
            self._add(time.thread_time() - started)
            try:
                value, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and friends go on into the coroutine
                value, error = None, exc


Wrap = Callable[[Any], Any]  # the original attribute -> its metered stand-in


@contextlib.contextmanager
def instrumented(meter: StageMeter) -> Iterator[None]:
    """Wrap the round's steps with ``meter`` until the block ends."""
    tls_class = meter.ssl_object_class()

    def pinned_context(pinned: Callable[..., ssl.SSLContext]) -> Callable[..., ssl.SSLContext]:
        def metered(*args: Any, **kwargs: Any) -> ssl.SSLContext:
            with meter.timing("tls"):
                context = pinned(*args, **kwargs)
            context.sslobject_class = tls_class  # every connection's TLS object is metered
            return context

        return metered

    def parsing(parse: Callable[[type[Any], bytes], Any]) -> Callable[[type[Any], bytes], Any]:
        def metered(answer: type[Any], content: bytes) -> Any:
            meter.answer_bytes += len(content)
            meter.answers[answer.__name__] += 1
            if answer is Reveal:
                meter.reveal_bytes.append(len(content))
            with meter.timing("parse"):
                return parse(answer, content)

        return metered

    def storing(step: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Awaitable[Any]]:
        def metered(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return meter.exclusive("store", step(*args, **kwargs))

        return metered

    def signing(fn: Callable[..., Any]) -> Callable[..., Any]:
        return meter.timed("sign", fn)

    def verifying(fn: Callable[..., Any]) -> Callable[..., Any]:
        return meter.timed("verify", fn)

    patches: list[tuple[object, str, Wrap]] = [
        (miner_client, "sign_request", signing),
        (miner_client, "verify_response", signing),
        (miner_client, "pinned_context_for", pinned_context),
        (miner_client, "parse_answer", parsing),
        (batch, "verify", verifying),
        (rounds, "record_listing", storing),
        (rounds.RoundRunner, "_issue", storing),
        (rounds.RoundRunner, "_finish", storing),
    ]
    saved = [(target, name, getattr(target, name)) for target, name, _ in patches]
    try:
        for (target, name, wrap), (_, _, original) in zip(patches, saved, strict=True):
            setattr(target, name, wrap(original))
        yield
    finally:
        for target, name, original in saved:
            setattr(target, name, original)
