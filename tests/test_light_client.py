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
    "asyncssh",  # the worker's SSH server; the customer's side is the system's ssh
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
    ["leases", "ssh"],
    ["leases", "ssh-proxy"],
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


# Imported only when installed, each guarded by its importer: a client install lacks them and
# runs the same (rich.pretty: attrs; httpx: brotli and zstandard decoders, and click for its
# own command line; cryptography's SSH key loader: bcrypt, for encrypted private keys only).
OPTIONAL_IMPORTS = {"attr", "brotli", "brotlicffi", "zstandard", "click", "bcrypt"}


def _loaded_at_startup() -> set[str]:
    """What this interpreter loads before any byteleap code (site hooks such as setuptools'
    ``_distutils_hack``): not the client's to need."""
    done = subprocess.run(
        [sys.executable, "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return {m.partition(".")[0] for m in json.loads(done.stdout)}


def _base_install() -> set[str]:
    """The distributions `pip install byteleap[client]` brings, as installed metadata declares
    them: the base requirements and theirs, recursively, no extras."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = ["byteleap"]
    while todo:
        name = todo.pop()
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue  # not for this platform or Python (its marker said so)
        for line in needs:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue
            dependency = canonicalize_name(requirement.name)
            if dependency not in seen:
                seen.add(dependency)
                todo.append(dependency)
    return seen


def test_the_customer_commands_need_only_the_base_install() -> None:
    """Every third-party module a customer command loads comes with the client install, so
    `byteleap[client]` alone runs them (test_customer_help_loads_nothing_heavy says no server
    module loads; this says nothing outside the base dependencies does either)."""
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    base = _base_install()
    assert {"pydantic", "httpx", "typer"} <= base and not {"fastapi", "bittensor"} & base
    owners = packages_distributions()
    at_startup = _loaded_at_startup()
    loaded: set[str] = set()
    for args in ([], ["jobs", "submit"], ["leases", "forward"], ["services", "create"]):
        _, _, modules = _probe([*args, "--help"])
        loaded |= {m.partition(".")[0] for m in modules}
    ours = loaded - at_startup - set(sys.stdlib_module_names) - OPTIONAL_IMPORTS
    third_party = {m for m in ours if m in owners}
    outside = {
        m: owners[m]
        for m in third_party
        if m != "byteleap" and not {canonicalize_name(d) for d in owners[m]} & base
    }
    assert outside == {}, outside


_WITHOUT_SERVER = """
import sys
from importlib.abc import MetaPathFinder
class NotInstalled(MetaPathFinder):  # a client install: no server packages to find
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"sqlalchemy", "alembic", "bittensor", "fastapi", "numpy"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NotInstalled())
sys.argv = ["byteleap", *sys.argv[1:]]
from byteleap.cli import main
main()
"""


def test_a_server_command_on_a_client_install_says_what_to_install() -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _WITHOUT_SERVER, *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    server = run("db", "--help")
    assert server.returncode == 2
    assert "needs the server install" in server.stderr
    assert "pip install 'byteleap[server]'" in server.stderr
    customer = run("jobs", "list", "--help")  # the customer's commands are unaffected
    assert customer.returncode == 0 and "Usage:" in customer.stdout, customer.stderr
