"""The package layout's contract (DESIGN §2): layers, no import cycles, light clients.

``make lint`` runs the import-linter contracts in ``pyproject.toml``; these tests show that
they can fail, and check what import-linter cannot express: no cycle between any two modules,
counting imports inside functions (a deferred import that dodges a cycle is still a cycle).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "alembic", "pynvml", "psutil")


def _loaded_by(module: str) -> list[str]:
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize("module", ["byteleap.net.messages", "byteleap.sdk"])
def test_the_wire_protocol_and_the_sdk_load_no_server_code(module: str) -> None:
    loaded = _loaded_by(module)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    executors = [m for m in loaded if m.startswith(("byteleap.worker", "byteleap.gateway"))]
    assert heavy == [] and executors == [], (heavy, executors)


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append(
                        (target, iter(sorted(graph.find_modules_directly_imported_by(target))))
                    )
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_two_modules_import_each_other_even_inside_functions() -> None:
    graph = grimp.build_graph("byteleap", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_deferred_import_cycle(tmp_path: Path) -> None:
    package = tmp_path / "cyclic"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from cyclic import b\n")
    (package / "b.py").write_text("def later():\n    from cyclic import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("cyclic", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert _cycles(graph) == [["cyclic.a", "cyclic.b"]]


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


BREAKS = {
    "a worker importing the miner": ("worker/__init__.py", "import byteleap.miner.errors\n"),
    "the protocol importing the store inside a function": (
        "protocol/ids.py",
        "def later() -> None:\n    import byteleap.store.errors\n",
    ),
    "the transport importing a role": ("net/__init__.py", "import byteleap.validator.outcome\n"),
    "the SDK importing SQLAlchemy": ("sdk/errors.py", "import sqlalchemy\n"),
    "the pure core importing the protocol": ("scoring/params.py", "import byteleap.protocol\n"),
}


@pytest.mark.slow
def test_the_layering_contract_passes_here_and_fails_on_each_break(tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    shutil.copytree(ROOT / "src", clean / "src", ignore=shutil.ignore_patterns("__pycache__"))
    assert _lint_imports(clean).returncode == 0, _lint_imports(clean).stdout[-3000:]
    for why, (path, line) in BREAKS.items():
        tree = tmp_path / why.replace(" ", "-")
        shutil.copytree(clean, tree)
        target = tree / "src" / "byteleap" / path
        target.write_text(target.read_text() + "\n" + line)
        result = _lint_imports(tree)
        assert result.returncode != 0, f"{why}: the contract did not notice"
        assert "BROKEN" in result.stdout, why
