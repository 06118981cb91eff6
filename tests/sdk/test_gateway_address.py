"""The gateway address the SDK accepts, and how it says the gateway could not be reached."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

import byteleap.sdk as sdk
from byteleap.sdk import AsyncClient, Client
from byteleap.sdk.gateway_address import gateway_base_url
from gateway.live import ALICE_KEY, LiveGateway, tenants


@pytest.mark.parametrize(
    ("typed", "base"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        (" https://gw.example:443// ", "https://gw.example:443"),
        ("https://example.com/byteleap/", "https://example.com/byteleap"),  # behind a prefix
        ("http://[::1]:8080/", "http://[::1]:8080"),
    ],
)
def test_a_trailing_slash_is_dropped(typed: str, base: str) -> None:
    assert gateway_base_url(typed) == base


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "it is empty"),
        ("localhost:8080", "it must start with http:// or https:// (e.g. http://localhost:8080)"),
        ("127.0.0.1:8080", "it must start with http:// or https://"),
        ("ftp://gw", "it must start with http:// or https://"),
        ("http://", "it names no host"),
        ("http:///v1", "it names no host"),
        ("http://gw example", "it contains spaces"),
        ("http://gw:99999", "port 99999 is not 1 to 65535"),
        ("http://gw/?x=1", "a gateway address takes no query or fragment"),
    ],
)
def test_an_address_that_is_no_gateway_url_is_refused_at_once(typed: str, why: str) -> None:
    with pytest.raises(sdk.SdkError, match="bad gateway URL") as caught:
        Client(typed, ALICE_KEY)
    assert caught.value.reason == "bad_url"
    assert why in str(caught.value)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, so no one takes it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_a_refused_connection_is_said_plainly(refused_port: int) -> None:
    async with AsyncClient(f"http://127.0.0.1:{refused_port}/", ALICE_KEY) as client:
        with pytest.raises(sdk.GatewayUnreachable) as caught:
            await client.list()
    assert str(caught.value) == (
        f"cannot reach the gateway at http://127.0.0.1:{refused_port} (GET /v1/jobs): "
        "connection refused (is the gateway running at that address?)"
    )


async def test_an_unknown_host_is_said_plainly() -> None:
    async with AsyncClient("http://no-such-gateway.invalid", ALICE_KEY, timeout=10) as client:
        with pytest.raises(sdk.GatewayUnreachable) as caught:
            await client.get_lease("lease-1")
    message = str(caught.value)
    assert message.startswith(
        "cannot reach the gateway at http://no-such-gateway.invalid (GET /v1/leases/lease-1): "
        "unknown host"
    )
    assert "Error(" not in message


async def test_exec_on_an_unreachable_gateway_is_said_plainly(refused_port: int) -> None:
    async with AsyncClient(f"http://127.0.0.1:{refused_port}/", ALICE_KEY) as client:
        with pytest.raises(sdk.GatewayUnreachable) as caught:
            await client.open_exec("lease-1", ["true"])
    assert str(caught.value).startswith(
        f"cannot reach the gateway's exec session at ws://127.0.0.1:{refused_port}/v1/leases/"
    )
    assert "Error(" not in str(caught.value)


def test_an_address_with_a_trailing_slash_works() -> None:
    with (
        LiveGateway(tenants()) as live,
        Client(live.url + "/", ALICE_KEY, timeout=10) as client,
    ):
        job = client.submit({"command": ["echo"]})
        assert client.get(job.id).id == job.id
        assert asyncio.run(_listed(live.url + "//")) == [job.id]


async def _listed(url: str) -> list[str]:
    async with AsyncClient(url, ALICE_KEY, timeout=10) as client:
        return [job.id for job in await client.list()]
