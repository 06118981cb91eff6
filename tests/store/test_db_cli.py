"""`byteleap db upgrade|downgrade|current` as a user runs them (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from byteleap.store import StoreSchemaError, head_revision, upgrade


def byteleap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byteleap.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_upgrade_then_current_then_downgrade(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'v.db'}"
    up = byteleap("db", "upgrade", "--url", url)
    assert up.returncode == 0, up.stderr
    now = byteleap("db", "current", "--url", url)
    assert now.returncode == 0, now.stderr
    assert now.stdout.strip() == f"{head_revision()} (head)"
    down = byteleap("db", "downgrade", "base", "--url", url)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "at revision base"


def test_url_comes_from_the_config_file(tmp_path: Path) -> None:
    db = tmp_path / "from-config.db"
    config = tmp_path / "v.toml"
    config.write_text(f'[validator.store]\nurl = "sqlite+aiosqlite:///{db}"\n')
    result = byteleap("db", "upgrade", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert db.exists()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql+asyncpg://nobody@127.0.0.1:1/x", "127.0.0.1:1"),
        ("sqlite+aiosqlite:////nonexistent-dir/v.db", "/nonexistent-dir/v.db"),
    ],
)
def test_bad_url_is_one_clear_line_and_non_zero(url: str, named: str) -> None:
    result = byteleap("db", "current", "--url", url)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error (store_unavailable):")
    assert named in lines[0]
    assert result.stdout == ""
    assert not Path("/nonexistent-dir").exists()


async def test_unknown_revision_is_a_schema_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
    with pytest.raises(StoreSchemaError, match="nosuchrev"):
        await upgrade(url, "nosuchrev")
