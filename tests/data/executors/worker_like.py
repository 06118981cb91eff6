"""A worker-like parent for tests: starts a job through the process executor, prints
{"job": pid, "guard": pid, "released": pid or null, "cgroup": path or null} on one line, then
waits to be killed.

    worker_like.py WORKDIR [--released] [--guard-killed] [--no-cgroups] [--escapees MARKER]

The job is a shell whose group holds two background sleeps and one orphaned sleep (its
subshell exited: reparented, but still in the group). ``--released`` also starts a sleep in
a session of its own and has the guard watch and then release it (it must survive);
``--guard-killed`` kills the guard once the job runs; ``--no-cgroups`` runs the job without a
cgroup (the fallback); ``--escapees MARKER`` adds a ``setsid`` process, a double-forked one and
a double-forked ``setsid`` one, each with MARKER in its argv.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2]))  # the tests' helpers

from byteleap.worker.executors import ProcessExecutor
from byteleap.worker.executors.base import parse_spec
from byteleap.worker.executors.process_guard import process_guard
from escapees import ESCAPEE, escape_script

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
    if "--no-cgroups" in flags:
        os.environ["BYTELEAP_JOB_CGROUPS"] = "off"
    released = unguarded_sleep() if "--released" in flags else None
    tree, inputs = TREE, {}
    if "--escapees" in flags:
        tree = escape_script(sys.executable, flags[flags.index("--escapees") + 1]) + TREE
        inputs = {"escapee.py": ESCAPEE}
    spec = parse_spec({"command": ["sh", "-c", tree], "timeout_s": 600, "inputs": inputs})
    job = await ProcessExecutor().start(spec, workdir / "job")
    async for line in job.logs():  # the whole tree exists once it says so
        if line.line == "ready":
            break
    guard = process_guard().pid
    if "--guard-killed" in flags and guard is not None:
        kill_guard(guard)
    cgroup = str(job.cgroup) if job.cgroup is not None else None
    print(
        json.dumps({"job": job.pid, "guard": guard, "released": released, "cgroup": cgroup}),
        flush=True,
    )
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2:]))
