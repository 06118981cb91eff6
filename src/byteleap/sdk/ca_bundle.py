"""Which certificate authorities the SDK trusts for the gateway's TLS.

By default the system's (certifi, or ``SSL_CERT_FILE``), as httpx does. A gateway whose
certificate a private CA signed (or a self-signed test gateway) is reached with that CA's PEM
file: ``ca_bundle=`` on the client, ``--ca-bundle`` on the CLI, or ``BYTELEAP_CA_BUNDLE``.
The bundle replaces the system's CAs, so a certificate from any other CA is refused.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from byteleap.sdk.errors import SdkError

CA_BUNDLE_ENV = "BYTELEAP_CA_BUNDLE"


def tls_context(ca_bundle: str | Path | None = None) -> ssl.SSLContext | None:
    """A context trusting ``ca_bundle`` (else ``$BYTELEAP_CA_BUNDLE``); None: the default
    trust, left to httpx and websockets. An unreadable bundle is an `SdkError` now, not a
    confusing handshake failure later."""
    path = ca_bundle if ca_bundle is not None else os.environ.get(CA_BUNDLE_ENV) or None
    if path is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise SdkError(f"CA bundle {path}: cannot be loaded: {exc}", reason="ca_bundle") from None


def untrusted_hint(exc: BaseException) -> str:
    """A pointer to the fix when ``exc`` (or what caused it) is a refused certificate."""
    seen: BaseException | None = exc
    for _ in range(8):  # httpx wraps httpcore wraps ssl
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
            seen
        ):
            return (
                " (the gateway's certificate is not trusted: give the CA that signed it with "
                f"ca_bundle, --ca-bundle or {CA_BUNDLE_ENV})"
            )
        seen = seen.__cause__ or seen.__context__
    return ""
