"""`byteleap leases ssh` hands the system's ssh its proxy and known_hosts, and the API key only
through the environment (a stand-in `ssh` on PATH records what it got; the real ssh runs in
tests/gateway/test_lease_ssh_e2e.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RECORDER = """#!{python}
import json, os, sys
with open({out!r}, "w") as f:
    json.dump({{"argv": sys.argv[1:], "env": dict(os.environ)}}, f)
"""


def test_leases_ssh_runs_ssh_with_the_proxy_and_the_key_in_the_environment(
    tmp_path: Path,
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record.json"
    fake = bin_dir / "ssh"
    fake.write_text(RECORDER.format(python=sys.executable, out=str(record)))
    fake.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
    }
    env.pop("BYTELEAP_API_KEY", None)
    command = [
        sys.executable, "-m", "byteleap.cli", "leases", "ssh", "lease_abc",
        "--gateway", "http://gw.example:8080", "--api-key", "blk_secret", "--", "-t", "nvidia-smi",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(record.read_text())
    argv, seen = got["argv"], got["env"]
    assert not any("blk_secret" in arg for arg in argv)  # never in `ps`
    assert seen["BYTELEAP_API_KEY"] == "blk_secret"
    assert seen["BYTELEAP_GATEWAY_URL"] == "http://gw.example:8080"
    proxy = f"ProxyCommand={sys.executable} -m byteleap.cli leases ssh-proxy %h"
    known = tmp_path / "cfg" / "byteleap" / "known_hosts"
    assert proxy in argv and f"UserKnownHostsFile={known}" in argv
    assert "StrictHostKeyChecking=accept-new" in argv
    assert argv[-3:] == ["lease_abc", "-t", "nvidia-smi"]  # ssh reads options after the host
    assert known.parent.is_dir()


def test_leases_ssh_without_a_key_fails_before_running_ssh(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BYTELEAP_API_KEY"}
    command = [sys.executable, "-m", "byteleap.cli", "leases", "ssh", "lease_abc"]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode != 0 and b"no API key" in done.stderr
