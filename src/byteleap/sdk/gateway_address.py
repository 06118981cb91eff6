"""The gateway's address as the SDK uses it, and why it could not be reached, in words.

`gateway_base_url` takes what a user typed (``--gateway``, ``BYTELEAP_GATEWAY_URL``, the
client's ``base_url``) and gives the base every request path is joined to: no trailing slash,
so ``http://host:8080/`` never turns into ``http://host:8080//v1``, and an address the SDK
cannot use (no ``http://``/``https://``, no host, a query) is refused at once as an `SdkError`
with reason ``bad_url`` instead of failing later as a confusing connection error.

`why_unreachable` turns a transport failure (httpx's, or websockets' ``OSError``) into a short
phrase for `GatewayUnreachable` — "connection refused", "unknown host …" — rather than the
exception's repr.
"""

from __future__ import annotations

import socket
import ssl

import httpx

from byteleap.sdk.ca_bundle import untrusted_hint
from byteleap.sdk.errors import SdkError

_SCHEMES = ("http", "https")
_CAUSE_DEPTH = 8  # httpx wraps httpcore wraps anyio wraps the OSError


def gateway_base_url(url: str) -> str:
    """``url`` with surrounding spaces and trailing slashes removed; `SdkError` (reason
    ``bad_url``) for an address that is not an ``http(s)://host[:port][/prefix]`` URL."""
    text = url.strip()
    if not text:
        raise _bad(url, "it is empty")
    if any(c.isspace() for c in text):
        raise _bad(url, "it contains spaces")
    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise _bad(url, str(exc)) from None
    if parsed.scheme not in _SCHEMES or "://" not in text:
        raise _bad(url, f"it must start with http:// or https:// (e.g. http://{_hostish(text)})")
    if not parsed.host:
        raise _bad(url, "it names no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise _bad(url, f"port {parsed.port} is not 1 to 65535")
    if parsed.query or parsed.fragment:
        raise _bad(url, "a gateway address takes no query or fragment")
    return text.rstrip("/")


def why_unreachable(exc: BaseException) -> str:
    """What went wrong reaching the gateway, from ``exc`` and what caused it."""
    hint = untrusted_hint(exc)
    if hint:
        return f"TLS certificate refused ({_verify_failure(exc)}){hint}"
    if isinstance(exc, httpx.TimeoutException) or isinstance(exc, TimeoutError):
        return f"no answer in time ({_words(type(exc).__name__)})"
    seen: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if seen is None:
            break
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused (is the gateway running at that address?)"
        if isinstance(seen, socket.gaierror):
            return f"unknown host ({seen.strerror or seen})"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[0].lower() + seen.strerror[1:]
        seen = seen.__cause__ or seen.__context__
    return str(exc) or _words(type(exc).__name__)


def _verify_failure(exc: BaseException) -> str:
    """``CERTIFICATE_VERIFY_FAILED: self-signed certificate`` from the ssl error in the chain."""
    seen: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"{seen.reason}: {seen.verify_message}"
        if seen is None:
            break
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED"


def _bad(url: str, why: str) -> SdkError:
    return SdkError(f"bad gateway URL {url!r}: {why}", reason="bad_url")


def _hostish(text: str) -> str:
    return text.split("://", 1)[-1].lstrip("/") or "127.0.0.1:8080"


def _words(name: str) -> str:
    """``ReadTimeout`` → ``read timeout``."""
    return "".join(" " + c.lower() if c.isupper() else c for c in name).strip()
