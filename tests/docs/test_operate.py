"""docs/operate.md against the CLI: every `byteleap` command in its shell blocks names a real
command and only options it has, and the block marked ``<!-- docs-test: run -->`` is run for
real, in a temporary home, as an operator would paste it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from byteleap.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "operate.md"
README = DOC.parents[1] / "README.md"
_BLOCK = re.compile(r"(<!-- docs-test: run -->\n)?```bash\n(.*?)```", re.S)


def _blocks() -> list[tuple[bool, str]]:
    return [(bool(m.group(1)), m.group(2)) for m in _BLOCK.finditer(DOC.read_text())]


def _invocations(script: str) -> list[list[str]]:
    """The argument lists of every `byteleap` command in ``script`` (after env assignments)."""
    found = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            words = words[1:]
        if words[:1] == ["byteleap"]:
            found.append(words[1:])
    return found


def _is_group(command: Any) -> bool:
    # typer may carry its own click: recognise a group by its subcommands, not its class.
    return hasattr(command, "commands")


def _resolve(args: list[str]) -> tuple[Any, list[str]]:
    command: Any = typer.main.get_command(app)
    while _is_group(command) and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


def _options(command: Any) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names |= {*param.opts, *param.secondary_opts}
    return names


def test_the_readme_links_the_guide() -> None:
    assert "docs/operate.md" in README.read_text()


def test_every_command_in_the_guide_exists_with_its_options() -> None:
    invocations = [args for _, block in _blocks() for args in _invocations(block)]
    assert len(invocations) >= 20
    for args in invocations:
        command, rest = _resolve(args)
        assert not _is_group(command), f"not a command: byteleap {shlex.join(args)}"
        flags = {word.split("=")[0] for word in rest if word.startswith("--")}
        unknown = flags - _options(command)
        assert not unknown, f"byteleap {shlex.join(args)}: no such option {sorted(unknown)}"


def test_the_resolver_rejects_what_does_not_exist() -> None:
    command, _ = _resolve(["db", "backup", "x"])
    assert command.name == "backup" and "--config" in _options(command)
    assert _is_group(_resolve(["db", "bakup"])[0])
    assert "--no-such-flag" not in _options(_resolve(["init", "miner"])[0])


@pytest.mark.slow
def test_the_try_it_block_runs(tmp_path: Path) -> None:
    (script,) = [block for run, block in _blocks() if run]
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("BYTELEAP_")}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / ".byteleap" / "validator.toml").is_file()
    assert (tmp_path / "validator-backup.db").stat().st_size > 0
    assert "(head)" in done.stdout.splitlines()[-1]
