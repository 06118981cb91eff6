"""A worker-like parent for tests: starts a job through the process executor, prints
{"job": pid, "guard": pid, "released": pid or null} on one line, then waits to be killed.

    worker_like.py WORKDIR [--released] [--guard-killed]

The job is a shell whose group holds two background sleeps and one orphaned sleep (its
subshell exited: reparented, but still in the group). ``--released`` also starts a sleep in
a session of its own and has the guard watch and then release it (it must survive);
``--guard-killed`` kills the guard once the job runs.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from byteleap.cloud.executors import ExecutionSpec, ProcessExecutor
from byteleap.cloud.executors.process_guard import process_guard

TREE = "(sleep 300 &); sleep 300 & sleep 300 & echo ready; wait"


def unguarded_sleep() -> int:
    """A sleep in a session of its own that the guard watched, then released."""
    pid = subprocess.Popen(
        ["sleep", "300"],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ).pid
    process_guard().watch(pid)
    process_guard().release(pid)
    return pid


def kill_guard(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


async def main(workdir: Path, flags: list[str]) -> None:
    released = unguarded_sleep() if "--released" in flags else None
    spec = ExecutionSpec.parse({"command": ["sh", "-c", TREE], "timeout_s": 600})
    job = await ProcessExecutor().start(spec, workdir / "job")
    async for line in job.logs():  # the whole tree exists once it says so
        if line.line == "ready":
            break
    guard = process_guard().pid
    if "--guard-killed" in flags and guard is not None:
        kill_guard(guard)
    print(json.dumps({"job": job.pid, "guard": guard, "released": released}), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2:]))
