"""`byteleap leases …` against a real gateway (uvicorn on loopback over the in-memory service,
which has two free workers)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner, Result

from byteleap.commands.lease_access import _terminal_size
from byteleap.commands.leases import app
from byteleap.sdk import LeaseSpec, Resources
from gateway.live import ALICE_KEY, BOB_KEY, LiveGateway, tenants


@pytest.fixture
def live() -> Iterator[LiveGateway]:
    with LiveGateway(tenants(capacity=2)) as gateway:
        yield gateway


def leases(live: LiveGateway, *args: str, key: str = ALICE_KEY) -> Result:
    env = {"BYTELEAP_GATEWAY_URL": live.url, "BYTELEAP_API_KEY": key}
    return CliRunner().invoke(app, list(args), env=env)


def _shown(live: LiveGateway, lease_id: str) -> dict[str, object]:
    result = leases(live, "status", lease_id, "--json")
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_create_passes_every_option(live: LiveGateway) -> None:
    result = leases(
        live, "create", "--gpus", "2", "--gpu-model", "H100", "--cpus", "8", "--ram", "4096",
        "--duration", "600", "--max-price", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = _shown(live, result.stdout.strip())
    resources = Resources(gpu_count=2, gpu_model="H100", cpu_cores=8, ram_mib=4096)
    spec = LeaseSpec(resources=resources, duration_s=600, max_price_per_s=1)
    assert shown["spec"] == spec.model_dump(mode="json")
    assert (shown["state"], shown["gpu_count"]) == ("active", 2)


def test_create_cpu_lease_leaves_the_gateways_defaults(live: LiveGateway) -> None:
    lease_id = leases(live, "create", "--duration", "60").stdout.strip()
    shown = _shown(live, lease_id)
    assert shown["spec"] == LeaseSpec(duration_s=60).model_dump(mode="json")
    assert (shown["gpu_model"], shown["gpu_count"], shown["cpu_cores"]) == (None, 0, 1)


def test_status_list_extend_release(live: LiveGateway) -> None:
    first = leases(live, "create", "--gpus", "1", "--duration", "600").stdout.strip()
    second = leases(live, "create", "--cpus", "4", "--duration", "60").stdout.strip()
    status = leases(live, "status", first).stdout
    assert f"id: {first}" in status and "state: active" in status and "gpu_count: 1" in status
    assert "ends_at: 20" in status and "ended_at" not in status
    header, *listed = leases(live, "list").stdout.splitlines()
    assert header.split() == ["ID", "STATE", "SIZE", "PRICE/S", "COST", "ENDS"]
    assert [line.split()[0] for line in listed] == [second, first]
    assert "4 cores" in listed[0] and "1xH100" in listed[1]
    assert [x["id"] for x in json.loads(leases(live, "list", "--json").stdout)] == [second, first]
    before = _shown(live, first)["ends_at"]
    extended = leases(live, "extend", first, "90")
    assert extended.exit_code == 0, extended.output
    assert extended.stdout.startswith(f"{first} ends_at 20")
    assert _shown(live, first)["ends_at"] == before + 90  # type: ignore[operator]
    released = leases(live, "release", first)
    assert released.stdout.startswith(f"{first} released cost=")
    assert "ended_at: 20" in leases(live, "status", first).stdout


@pytest.mark.parametrize(
    ("args", "key", "message"),
    [
        (("status", "nope"), ALICE_KEY, "404 not_found"),
        (("list",), "wrong", "401 unauthorized"),
        (("create", "--duration", "1"), ALICE_KEY, "(field duration_s)"),
        (("create", "--gpus", "1", "--gpu-model", "Z9", "--duration", "60"), ALICE_KEY, "503"),
        (("extend", "nope", "60"), ALICE_KEY, "404 not_found"),
        (("list",), "", "no API key"),
    ],
)
def test_errors_print_one_line_and_exit_1(
    live: LiveGateway, args: tuple[str, ...], key: str, message: str
) -> None:
    result = leases(live, *args, key=key)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_ended_lease_and_another_tenants_lease(live: LiveGateway) -> None:
    lease_id = leases(live, "create", "--duration", "60").stdout.strip()
    assert leases(live, "release", lease_id, key=BOB_KEY).exit_code == 1
    assert leases(live, "release", lease_id).exit_code == 0
    again = leases(live, "extend", lease_id, "60")
    assert again.exit_code == 1 and "409 conflict" in again.stderr


def test_create_needs_a_duration(live: LiveGateway) -> None:
    result = leases(live, "create", "--gpus", "1")
    assert result.exit_code == 2
    assert "--duration" in result.output


def test_a_vm_lease_sends_the_key_file_and_sizes(live: LiveGateway, tmp_path: Path) -> None:
    key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
    )
    key_file = tmp_path / "id_ed25519.pub"
    key_file.write_bytes(key + b" alice@laptop\n")
    result = leases(
        live, "create", "--duration", "60", "--ssh-key", str(key_file), "--vcpus", "2",
        "--memory", "2048",
    )  # fmt: skip
    # The in-memory twin stores the spec as sent (it has no VM host to start): the body is
    # what is checked here; tests/worker/vm/test_vm_lease_e2e.py starts a real one.
    assert result.exit_code == 0, result.output
    spec = _shown(live, result.stdout.strip())["spec"]
    assert isinstance(spec, dict)
    assert (spec["kind"], spec["vcpus"], spec["memory_mib"]) == ("vm", 2, 2048)
    assert spec["ssh_public_key"] == key.decode() + " alice@laptop"


def test_a_vm_lease_with_a_bad_key_is_refused_naming_the_field(
    live: LiveGateway, tmp_path: Path
) -> None:
    key_file = tmp_path / "bad.pub"
    key_file.write_text("ssh-ed25519 AAAA\nssh-rsa injected\n")
    result = leases(live, "create", "--duration", "60", "--ssh-key", str(key_file))
    assert result.exit_code == 1
    assert "422" in result.stderr and "ssh_public_key" in result.stderr, result.stderr


def test_vm_sizes_need_a_key(live: LiveGateway) -> None:
    result = leases(live, "create", "--duration", "60", "--vcpus", "2")
    assert result.exit_code == 2
    assert "--ssh-key" in result.output


def test_create_extend_release_print_the_lease_with_json(live: LiveGateway) -> None:
    created = leases(live, "create", "--cpus", "2", "--duration", "60", "--json")
    assert created.exit_code == 0, created.output
    lease = json.loads(created.stdout)
    assert (lease["state"], lease["gpu_model"], lease["gpu_count"], lease["cpu_cores"]) == (
        "active", None, 0, 2,
    )  # fmt: skip
    extended = json.loads(leases(live, "extend", lease["id"], "30", "--json").stdout)
    assert extended["ends_at"] == lease["ends_at"] + 30
    released = json.loads(leases(live, "release", lease["id"], "--json").stdout)
    assert released["state"] == "released" and released["ended_at"] is not None


def test_a_cpu_lease_shows_its_cores_and_no_gpus(live: LiveGateway) -> None:
    lease_id = leases(live, "create", "--cpus", "4", "--duration", "60").stdout.strip()
    shown = dict(
        line.split(": ", 1) for line in leases(live, "status", lease_id).stdout.splitlines()
    )
    assert (shown["gpu_model"], shown["gpu_count"], shown["cpu_cores"]) == ("-", "0", "4")
    assert shown["created_at"].startswith("20") and shown["created_at"].endswith("+00:00")


def test_a_shell_sends_this_terminals_size(monkeypatch: pytest.MonkeyPatch) -> None:
    master, replica = pty.openpty()
    fcntl.ioctl(replica, termios.TIOCSWINSZ, struct.pack("HHHH", 48, 160, 0, 0))
    with os.fdopen(replica, "w") as terminal, os.fdopen(master, "rb"):
        monkeypatch.setattr("sys.stdout", terminal)
        assert _terminal_size(tty=True) == (48, 160)
        assert _terminal_size(tty=False) is None  # `leases exec`: no terminal asked for
    monkeypatch.undo()
    with open(os.devnull, "w") as piped:
        monkeypatch.setattr("sys.stdout", piped)
        assert _terminal_size(tty=True) is None
