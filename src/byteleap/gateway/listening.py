"""How the gateway listens: TLS for REST and gRPC from ``tls_cert`` / ``tls_key``, and the
refusal to serve plain text on a public address.

Customers send their API key with every request, so a gateway bound to anything but loopback
must speak TLS itself, or be told (``insecure_public``, ``--insecure-public``) that TLS ends
in front of it: a reverse proxy on the same host, or a private network the operator trusts.
The checks run before anything starts, each a `ConfigError` that names the fix.
"""

from __future__ import annotations

import ipaddress
import ssl
from typing import Any

import grpc

from byteleap.config import ConfigError, GatewaySettings


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); everything else,
    names included, may be reached from elsewhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def public_bind_refusal(host: str, *, tls: bool, insecure_public: bool) -> str | None:
    """Why the gateway must not listen on ``host`` as configured, or None when it may."""
    if tls or insecure_public or is_loopback(host):
        return None
    return (
        f"gateway host {host!r} is not a loopback address and the gateway has no TLS: "
        "customers' API keys would cross the network in the clear. Set tls_cert and tls_key "
        "(PEM files; BYTELEAP_TLS_CERT / BYTELEAP_TLS_KEY), or end TLS in a reverse proxy "
        "in front of it and pass --insecure-public (insecure_public = true)"
    )


def check_listening(settings: GatewaySettings) -> None:
    """Refuse, before anything starts, a public plain-text bind or TLS files that do not load
    (missing, unreadable, or a key that is not the certificate's)."""
    tls = settings.tls_cert is not None
    why = public_bind_refusal(settings.host, tls=tls, insecure_public=settings.insecure_public)
    if why is not None:
        raise ConfigError(why, reason="insecure_public_bind")
    if settings.tls_cert is not None and settings.tls_key is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                settings.tls_cert, settings.tls_key
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"tls_cert {settings.tls_cert} / tls_key {settings.tls_key}: cannot be "
                f"loaded: {exc}",
                reason="tls_files",
            ) from None


def uvicorn_tls(settings: GatewaySettings) -> dict[str, Any]:
    """uvicorn.Config's TLS arguments (none: plain HTTP)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    return {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}


def grpc_credentials(settings: GatewaySettings) -> grpc.ServerCredentials | None:
    """The gRPC server's TLS credentials (None: plain text, like REST without TLS)."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    pair = (settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())
    return grpc.ssl_server_credentials([pair])
