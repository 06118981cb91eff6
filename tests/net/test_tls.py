"""TLS pinning against a real HTTPS server on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from byteleap.net.errors import PeerUnreachable, PinMismatch
from byteleap.net.tls import (
    TlsIdentity,
    fetch_pinned_certificate,
    load_or_create_identity,
    pinned_context_for,
)


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


class HttpsServer:
    def __init__(self, identity: TlsIdentity, port: int) -> None:
        self.port = port
        config = uvicorn.Config(
            _app(),
            host="127.0.0.1",
            port=self.port,
            ssl_certfile=str(identity.cert_path),
            ssl_keyfile=str(identity.key_path),
            log_level="error",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    def __enter__(self) -> HttpsServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def node(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[tuple[TlsIdentity, HttpsServer]]:
    identity = load_or_create_identity(tmp_path / "node")
    with HttpsServer(identity, free_port()) as server:
        yield identity, server


def test_identity_is_stable_and_private(tmp_path: Path) -> None:
    first = load_or_create_identity(tmp_path)
    again = load_or_create_identity(tmp_path)
    assert first.public_key == again.public_key
    assert len(first.public_key) == 44
    assert first.key_path.stat().st_mode & 0o077 == 0


def test_pinned_client_talks_to_the_pinned_node(node: tuple[TlsIdentity, HttpsServer]) -> None:
    identity, server = node
    context = pinned_context_for("127.0.0.1", server.port, identity.public_key)
    with httpx.Client(verify=context) as client:
        response = client.get(f"https://127.0.0.1:{server.port}/ping")
    assert response.json() == {"pong": "yes"}


@pytest.mark.adversarial
def test_man_in_the_middle_key_is_rejected(
    node: tuple[TlsIdentity, HttpsServer], tmp_path: Path
) -> None:
    _, server = node
    published = load_or_create_identity(tmp_path / "the-real-node").public_key
    with pytest.raises(PinMismatch):
        fetch_pinned_certificate("127.0.0.1", server.port, published)


@pytest.mark.adversarial
def test_anchored_context_refuses_a_swapped_server(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """A context built for one node refuses a different node later on the same port."""
    real = load_or_create_identity(tmp_path / "real")
    with HttpsServer(real, free_port()) as server:
        context = pinned_context_for("127.0.0.1", server.port, real.public_key)
        port = server.port
    impostor = load_or_create_identity(tmp_path / "impostor")
    with HttpsServer(impostor, free_port()) as other:
        with httpx.Client(verify=context) as client, pytest.raises(httpx.ConnectError):
            client.get(f"https://127.0.0.1:{other.port}/ping")
    assert port != 0


@pytest.mark.adversarial
def test_plain_http_to_a_tls_port_is_refused(node: tuple[TlsIdentity, HttpsServer]) -> None:
    _, server = node
    with httpx.Client() as client, pytest.raises(httpx.HTTPError):
        client.get(f"http://127.0.0.1:{server.port}/ping")


def test_unreachable_peer_is_a_clear_error(free_port: Callable[[], int]) -> None:
    with pytest.raises(PeerUnreachable, match="TLS handshake"):
        fetch_pinned_certificate("127.0.0.1", free_port(), b"\0" * 32, timeout_s=1)


_CREATE_AT = """
import ssl, sys, time
from pathlib import Path
from byteleap.net.tls import load_or_create_identity
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all begin together, imports done
identity = load_or_create_identity(Path(sys.argv[1]))
ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
    identity.cert_path, identity.key_path
)  # the certificate is this key's
print(identity.public_key.hex())
"""


def test_processes_creating_one_identity_at_once_get_one_matching_key(tmp_path: Path) -> None:
    """A miner starting while a command reads its pin: once, a CI replica's miner died of a
    key made by one process beside a certificate made by the other (KEY_VALUES_MISMATCH)."""
    begin = time.time() + 4
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATE_AT, str(tmp_path / "state"), str(begin)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    keys = set()
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        keys.add(out.strip())
    assert len(keys) == 1
