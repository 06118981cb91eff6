"""Child processes of a devnet: started together, logged to files, stopped together.

Each child runs in its own process group so that stopping it also stops anything
it spawned; `stop_all` sends SIGTERM, waits, then SIGKILLs what is left, so a
Ctrl-C or a failed step never leaves a process behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] = field(repr=False)
    # A child whose exit is part of the plan (a worker its miner is meant to refuse).
    may_exit: bool = False
    args: tuple[str, ...] = ()  # its `byteleap …` arguments, to start it again

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Starts `byteleap …` children and guarantees they are gone on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, **(env or {})}
        self.children: list[Child] = []

    def start(self, name: str, *args: str, may_exit: bool = False) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "byteleap.cli", *args],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
            start_new_session=True,
        )
        child = Child(name, process, log_path, log_file, may_exit=may_exit, args=args)
        self.children.append(child)
        log.info("started", extra={"child": name, "pid": process.pid})
        return child

    def stop(self, child: Child, grace_s: float = 5.0) -> None:
        if child.alive:
            _signal_group(child.process, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while child.alive and time.monotonic() < deadline:
                time.sleep(0.05)
            if child.alive:
                _signal_group(child.process, signal.SIGKILL)
            child.process.wait()
        child._log_file.close()

    def kill(self, name: str) -> Child:
        """SIGKILL the child ``name`` and what it spawned, as a crash would; it leaves the
        supervised set (a dead child there fails the run) until `start` brings it back."""
        child = next(c for c in self.children if c.name == name)
        _signal_group(child.process, signal.SIGKILL)
        child.process.wait()
        child._log_file.close()
        self.children.remove(child)
        return child

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child)
        self.children.clear()

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
