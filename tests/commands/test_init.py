"""`byteleap init ROLE`: the config it writes loads through the role's settings class with the
answers given (by flag or prompt), and without a netuid nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from byteleap.cli import app
from byteleap.config import (
    GatewaySettings,
    MinerSettings,
    ValidatorSettings,
    WorkerSettings,
    load_settings,
)

MINER_URL = "wss://203.0.113.7:8091/v1/worker"


def init(tmp_path: Path, *args: str, stdin: str | None = None) -> Result:
    """`byteleap init` into tmp_path's home and wallets; keys unencrypted for speed here
    (tests/commands/test_init_keys.py covers the encrypted default)."""
    argv = ["init", *args, "--home", str(tmp_path / "home")]
    if "--yes" in args and args[0] != "worker":
        argv += ["--wallet-path", str(tmp_path / "wallets"), "--no-password"]
    return CliRunner().invoke(app, argv, input=stdin)


def test_miner_defaults_are_production_ones(tmp_path: Path) -> None:
    result = init(tmp_path, "miner", "--yes", "--netuid", "42")
    assert result.exit_code == 0, result.output
    s = load_settings(MinerSettings, tmp_path / "home" / "miner.toml")
    assert (s.chain.adapter, s.chain.network, s.chain.netuid) == ("bittensor", "finney", 42)
    assert (s.wallet.name, s.wallet.hotkey, s.wallet.path) == (
        "miner",
        "default",
        tmp_path / "wallets",
    )
    assert (s.host, s.port, s.external_ip, s.log_level) == ("0.0.0.0", 8091, None, "INFO")
    assert s.home == tmp_path / "home"
    assert (tmp_path / "wallets" / "miner" / "hotkeys" / "default").is_file()


def test_miner_every_option(tmp_path: Path) -> None:
    result = init(
        tmp_path,
        "miner",
        "--yes",
        "--netuid=3",
        "--network=test",
        "--wallet-name=m1",
        "--hotkey=h1",
        "--host=10.0.0.2",
        "--port=9000",
        "--external-ip=203.0.113.9",
        "--log-level=debug",
        "--config",
        str(tmp_path / "etc" / "m.toml"),
    )
    assert result.exit_code == 0, result.output
    s = load_settings(MinerSettings, tmp_path / "etc" / "m.toml")
    assert (s.chain.network, s.chain.netuid, s.wallet.name, s.wallet.hotkey) == (
        "test",
        3,
        "m1",
        "h1",
    )
    assert (s.host, s.port, s.external_ip, s.log_level) == (
        "10.0.0.2",
        9000,
        "203.0.113.9",
        "DEBUG",
    )


def test_local_chain_for_devnets(tmp_path: Path) -> None:
    url = "http://127.0.0.1:19944"
    result = init(
        tmp_path, "validator", "--yes", "--netuid=1", "--chain=local", f"--chain-url={url}"
    )
    assert result.exit_code == 0, result.output
    s = load_settings(ValidatorSettings, tmp_path / "home" / "validator.toml")
    assert (s.chain.adapter, s.chain.url, s.chain.netuid) == ("local", url, 1)


def test_validator_store_sqlite_in_home_or_postgresql(tmp_path: Path) -> None:
    assert init(tmp_path, "validator", "--yes", "--netuid=5").exit_code == 0
    s = load_settings(ValidatorSettings, tmp_path / "home" / "validator.toml")
    assert s.store.url == f"sqlite+aiosqlite:///{tmp_path / 'home' / 'validator.db'}"
    assert s.wallet.name == "validator" and s.chain.netuid == 5
    pg = "postgresql+asyncpg://byteleap@db.internal/byteleap"
    result = init(tmp_path, "validator", "--yes", "--netuid=5", "--force", f"--store-url={pg}")
    assert result.exit_code == 0, result.output
    assert load_settings(ValidatorSettings, tmp_path / "home" / "validator.toml").store.url == pg


def test_gateway_prices_keep_the_settings_keys_and_units(tmp_path: Path) -> None:
    assert init(tmp_path, "gateway", "--yes", "--netuid=9").exit_code == 0
    path = tmp_path / "home" / "gateway.toml"
    s = load_settings(GatewaySettings, path)
    default = GatewaySettings()
    assert s.price_per_gpu_s == default.price_per_gpu_s
    assert (s.price_per_cpu_s, s.currency) == (default.price_per_cpu_s, default.currency)
    assert s.store.url == f"sqlite+aiosqlite:///{tmp_path / 'home' / 'validator.db'}"
    text = path.read_text()
    assert "price_per_cpu_s = 1e-05  # TAO per core-s" in text
    assert '"H100" = 0.0008  # TAO/GPU-s' in text


def test_gateway_every_option(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    result = init(
        tmp_path,
        "gateway",
        "--yes",
        "--netuid=9",
        "--host=0.0.0.0",
        "--port=8443",
        "--grpc-port=50052",
        f"--tls-cert={cert}",
        f"--tls-key={key}",
        "--currency=USD",
        "--price-gpu=RTX 4090=0.0002",
        "--price-gpu=H100=0.001",
        "--price-cpu=0.00002",
        "--store-url=postgresql+asyncpg://postgres@127.0.0.1/gw",
    )
    assert result.exit_code == 0, result.output
    s = load_settings(GatewaySettings, tmp_path / "home" / "gateway.toml")
    assert (s.host, s.port, s.grpc_port, s.tls_cert, s.tls_key) == (
        "0.0.0.0",
        8443,
        50052,
        cert,
        key,
    )
    assert s.currency == "USD"
    assert s.price_per_gpu_s == {"RTX 4090": 0.0002, "H100": 0.001}
    assert s.price_per_cpu_s == 0.00002
    assert s.store.url == "postgresql+asyncpg://postgres@127.0.0.1/gw"


def test_worker_config(tmp_path: Path) -> None:
    result = init(
        tmp_path,
        "worker",
        "--yes",
        f"--miner-url={MINER_URL}",
        "--token=tok123",
        "--gpu=2,5",
        "--executor=container",
    )
    assert result.exit_code == 0, result.output
    s = load_settings(WorkerSettings, tmp_path / "home" / "worker.toml")
    assert (s.miner_url, s.token, s.gpus, s.executor) == (MINER_URL, "tok123", [2, 5], "container")
    assert s.home == tmp_path / "home" / "worker"
    assert not (tmp_path / "wallets").exists()  # a worker has its own key, no wallet


def test_worker_needs_a_miner_url(tmp_path: Path) -> None:
    result = init(tmp_path, "worker", "--yes")
    assert result.exit_code == 2 and "--miner-url is required" in result.stderr
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("role", ["miner", "validator", "gateway"])
def test_netuid_is_required_and_nothing_is_written(tmp_path: Path, role: str) -> None:
    result = init(tmp_path, role, "--yes")
    assert result.exit_code == 2
    assert "--netuid is required" in result.stderr
    assert not (tmp_path / "home").exists() and not (tmp_path / "wallets").exists()


def test_an_invalid_answer_writes_nothing(tmp_path: Path) -> None:
    result = init(tmp_path, "miner", "--yes", "--netuid=1", "--network=mainnet")
    assert result.exit_code == 2 and "unknown network 'mainnet'" in result.stderr
    result = init(tmp_path, "worker", "--yes", "--miner-url=http://x:1/v1/worker")
    assert result.exit_code == 2 and "miner_url must be a wss:// URL" in result.stderr
    assert not (tmp_path / "home" / "worker.toml").exists()
    assert not (tmp_path / "wallets").exists()


def test_an_existing_config_is_kept_without_force(tmp_path: Path) -> None:
    assert init(tmp_path, "miner", "--yes", "--netuid=1").exit_code == 0
    result = init(tmp_path, "miner", "--yes", "--netuid=2")
    assert result.exit_code == 2 and "--force" in result.stderr
    assert load_settings(MinerSettings, tmp_path / "home" / "miner.toml").chain.netuid == 1


def test_prompts_ask_what_flags_did_not_say(tmp_path: Path) -> None:
    # netuid, network, wallet name, hotkey, external IP, password twice
    answers = "\n".join(["12", "test", "op", "hk", "198.51.100.4", "s3cret-pw", "s3cret-pw"])
    result = CliRunner().invoke(
        app,
        ["init", "miner", "--home", str(tmp_path / "home"), "--wallet-path", str(tmp_path / "w")],
        input=answers + "\n",
    )
    assert result.exit_code == 0, result.output
    s = load_settings(MinerSettings, tmp_path / "home" / "miner.toml")
    assert (s.chain.netuid, s.chain.network, s.wallet.name, s.wallet.hotkey) == (
        12,
        "test",
        "op",
        "hk",
    )
    assert s.external_ip == "198.51.100.4"
