"""What the customer command groups (``jobs``, ``leases``) share: which gateway, which API key,
and an SDK client that turns every `SdkError` into one line on stderr and exit status 1.

The gateway and key come from ``--gateway``/``--api-key`` or ``BYTELEAP_GATEWAY_URL`` and
``BYTELEAP_API_KEY``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from byteleap.sdk import Client, SdkError

EXIT_ERROR = 1
DEFAULT_GATEWAY = "http://127.0.0.1:8080"

GatewayOption = Annotated[
    str,
    typer.Option("--gateway", envvar="BYTELEAP_GATEWAY_URL", help="Gateway base URL."),
]
ApiKeyOption = Annotated[
    str,
    typer.Option("--api-key", envvar="BYTELEAP_API_KEY", help="Your API key.", show_default=False),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr; the caller raises what this returns."""
    typer.echo(message, err=True)
    return typer.Exit(EXIT_ERROR)


@contextmanager
def gateway_client(gateway: str, api_key: str) -> Iterator[Client]:
    if not api_key:
        raise fail("error: no API key (--api-key or BYTELEAP_API_KEY)")
    try:
        with Client(gateway, api_key) as client:
            yield client
    except SdkError as exc:
        raise fail(f"error: {exc}") from exc
