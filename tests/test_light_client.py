"""A customer's CLI is light: `byteleap --help` and the customer commands run in a fresh
interpreter without loading the store, the chain, the ML stack or any server role (issue 19)."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest

from byteleap.cli import COMMANDS, app, load

# What a customer's laptop must never need to import to use the CLI.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "torch",
    "numpy",
    "bittensor",
    "pynvml",
    "psutil",
    "fastapi",
    "uvicorn",
    "grpc",
    "kubernetes",
    "byteleap.store",
    "byteleap.chain",
    "byteleap.worker",
    "byteleap.validator",
    "byteleap.miner",
    "byteleap.gateway",
)

CUSTOMER_HELP = (
    [],
    ["jobs"],
    ["jobs", "submit"],
    ["jobs", "list"],
    ["leases"],
    ["leases", "create"],
    ["leases", "exec"],
    ["leases", "shell"],
    ["services"],
    ["services", "create"],
    ["balance"],
    ["usage"],
    ["prices"],
    ["status"],
)

# Runs the real entry point (`byteleap = "byteleap.cli:main"`) and reports what it loaded on the
# last line, after the help text.
_PROBE = """
import json, sys
sys.argv = ["byteleap", *json.loads(sys.argv[1])]
from byteleap.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\nPROBE " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _probe(args: list[str], env: dict[str, str] | None = None) -> tuple[str, int, set[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    head, _, probe = done.stdout.rpartition("\nPROBE ")
    report = json.loads(probe)
    return head, report["code"], set(report["modules"])


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", CUSTOMER_HELP, ids=lambda a: " ".join(a) or "byteleap")
def test_customer_help_loads_nothing_heavy(args: list[str]) -> None:
    text, code, modules = _probe([*args, "--help"])
    assert code in (0, None)
    assert "Usage:" in text
    assert _heavy(modules) == []


def test_the_probe_sees_a_server_command_load_its_role() -> None:
    # The probe is only worth something if it does see heavy imports where there are some.
    _, code, modules = _probe(["db", "--help"])
    assert code in (0, None)
    assert "byteleap.store" in _heavy(modules)


def test_shell_completion_lists_every_command_and_loads_nothing_heavy() -> None:
    completion = {"_BYTELEAP_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "byteleap "}
    text, _, modules = _probe([], env=completion)
    for name in COMMANDS:
        assert f'"{name}":' in text
    assert _heavy(modules) == []


def test_top_help_loads_no_command_module() -> None:
    _, _, modules = _probe(["--help"])
    assert sorted(m for m in modules if m.startswith("byteleap.commands.")) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_listing_says_what_the_command_says(name: str) -> None:
    # The help `byteleap --help` shows without loading a command is the help it has once loaded.
    command = load(name)
    lazy = COMMANDS[name]
    first_paragraph = inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert (lazy.help or lazy.listing) == " ".join(first_paragraph.split())
    assert command.name == name


def test_an_unknown_command_is_still_refused() -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["lease"])
    assert result.exit_code == 2
    assert "No such command 'lease'" in result.output and "leases" in result.output
