"""`LocalChain`'s translation of HTTP outcomes to the ChainError tree, complete by status."""

from __future__ import annotations

import socket

import httpx
import pytest

from byteleap.chain.local.client import LocalChain, error_for
from byteleap.chain.port import (
    ChainAuthError,
    ChainError,
    ChainRejected,
    ChainUnavailable,
)


def response(status: int, reason: str = "why", *, json_body: bool = True) -> httpx.Response:
    if json_body:
        return httpx.Response(status, json={"error": {"reason": reason, "message": "because"}})
    return httpx.Response(status, text="<html>proxy error</html>")


@pytest.mark.parametrize("status", range(400, 600))
def test_every_error_status_maps_to_one_chain_error(status: int) -> None:
    error = error_for(response(status))
    assert isinstance(error, ChainError)
    if status == 401:
        expected: type[ChainError] = ChainAuthError
    elif status in (502, 503, 504):
        expected = ChainUnavailable
    elif status < 500:
        expected = ChainRejected
    else:
        expected = ChainError
    assert type(error) is expected
    assert error.context["status"] == status


def test_service_reason_is_kept() -> None:
    rejected = error_for(response(429, "rate_limited"))
    assert rejected.reason == "rate_limited" and str(rejected) == "because"
    auth = error_for(response(401, "replayed"))
    assert auth.reason == "auth" and auth.context["detail"] == "replayed"


def test_non_json_error_bodies_still_map() -> None:
    error = error_for(response(404, json_body=False))
    assert isinstance(error, ChainRejected) and error.reason == "http_error"
    assert "404" in str(error)


async def test_unreachable_chain_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with LocalChain(f"http://127.0.0.1:{port}", timeout_s=2) as chain:
        with pytest.raises(ChainUnavailable):
            await chain.metagraph()


def test_adapter_shape() -> None:
    assert LocalChain.name == "local"
    assert LocalChain.unsupported == {}
