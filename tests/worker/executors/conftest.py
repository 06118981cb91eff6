"""Fixtures of the executor tests: the host's container engine and a tiny image built locally.

No registry is reachable, so the image is a busybox rootfs (Debian's busybox-static) imported
with ``<engine> import``, once per machine: later sessions find it by its tag.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from byteleap.worker.executors import ContainerEngine, ContainerSettings, UnavailableExecutorError
from byteleap.worker.executors.container_engine import detect_engine

TEST_IMAGE = "localhost/byteleap-test:busybox"
_PT_INTERP = 3


@pytest.fixture(scope="session")
def container_engine() -> ContainerEngine:
    """The engine the container executor would use here; skips only when there is none."""
    try:
        return asyncio.run(detect_engine(ContainerSettings.from_env()))
    except UnavailableExecutorError as exc:
        pytest.skip(f"no usable container engine (podman or docker): {exc}")


@pytest.fixture(scope="session")
def test_image(container_engine: ContainerEngine) -> str:
    """``localhost/byteleap-test:busybox``, imported from a local busybox if missing."""
    inspect = container_engine.argv("image", "inspect", TEST_IMAGE)
    if subprocess.run(inspect, capture_output=True, check=False).returncode == 0:
        return TEST_IMAGE
    busybox = _static_busybox()
    rootfs = _rootfs_tar(busybox)
    imported = subprocess.run(
        container_engine.argv("import", "-", TEST_IMAGE),
        input=rootfs,
        capture_output=True,
        check=False,
    )
    if imported.returncode != 0:
        pytest.fail(f"cannot import the test image: {imported.stderr.decode(errors='replace')}")
    return TEST_IMAGE


def _static_busybox() -> Path:
    found = [Path(p) for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).is_file()]
    if (on_path := shutil.which("busybox")) is not None:
        found.append(Path(on_path))
    for path in found:
        if _is_static_elf(path.resolve()):
            return path.resolve()
    pytest.fail(
        "the container tests build their image from a static busybox and none is installed: "
        "apt-get install busybox-static"
    )


def _is_static_elf(path: Path) -> bool:
    """A 64-bit little-endian ELF without an interpreter (runs in an empty rootfs)."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    return _PT_INTERP not in types


def _rootfs_tar(busybox: Path) -> bytes:
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("work", 0o755)):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, mode
            tar.addfile(entry)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        passwd = b"root:x:0:0:root:/work:/bin/sh\n"
        entry = tarfile.TarInfo("etc/passwd")
        entry.size, entry.mode = len(passwd), 0o644
        tar.addfile(entry, io.BytesIO(passwd))
    return buffer.getvalue()
