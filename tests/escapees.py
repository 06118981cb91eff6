"""Processes that try to outlive their job, for the process executor's tests: one in a session
of its own (setsid), one double-forked (orphaned at once) and one both; each has a marker in
its argv, by which the tests look for survivors."""

from __future__ import annotations

import psutil

#: The escapee's program (an input ``escapee.py``): says it runs by creating a file, then waits.
ESCAPEE = 'import sys, time\nopen(sys.argv[2], "w").close()\ntime.sleep(300)\n'


def escape_script(python: str, marker: str) -> str:
    """Shell lines starting the three escapees and waiting until each of them runs."""
    run = f"{python} escapee.py {marker}"
    return (
        f"setsid sh -c '{run} up1' &\n"
        f"( ({run} up2 &) & )\n"
        f"( (setsid {run} up3 &) & )\n"
        "while [ ! -e up1 ] || [ ! -e up2 ] || [ ! -e up3 ]; do sleep 0.02; done\n"
    )


def running_with(marker: str) -> set[int]:
    """The live (not zombie) processes with ``marker`` as an argument of theirs."""
    found = set()
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if marker in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.add(process.pid)
    return found
