"""A VM lease's lifecycle through real libvirt-python and real disk tools.

libvirt's ``test:///default`` driver runs inside the library (no daemon, no KVM): it parses
and keeps the domain as the QEMU driver would and moves it through its states, so define,
start, destroy, undefine and state are exercised for real; what it does not do is boot a
guest. The disks are made by the real ``qemu-img`` and ``genisoimage``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from byteleap.worker.vm import (
    HypervisorUnavailableError,
    VmHost,
    VmLifecycleError,
    VmSpec,
    VmState,
    prepare_disks,
)
from worker.vm.vm_fixtures import missing, need_tools, vm_spec


@pytest.fixture
def libvirt_here() -> None:
    if importlib.util.find_spec("libvirt") is None:
        missing("libvirt-python is not installed (pip install -e '.[vm]')")


needs_libvirt = pytest.mark.usefixtures("libvirt_here")


@pytest.fixture
def spec(tmp_path: Path) -> VmSpec:
    need_tools("qemu-img")
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    return vm_spec(tmp_path, name=f"lease-{uuid.uuid4().hex[:8]}")


def _output(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def _exists(*paths: str) -> list[bool]:
    return [Path(p).exists() for p in paths]


async def test_disks_are_an_overlay_over_the_base_and_a_cidata_seed(spec: VmSpec) -> None:
    need_tools("qemu-img", "genisoimage", "isoinfo")
    await prepare_disks(spec)
    info = json.loads(
        await asyncio.to_thread(_output, "qemu-img", "info", "--output=json", spec.overlay)
    )
    assert info["format"] == "qcow2" and info["backing-filename"] == spec.base_image
    volume = await asyncio.to_thread(_output, "isoinfo", "-d", "-i", spec.seed)
    assert "Volume id: cidata" in volume
    user_data = await asyncio.to_thread(
        _output, "isoinfo", "-R", "-i", spec.seed, "-x", "/user-data"
    )
    assert yaml.safe_load(user_data)["users"][0]["ssh_authorized_keys"] == [spec.ssh_public_key]
    with pytest.raises(VmLifecycleError, match="exists already"):
        await prepare_disks(spec)


async def test_disks_need_the_base_image(tmp_path: Path) -> None:
    with pytest.raises(VmLifecycleError, match="base image"):
        await prepare_disks(vm_spec(tmp_path))


@needs_libvirt
async def test_define_start_destroy_undefine(spec: VmSpec) -> None:
    need_tools("genisoimage")
    await prepare_disks(spec)
    host = VmHost("test:///default")
    try:
        assert await host.state(spec.name) == VmState.ABSENT
        await host.define(spec)
        assert await host.state(spec.name) == VmState.SHUT_OFF
        await host.start(spec.name)
        assert await host.state(spec.name) == VmState.RUNNING
        with pytest.raises(VmLifecycleError, match="start"):
            await host.start(spec.name)  # libvirt refuses to start a running domain
        await host.destroy(spec.name)
        assert await host.state(spec.name) == VmState.SHUT_OFF
        await host.start(spec.name)
        await host.remove(spec)
        assert await host.state(spec.name) == VmState.ABSENT
        exists = await asyncio.to_thread(_exists, spec.overlay, spec.seed, spec.base_image)
        assert exists == [False, False, True]
    finally:
        host.close()


@needs_libvirt
async def test_libvirt_sees_the_gpus_and_no_screen(spec: VmSpec) -> None:
    import libvirt as lv

    host = VmHost("test:///default")
    try:
        await host.define(spec)
        conn = lv.open("test:///default")
        xml = conn.lookupByName(spec.name).XMLDesc(0)
        conn.close()
        assert xml.count("<hostdev mode='subsystem' type='pci' managed='yes'>") == 2
        assert "bus='0xc1'" in xml and "<graphics" not in xml
        await host.remove(spec)
    finally:
        host.close()


@needs_libvirt
async def test_an_unknown_domain_is_a_lifecycle_error() -> None:
    host = VmHost("test:///default")
    try:
        with pytest.raises(VmLifecycleError, match="nobody"):
            await host.start("nobody")
    finally:
        host.close()


async def test_an_unreachable_hypervisor_is_a_clear_error() -> None:
    host = VmHost("qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    with pytest.raises(HypervisorUnavailableError):
        await host.state("lease-1")
