"""The system's ssh, scp and sftp into a lease, through `byteleap leases ssh-proxy`, the
gateway's exec WebSocket, the miner and the leased worker, all real; no port opens."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from byteleap.gateway.core import create_tenant_with_key
from byteleap.sdk import AsyncClient
from gateway import test_lease_exec_e2e as exec_e2e
from gateway.test_lease_exec_e2e import Gateway

# The exec tests' fixtures (a real network, and a gateway over it), by the same names.
store = exec_e2e.store
gateway = exec_e2e.gateway

pytestmark = pytest.mark.slow


def _ssh_options(tmp_path: Path) -> list[str]:
    proxy = f"{sys.executable} -m byteleap.cli leases ssh-proxy %h"
    return [
        "-F", "/dev/null",  # no user or system config
        "-o", f"ProxyCommand={proxy}",
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=accept-new",
        "-o", "BatchMode=yes",  # never a prompt: a test must not wait on a terminal
    ]  # fmt: skip


def _environment(tmp_path: Path, gateway_url: str, key: str) -> dict[str, str]:
    """A bare HOME (no user ssh config or keys) and the proxy's gateway and key, as
    `byteleap leases ssh` hands them: through the environment."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {
        **os.environ,
        "HOME": str(home),
        "BYTELEAP_GATEWAY_URL": gateway_url,
        "BYTELEAP_API_KEY": key,
        "PYTHONPATH": os.pathsep.join(sys.path),
    }


async def _run(env: dict[str, str], *argv: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin), 120)
    assert process.returncode is not None
    return process.returncode, out, err


async def _lease(gateway: Gateway, name: str) -> tuple[str, str]:
    key = await create_tenant_with_key(gateway.service.store, name, balance=10.0)
    async with AsyncClient(gateway.url, key) as client:
        lease = await client.create_lease({"duration_s": 300})
    return key, lease.id


async def test_ssh_scp_and_sftp_into_a_lease(gateway: Gateway, tmp_path: Path) -> None:
    key, lease = await _lease(gateway, "ssh-user")
    env = _environment(tmp_path, gateway.url, key)
    options = _ssh_options(tmp_path)

    code, out, err = await _run(env, "ssh", *options, lease, "echo hi; pwd")
    assert code == 0, err
    hi, cwd = out.decode().splitlines()
    assert hi == "hi" and "/leases/" in cwd, out  # the lease's own work dir on the worker
    known = (tmp_path / "known_hosts").read_text()
    assert known.startswith(lease) and "ssh-ed25519" in known  # recorded under the lease's id
    # Again, now checked against known_hosts: the lease's host key is stable.
    code, out, err = await _run(env, "ssh", *options, lease, "exit 7")
    assert code == 7, err
    # On a terminal (forced: the test has none), with the client's TERM.
    term = env | {"TERM": "xterm-256color"}
    code, out, err = await _run(term, "ssh", "-tt", *options, lease, "tty; echo $TERM; exit 4")
    assert code == 4 and b"/dev/pts/" in out and b"xterm-256color" in out, (out, err)

    # scp (SFTP underneath, as modern OpenSSH does) up and back down, byte for byte.
    payload = os.urandom(1 << 20)
    (tmp_path / "up.bin").write_bytes(payload)
    code, _, err = await _run(env, "scp", *options, str(tmp_path / "up.bin"), f"{lease}:up.bin")
    assert code == 0, err
    down = tmp_path / "down.bin"
    code, _, err = await _run(env, "scp", *options, f"{lease}:up.bin", str(down))
    assert code == 0 and down.read_bytes() == payload, err
    # Legacy scp (the scp protocol over a command) lands in the same place.
    legacy = tmp_path / "legacy.bin"
    code, _, err = await _run(env, "scp", "-O", *options, f"{lease}:up.bin", str(legacy))
    assert code == 0 and legacy.read_bytes() == payload, err

    batch = tmp_path / "batch"
    batch.write_text("mkdir made\nput " + str(tmp_path / "up.bin") + " made/again.bin\nls made\n")
    code, out, err = await _run(env, "sftp", *options, "-b", str(batch), lease)
    assert code == 0 and b"made/again.bin" in out, (out, err)
    code, out, err = await _run(env, "ssh", *options, lease, "sha256sum made/again.bin up.bin")
    sums = {line.split()[0] for line in out.decode().splitlines()}
    assert code == 0 and len(sums) == 1, out


async def test_the_cli_runs_ssh_with_its_own_known_hosts(gateway: Gateway, tmp_path: Path) -> None:
    key, lease = await _lease(gateway, "ssh-cli")
    env = _environment(tmp_path, gateway.url, key) | {"XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    del env["BYTELEAP_API_KEY"]
    # A client with a key of its own is let in as well (its first request, "none", succeeds).
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", env["HOME"] + "/.ssh/id_ed25519"]
    (tmp_path / "home" / ".ssh").mkdir(mode=0o700)
    assert (await _run(env, *keygen))[0] == 0
    code, out, err = await _run(
        env, sys.executable, "-m", "byteleap.cli", "leases", "ssh", lease, "--api-key", key,
        "--", "-o", "BatchMode=yes", "echo", "through the cli",
    )  # fmt: skip
    assert (code, out) == (0, b"through the cli\n"), err
    # Recorded in byteleap's own file (hashed or not, as the system's ssh_config says).
    assert " ssh-ed25519 " in (tmp_path / "cfg" / "byteleap" / "known_hosts").read_text()


@pytest.mark.adversarial
async def test_only_the_leases_tenant_gets_ssh(gateway: Gateway, tmp_path: Path) -> None:
    _, lease = await _lease(gateway, "ssh-owner")
    other = await create_tenant_with_key(gateway.service.store, "ssh-other", balance=10.0)
    proxy = [sys.executable, "-m", "byteleap.cli", "leases", "ssh-proxy", lease]
    for key in ("blk_wrong", other):  # no such key; another tenant's (not its lease)
        env = _environment(tmp_path, gateway.url, key)
        code, out, err = await _run(env, "ssh", *_ssh_options(tmp_path), lease, "echo hi")
        assert code != 0 and out == b"", err
        # The proxy itself says why and fails.
        code, out, err = await _run(env, *proxy)
        assert code != 0 and out == b"" and b"error" in err, err
    assert not (tmp_path / "known_hosts").exists()  # no SSH server ever answered
