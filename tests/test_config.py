from pathlib import Path

import pytest
from pydantic import ValidationError

from byteleap.config import (
    ChainServiceSettings,
    ConfigError,
    GatewaySettings,
    MinerSettings,
    ValidatorSettings,
    load_settings,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "byteleap.toml"
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    settings = load_settings(ValidatorSettings)
    assert settings.chain.adapter == "local"
    assert settings.store.url.startswith("sqlite+aiosqlite://")
    assert settings.round_interval_s == 240


def test_role_table_in_toml_wins_over_default(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[validator]\nround_interval_s = 5\n[validator.store]\nurl = "postgresql+asyncpg://u@h/db"\n'
        "[miner]\nport = 9000\n",
    )
    settings = load_settings(ValidatorSettings, path)
    assert settings.round_interval_s == 5
    assert settings.store.url == "postgresql+asyncpg://u@h/db"
    assert load_settings(MinerSettings, path).port == 9000


def test_env_overrides_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[validator]\nround_interval_s = 5\n")
    monkeypatch.setenv("BYTELEAP_ROUND_INTERVAL_S", "7")
    monkeypatch.setenv("BYTELEAP_CHAIN__NETUID", "42")
    settings = load_settings(ValidatorSettings, path)
    assert settings.round_interval_s == 7
    assert settings.chain.netuid == 42


def test_explicit_override_wins_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYTELEAP_PORT", "1111")
    assert load_settings(ChainServiceSettings, port=2222).port == 2222


@pytest.mark.parametrize(
    ("toml", "field"),
    [
        ("[validator]\nround_interval_s = -1\n", "round_interval_s"),
        ('[validator.chain]\nnetwork = "moonnet"\n', "chain.network"),
        ('[validator.store]\nurl = "mysql://x"\n', "store.url"),
        ("[validator]\nno_such_field = 1\n", "no_such_field"),
        ('[validator.chain]\nadapter = "ethereum"\n', "chain.adapter"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, toml: str, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(ValidatorSettings, write(tmp_path, toml))
    assert str(info.value).startswith(f"{field}:")
    assert "\n" not in str(info.value)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(ValidatorSettings, write(tmp_path, "[validator\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(ValidatorSettings, tmp_path / "absent.toml")


def test_a_failed_load_leaves_no_state_behind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_settings(ValidatorSettings, write(tmp_path, "[validator]\nround_interval_s = 0\n"))
    assert load_settings(ValidatorSettings).round_interval_s == 240


@pytest.mark.parametrize("network", ["finney", "test", "ws://127.0.0.1:9944", "wss://x.io:443"])
def test_known_networks_accepted(network: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BYTELEAP_CHAIN__NETWORK", network)
    assert load_settings(ValidatorSettings).chain.network == network


def test_a_challenge_size_the_profile_cannot_keep_exact_is_refused_at_load() -> None:
    # cpu-f64 past n=4096: float32 accumulation would get nearly every entry right.
    with pytest.raises(ValidationError, match="challenge_n: cpu-f64 refuses n=8192"):
        ValidatorSettings(challenge_n=8192)
    assert ValidatorSettings(challenge_n=8192, challenge_profile="cuda-f16").challenge_n == 8192


def test_grpc_is_switched_off_from_toml_with_port_0(tmp_path: Path) -> None:
    """TOML has no null: 0 is how a config file turns the gateway's gRPC server off."""
    path = write(tmp_path, "[gateway]\ngrpc_port = 0\n")
    assert not load_settings(GatewaySettings, path).grpc_port
    assert load_settings(GatewaySettings).grpc_port == 50051
    with pytest.raises(ConfigError):
        load_settings(GatewaySettings, write(tmp_path, "[gateway]\ngrpc_port = -1\n"))
