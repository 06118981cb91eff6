"""What the customer command groups (``jobs``, ``leases``, ``services``) share: which gateway,
which API key, an SDK client that turns every `SdkError` into one line on stderr and exit
status 1, a spec file, and how a record or a listing is printed.

The gateway and key come from ``--gateway``/``--api-key`` or ``BYTELEAP_GATEWAY_URL`` and
``BYTELEAP_API_KEY`` (a trailing slash on the address is dropped; an address that is no
http(s) URL is refused in one line); a gateway whose certificate a private CA signed is
trusted with ``--ca-bundle`` or ``BYTELEAP_CA_BUNDLE`` (that CA's PEM file).

Every command that prints a record or a list takes ``--json``: one JSON document on stdout,
the API's own shape (times in epoch seconds); without it, text for people (times ISO 8601).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel

from byteleap.commands.render import table
from byteleap.sdk import Client, SdkError

Listed = TypeVar("Listed", bound=BaseModel)
T = TypeVar("T")

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
CaBundleOption = Annotated[
    Path | None,
    typer.Option(
        "--ca-bundle",
        envvar="BYTELEAP_CA_BUNDLE",
        help="PEM file of the CA that signed the gateway's TLS certificate (default: the "
        "system's CAs).",
        dir_okay=False,
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
SpecFileOption = Annotated[
    Path | None,
    typer.Option(
        "--spec",
        "--spec-file",
        help="A JSON spec file; options given on the command line go on top of it.",
        dir_okay=False,
        show_default=False,
    ),
]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")]


def fail(message: str) -> typer.Exit:
    """Print ``message`` to stderr; the caller raises what this returns."""
    typer.echo(message, err=True)
    return typer.Exit(EXIT_ERROR)


def require_key(api_key: str) -> None:
    if not api_key:
        raise fail("error: no API key (--api-key or BYTELEAP_API_KEY)")


def run_customer(work: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine (an exec session, a forward, a proxy); an SDK error is one
    line on stderr and exit 1, as for the blocking commands."""
    try:
        return asyncio.run(work)
    except SdkError as exc:
        raise fail(f"error: {exc}") from exc


@contextmanager
def gateway_client(gateway: str, api_key: str, ca_bundle: Path | None = None) -> Iterator[Client]:
    require_key(api_key)
    try:
        with Client(gateway, api_key, ca_bundle=ca_bundle) as client:
            yield client
    except SdkError as exc:
        raise fail(f"error: {exc}") from exc


def read_spec(path: Path | None) -> dict[str, Any]:
    """The JSON object in ``path`` (empty without one); a clear one-line error otherwise."""
    if path is None:
        return {}
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise fail(f"error: cannot read spec {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise fail(f"error: spec {path} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise fail(f"error: spec {path} is not a JSON object")
    return body


def echo_record(record: BaseModel, as_json: bool, show: Callable[[], None]) -> None:
    """A command's record: its JSON, or ``show()`` for people."""
    if as_json:
        typer.echo(record.model_dump_json(indent=2))
    else:
        show()


def echo_listing(
    items: Sequence[Listed],
    as_json: bool,
    headers: Sequence[str],
    row: Callable[[Listed], Sequence[str]],
) -> None:
    """A `list` command's output: one JSON array, or a table of ``row(item)`` under
    ``headers`` (each cell kept to one line)."""
    if as_json:
        typer.echo(json.dumps([item.model_dump(mode="json") for item in items], indent=2))
        return
    for line in table(headers, [row(item) for item in items]):
        typer.echo(line)
