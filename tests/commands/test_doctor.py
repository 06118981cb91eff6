"""`byteleap doctor`: each failure made for real (no wallet, a store that does not answer or
is not migrated, a port taken, no CDI spec for GPU containers) gives its exact line, with its
fix, and exit code 1."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from byteleap.cli import app
from byteleap.store.revisions import head_revision


def doctor(*args: str) -> Result:
    return CliRunner().invoke(app, ["doctor", *args])


def lines(result: Result) -> list[str]:
    return result.output.splitlines()


@pytest.fixture
def closed_port(free_port: Callable[[], int]) -> int:
    """A loopback port nothing listens on (bound and closed a moment ago)."""
    return free_port()


def test_missing_wallet_fails_with_the_keys_new_command(
    tmp_path: Path, wallet_path: Path, closed_port: int, free_port: Callable[[], int]
) -> None:
    config = tmp_path / "miner.toml"
    config.write_text(
        f'[miner]\nhome = "{tmp_path / "home"}"\nport = {free_port()}\n'
        f'[miner.wallet]\nname = "m1"\nhotkey = "hk"\npath = "{wallet_path}"\n'
        f'[miner.chain]\nurl = "http://127.0.0.1:{closed_port}"\n'
    )
    result = doctor("--config", str(config))
    assert result.exit_code == 1, result.output
    assert (
        f"fail  miner     wallet: no hotkey m1/hk under {wallet_path} -- fix: "
        f"byteleap keys new m1 --hotkey hk --path {wallet_path}"
    ) in lines(result)
    # Without a hotkey there is nothing to look up; the chain itself is still checked.
    chain = next(line for line in lines(result) if " chain: " in line)
    assert chain.startswith(
        f"fail  miner     chain: chain at http://127.0.0.1:{closed_port} unreachable: "
    ), chain
    assert chain.endswith(
        "-- fix: start the chain (`byteleap chain serve`) or fix url in [miner.chain]"
    )


def _validator_config(tmp_path: Path, store_url: str, wallet_path: Path) -> Path:
    config = tmp_path / "validator.toml"
    config.write_text(
        f'[validator]\nhome = "{tmp_path / "home"}"\n'
        f'[validator.store]\nurl = "{store_url}"\n'
        f'[validator.wallet]\nname = "v"\npath = "{wallet_path}"\n'
    )
    return config


def test_unreachable_store_fails(tmp_path: Path, wallet_path: Path, closed_port: int) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/byteleap"
    result = doctor("validator", "--config", str(_validator_config(tmp_path, url, wallet_path)))
    assert result.exit_code == 1, result.output
    assert (
        f"fail  validator store: unreachable: cannot use the database at postgresql "
        f"postgres@127.0.0.1:{closed_port}/byteleap: ConnectionRefusedError: [Errno 111] "
        f"Connect call failed ('127.0.0.1', {closed_port}) -- fix: start the database server "
        "it names, or fix store.url in [validator]"
    ) in lines(result)


def test_store_not_migrated_fails_with_db_upgrade(tmp_path: Path, wallet_path: Path) -> None:
    database = tmp_path / "fresh.db"
    database.touch()  # a fresh, empty SQLite file: no schema
    url = f"sqlite+aiosqlite:///{database}"
    result = doctor("validator", "--config", str(_validator_config(tmp_path, url, wallet_path)))
    assert result.exit_code == 1, result.output
    assert f"ok    validator store: sqlite file {database} answers" in lines(result)
    assert (
        f"fail  validator store schema: sqlite file {database} is at schema revision none "
        f"(not migrated), this code needs {head_revision()} -- fix: byteleap db upgrade "
        f"--url '{url}'"
    ) in lines(result)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port this test holds: bound and listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_in_use_fails(tmp_path: Path, taken_port: int, free_port: Callable[[], int]) -> None:
    config = tmp_path / "gateway.toml"
    grpc = free_port()
    config.write_text(
        f'[gateway]\nhome = "{tmp_path / "home"}"\nport = {taken_port}\ngrpc_port = {grpc}\n'
    )
    result = doctor("gateway", "--config", str(config))
    assert result.exit_code == 1, result.output
    assert (
        f"fail  gateway   port rest: 127.0.0.1:{taken_port} is in use -- fix: stop what listens "
        f"there (`ss -ltnp 'sport = :{taken_port}'` names it) or change port in [gateway]"
    ) in lines(result)
    assert f"ok    gateway   port grpc: 127.0.0.1:{grpc} is free" in lines(result)


@pytest.mark.container
def test_container_gpu_worker_without_cdi_spec_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    cdi = tmp_path / "cdi"
    cdi.mkdir()
    monkeypatch.setenv("BYTELEAP_CONTAINER_ENGINE", "podman")
    monkeypatch.setenv("BYTELEAP_CONTAINER_CDI_DIRS", str(cdi))
    config = tmp_path / "worker.toml"
    config.write_text(
        f'[worker]\nhome = "{tmp_path / "home"}"\nexecutor = "container"\ngpus = [0]\n'
    )
    result = doctor("--config", str(config))
    assert result.exit_code == 1, result.output
    assert (
        f"fail  worker    cdi: no CDI spec for nvidia.com/gpu in {cdi} (create one with "
        "`nvidia-ctk cdi generate`) -- fix: sudo nvidia-ctk cdi generate "
        "--output=/etc/cdi/nvidia.yaml (the NVIDIA container toolkit), or point "
        "BYTELEAP_CONTAINER_CDI_DIRS at the directory that holds the spec"
    ) in lines(result)
