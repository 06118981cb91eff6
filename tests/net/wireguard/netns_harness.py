"""Network namespaces for the WireGuard tests: one "underlay" namespace with a bridge, and a
namespace per member host wired to it by a veth pair.

Every name starts with a per-run random prefix, and `Underlay.close` kills whatever still
runs inside the namespaces it made (by pid) and deletes them, which deletes their links.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

UNDERLAY_NET = "192.168.231"
TOOLS = ("ip", "wg", "wireguard-go")


def missing_prerequisite() -> str | None:
    """Why the netns tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not Path("/dev/net/tun").exists():
        return "needs /dev/net/tun for wireguard-go"
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        return f"missing {', '.join(absent)} (apt: iproute2 wireguard-tools wireguard-go)"
    return None


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@dataclass
class Underlay:
    prefix: str = field(default_factory=lambda: "blw" + secrets.token_hex(2))
    namespaces: list[str] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)  # name -> underlay IP

    @property
    def bridge_ns(self) -> str:
        return f"{self.prefix}-u"

    def open(self) -> None:
        _ip("netns", "add", self.bridge_ns)
        self.namespaces.append(self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def add_host(self, name: str) -> str:
        """A member host on the underlay; its underlay IP."""
        ns = self.ns(name)
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        address = f"{UNDERLAY_NET}.{10 + len(self.hosts)}"
        host_end, bridge_end = f"{self.prefix}{name}h", f"{self.prefix}{name}b"
        _ip("link", "add", host_end, "type", "veth", "peer", "name", bridge_end)
        _ip("link", "set", host_end, "netns", ns)
        _ip("link", "set", bridge_end, "netns", self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "set", bridge_end, "master", "br0", "up")
        _ip("-n", ns, "address", "add", f"{address}/24", "dev", host_end)
        _ip("-n", ns, "link", "set", host_end, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        self.hosts[name] = address
        return address

    def run(self, name: str, *argv: str) -> str:
        done = subprocess.run(
            ["ip", "netns", "exec", self.ns(name), *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=20,
        )
        return done.stdout

    def reachable(self, name: str, targets: list[str], *, timeout_s: float) -> dict[str, bool]:
        """From host ``name``, which overlay addresses answer a TCP connect (port 9)."""
        out = self.run(name, sys.executable, "-c", _PROBE, str(timeout_s), *targets)
        results: dict[str, str] = json.loads(out)
        return {t: results[t] in ("connected", "refused") for t in targets}

    def close(self) -> None:
        for ns in reversed(self.namespaces):
            pids = subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10
            ).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True, timeout=10)
        self.namespaces.clear()


# A closed port answers with a reset: "refused" proves the packet reached the host and came
# back, without a listener to start and stop. Silence (timeout) or no route means unreachable.
_PROBE = """
import asyncio, json, sys

async def probe(host, timeout):
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, 9), timeout)
        writer.close()
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, asyncio.TimeoutError):
        return "timeout"
    except OSError as exc:
        return f"error:{exc.errno}"

async def main():
    timeout, targets = float(sys.argv[1]), sys.argv[2:]
    results = await asyncio.gather(*(probe(t, timeout) for t in targets))
    print(json.dumps(dict(zip(targets, results))))

asyncio.run(main())
"""
