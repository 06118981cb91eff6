"""Checks of the host itself: ports free to bind, the clock in sync, disk space."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import shutil
import socket
from pathlib import Path

import psutil

from byteleap.commands.doctor_checks.model import Finding, blocking, fail, ok, skip, warn

_GIB = 1 << 30


def port_verdict(name: str, host: str, port: int, error: OSError | None, setting: str) -> Finding:
    """What binding ``host:port`` said (``error`` None: it bound), as a finding."""
    check = f"port {name}"
    where = f"{host}:{port}"
    if error is None:
        return ok(check, f"{where} is free")
    if error.errno == errno.EADDRINUSE:
        return fail(
            check,
            f"{where} is in use",
            f"stop what listens there (`ss -ltnp 'sport = :{port}'` names it) or change {setting}",
        )
    if error.errno == errno.EACCES:
        return fail(
            check,
            f"{where}: permission denied (ports below 1024 need privileges)",
            f"set {setting} to a port above 1023",
        )
    if error.errno == errno.EADDRNOTAVAIL:
        return fail(
            check,
            f"{host} is not an address of this host",
            f"set the host in {setting.rsplit('.', 1)[0] or setting} to one of this host's "
            "addresses (`ip -brief addr`), or 0.0.0.0",
        )
    return fail(check, f"{where}: cannot bind: {error.strerror or error}", f"check {setting}")


def try_bind(host: str, port: int) -> OSError | None:
    """Bind (no listen) as the servers do, with SO_REUSEADDR: a port held only by closed
    connections in TIME_WAIT counts as free, as it does for them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return OSError(errno.EADDRNOTAVAIL, str(exc))
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return exc
    return None


async def check_port(name: str, host: str, port: int | None, setting: str) -> Finding:
    if port is None:
        return skip(f"port {name}", f"not configured ({setting} unset)")
    if port == 0:
        return skip(f"port {name}", f"{setting} = 0: the system picks a free port")
    error = await blocking(lambda: try_bind(host, port))
    return port_verdict(name, host, port, error, setting)


def clock_verdict(returncode: int | None, stdout: str, stderr: str) -> Finding:
    """``timedatectl show -p NTPSynchronized --value`` (None: not installed) as a finding."""
    if returncode is None:
        return skip("clock", "timedatectl is not installed: cannot tell whether NTP syncs")
    if returncode != 0:
        why = (stderr.strip().splitlines() or ["no output"])[0]
        return skip("clock", f"timedatectl cannot tell ({why})")
    value = stdout.strip().lower()
    if value == "yes":
        return ok("clock", "NTP synchronized")
    return warn(
        "clock",
        f"not synchronized with NTP (NTPSynchronized={value or 'unknown'}): signed requests "
        "older than their allowed age are refused",
        "sudo timedatectl set-ntp true (or run chrony / systemd-timesyncd)",
    )


async def check_clock() -> Finding:
    program = shutil.which("timedatectl")
    if program is None:
        return clock_verdict(None, "", "")
    process = await asyncio.create_subprocess_exec(
        program, "show", "-p", "NTPSynchronized", "--value",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:  # abandoned at its deadline: leave nothing behind
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return clock_verdict(process.returncode, out.decode(errors="replace"), err.decode())


def disk_verdict(path: Path, free_bytes: int, min_free_gib: float, setting: str) -> Finding:
    free_gib = free_bytes / _GIB
    if free_gib < min_free_gib:
        return warn(
            "disk",
            f"{free_gib:.1f} GiB free under {path} (below {min_free_gib:g} GiB)",
            f"free space on that filesystem, or move {setting} to a larger one",
        )
    return ok("disk", f"{free_gib:.1f} GiB free under {path}")


def _existing(path: Path) -> Path:
    # The home is created at first start; its nearest existing parent is where it will live.
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


async def check_disk(home: Path, min_free_gib: float, setting: str) -> Finding:
    where = _existing(home)
    usage = await blocking(lambda: psutil.disk_usage(str(where)))
    return disk_verdict(home, int(usage.free), min_free_gib, setting)
