"""The real gateway (`byteleap gateway run`) over TLS with a throwaway CA: the SDK, the CLI and
gRPC reach it with that CA's bundle and refuse it without (or with another CA's); a public
bind without TLS is refused unless --insecure-public says TLS ends in front."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

import byteleap.sdk as sdk
from byteleap.config import ConfigError, GatewaySettings, load_settings
from byteleap.gateway._pb import gateway_pb2 as pb
from byteleap.gateway._pb import gateway_pb2_grpc as pb_grpc
from byteleap.gateway.core import create_tenant_with_key
from byteleap.gateway.listening import check_listening, is_loopback, public_bind_refusal
from byteleap.keys import ensure_wallet
from byteleap.store import open_store, upgrade
from gateway.tls_certs import Pki, make_pki

BYTELEAP = [sys.executable, "-m", "byteleap.cli"]


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningGateway:
    url: str
    grpc_target: str
    api_key: str
    log: Path


def _config(root: Path, host: str, port: int, grpc_port: int, tls: Pki | None) -> Path:
    wallets = root / "wallets"
    ensure_wallet("gateway", path=wallets)
    config = root / "gateway.toml"
    lines = [
        "[gateway]",
        f'host = "{host}"',
        f"port = {port}",
        f"grpc_port = {grpc_port}",
        f'home = "{root / "home"}"',
        f'[gateway.wallet]\nname = "gateway"\npath = "{wallets}"',
        # No chain answers there: the gateway serves its API without one (no miners to offer).
        f'[gateway.chain]\nurl = "http://127.0.0.1:{_free_port()}"',
        f'[gateway.store]\nurl = "sqlite+aiosqlite:///{root / "gateway.db"}"',
    ]
    if tls is not None:
        lines[1:1] = [f'tls_cert = "{tls.cert}"', f'tls_key = "{tls.key}"']
    config.write_text("\n".join(lines) + "\n")
    return config


async def _tenant(root: Path) -> str:
    url = f"sqlite+aiosqlite:///{root / 'gateway.db'}"
    await upgrade(url)
    store = await open_store(url)
    try:
        return await create_tenant_with_key(store, "acme", balance=10.0)
    finally:
        await store.close()


@contextlib.contextmanager
def running_gateway(
    root: Path, *, host: str, tls: Pki | None, args: tuple[str, ...] = ()
) -> Iterator[RunningGateway]:
    """`byteleap gateway run` on a free port of ``host``, up (its /v1/health answers over
    127.0.0.1) until the block ends."""
    port, grpc_port = _free_port(host), _free_port(host)
    config = _config(root, host, port, grpc_port, tls)
    api_key = asyncio.run(_tenant(root))
    log = root / "gateway.log"
    process = subprocess.Popen(
        [*BYTELEAP, "gateway", "run", "--config", str(config), *args],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    scheme = "https" if tls is not None else "http"
    gateway = RunningGateway(f"{scheme}://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", api_key, log)
    verify: ssl.SSLContext | bool = (
        ssl.create_default_context(cafile=str(tls.ca)) if tls is not None else True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"gateway exited:\n{log.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{gateway.url}/v1/health", verify=verify).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"gateway not up:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield gateway
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path_factory.mktemp("gw"), host="127.0.0.1", tls=pki) as gateway:
        yield gateway


# -- the SDK ---------------------------------------------------------------------------------


async def test_the_sdk_trusts_the_gateway_through_its_ca_bundle(
    tls_gateway: RunningGateway, pki: Pki
) -> None:
    async with sdk.AsyncClient(tls_gateway.url, tls_gateway.api_key, ca_bundle=pki.ca) as client:
        job = await client.submit({"command": ["echo", "hi"]})
        assert [j.id for j in await client.list()] == [job.id]
        with pytest.raises(sdk.NotFound):  # the exec WebSocket goes over wss:// the same way
            await client.open_exec("0" * 32, ["true"])


def test_the_sync_client_takes_the_bundle_from_the_environment(
    tls_gateway: RunningGateway, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYTELEAP_CA_BUNDLE", str(pki.ca))
    with sdk.Client(tls_gateway.url, tls_gateway.api_key) as client:
        assert isinstance(client.list(), list)


@pytest.mark.parametrize("bundle", ["none", "other CA"])
async def test_an_untrusted_certificate_is_refused(
    tls_gateway: RunningGateway, pki: Pki, bundle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BYTELEAP_CA_BUNDLE", raising=False)
    ca_bundle = pki.other_ca if bundle == "other CA" else None
    async with sdk.AsyncClient(tls_gateway.url, tls_gateway.api_key, ca_bundle=ca_bundle) as c:
        with pytest.raises(sdk.GatewayUnreachable, match="certificate is not trusted"):
            await c.list()
        with pytest.raises(sdk.GatewayUnreachable, match="certificate is not trusted"):
            await c.open_exec("0" * 32, ["true"])


def test_a_bundle_that_does_not_load_is_said_at_once(tmp_path: Path) -> None:
    with pytest.raises(sdk.SdkError, match=r"CA bundle .*missing\.pem: cannot be loaded"):
        sdk.Client("https://127.0.0.1:1", "key", ca_bundle=tmp_path / "missing.pem")


# -- the CLI ---------------------------------------------------------------------------------


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "BYTELEAP_CA_BUNDLE"}
    return subprocess.run(
        [*BYTELEAP, *args], capture_output=True, text=True, timeout=60, env=environ | env
    )


def test_the_cli_reaches_the_gateway_with_ca_bundle(tls_gateway: RunningGateway, pki: Pki) -> None:
    where = ["--gateway", tls_gateway.url, "--api-key", tls_gateway.api_key]
    listed = _cli("jobs", "list", *where, "--ca-bundle", str(pki.ca), "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().startswith("[")
    from_env = _cli("leases", "list", *where, "--json", BYTELEAP_CA_BUNDLE=str(pki.ca))
    assert from_env.returncode == 0, from_env.stderr

    refused = _cli("jobs", "list", *where)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "certificate is not trusted" in refused.stderr and "--ca-bundle" in refused.stderr
    other = _cli("jobs", "list", *where, "--ca-bundle", str(pki.other_ca))
    assert other.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in other.stderr


# -- gRPC ------------------------------------------------------------------------------------


async def _list_jobs(target: str, root_certificates: bytes | None, api_key: str) -> int:
    credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    async with grpc.aio.secure_channel(target, credentials) as channel:
        stub = pb_grpc.GatewayStub(channel)  # type: ignore[no-untyped-call]
        answer = await stub.ListJobs(
            pb.ListJobsRequest(limit=10),
            metadata=(("authorization", f"Bearer {api_key}"),),
            timeout=10,
        )
        return len(answer.jobs)


async def test_grpc_serves_tls_with_the_same_certificate(
    tls_gateway: RunningGateway, pki: Pki
) -> None:
    target, key = tls_gateway.grpc_target, tls_gateway.api_key
    assert await _list_jobs(target, pki.ca.read_bytes(), key) >= 0
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _list_jobs(target, pki.other_ca.read_bytes(), key)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(target) as channel:  # plain text gets no answer
        stub = pb_grpc.GatewayStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ListJobs(pb.ListJobsRequest(limit=1), timeout=5)


# -- where the gateway may listen ------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.53", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("gateway.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_public_bind_needs_tls_or_the_insecure_flag() -> None:
    why = public_bind_refusal("0.0.0.0", tls=False, insecure_public=False)
    assert why is not None
    assert "tls_cert and tls_key" in why and "--insecure-public" in why
    assert "'0.0.0.0' is not a loopback address" in why
    assert public_bind_refusal("0.0.0.0", tls=True, insecure_public=False) is None
    assert public_bind_refusal("0.0.0.0", tls=False, insecure_public=True) is None
    assert public_bind_refusal("127.0.0.1", tls=False, insecure_public=False) is None


def test_tls_files_are_checked_before_anything_starts(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        load_settings(GatewaySettings, tls_cert=pki.cert)
    mismatched = GatewaySettings(host="0.0.0.0", tls_cert=pki.cert, tls_key=pki.other_key)
    with pytest.raises(ConfigError, match="cannot be loaded") as refused:
        check_listening(mismatched)
    assert refused.value.reason == "tls_files"
    missing = GatewaySettings(tls_cert=tmp_path / "no.pem", tls_key=pki.key)
    with pytest.raises(ConfigError, match=r"no\.pem"):
        check_listening(missing)
    check_listening(GatewaySettings(host="0.0.0.0", tls_cert=pki.cert, tls_key=pki.key))


def test_the_gateway_refuses_a_public_bind_in_plain_text(tmp_path: Path) -> None:
    config = _config(tmp_path, "0.0.0.0", _free_port("0.0.0.0"), _free_port("0.0.0.0"), None)
    refused = _cli("gateway", "run", "--config", str(config))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.startswith("config error: gateway host '0.0.0.0' is not a loopback")
    assert "--insecure-public" in refused.stderr and "tls_cert" in refused.stderr
    assert not (tmp_path / "gateway.db").exists()  # refused before the store was opened


def test_insecure_public_serves_plain_http_on_all_addresses(tmp_path: Path) -> None:
    with running_gateway(tmp_path, host="0.0.0.0", tls=None, args=("--insecure-public",)) as gw:
        assert gw.url.startswith("http://")
        assert "public address (insecure_public)" in gw.log.read_text()
