"""Fixtures and rules shared by the whole suite."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

pytest_plugins = ["network_fixtures", "store_fixtures"]

# CI runs hypothesis derandomized (`HYPOTHESIS_PROFILE=ci` in .ci/run): the same examples every
# run, so a red CI is reproducible and a rare example cannot turn one stop red at random.
# Locally the default profile keeps exploring new examples, where finding one is welcome.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Gated kinds of tests that must never silently skip when CI says they can run.
_REQUIRED_IN_CI = {
    "postgres": "BYTELEAP_REQUIRE_POSTGRES",
    "container": "BYTELEAP_REQUIRE_CONTAINER",
    "netns": "BYTELEAP_REQUIRE_NETNS",
    "browser": "BYTELEAP_REQUIRE_BROWSER",
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped:
        return
    for marker, env in _REQUIRED_IN_CI.items():
        if item.get_closest_marker(marker) and os.environ.get(env) == "1":
            report.outcome = "failed"
            report.longrepr = f"{marker} test skipped although {env}=1: {report.longrepr}"


_ROOT = Path(__file__).resolve().parent.parent
# What a test run may leave in the repository root (caches, the devnet's state).
_ROOT_LITTER_ALLOWED = {
    ".pytest_cache",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".grimp_cache",
    ".devnet",
}


@pytest.fixture(autouse=True)
def _no_files_left_in_the_repository_root() -> Iterator[None]:
    """A test (or a program it starts with the repository as its working directory) must
    write into its own temporary directory: anything new in the root fails the test that
    made it (an empty ``oom`` file was once found there)."""
    before = set(os.listdir(_ROOT))
    yield
    new = set(os.listdir(_ROOT)) - before - _ROOT_LITTER_ALLOWED
    assert not new, f"the test left {sorted(new)} in the repository root"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    """Call it for a TCP port on 127.0.0.1 that was free a moment ago."""
    return _free_port


@pytest.fixture
def wallet_path(tmp_path: Path) -> Path:
    path = tmp_path / "wallets"
    path.mkdir()
    return path
