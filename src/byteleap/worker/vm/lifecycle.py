"""A VM lease's life on its host: disks (a qcow2 overlay over the base image, the NoCloud
seed), then define, start, destroy and undefine through libvirt-python.

libvirt-python is optional (``pip install 'byteleap[vm]'``, which builds against the host's
libvirt); without it every call raises ``HypervisorUnavailableError`` saying so. The disks
need ``qemu-img`` (qemu-utils) and ``genisoimage``. libvirt's calls block, so each runs in a
thread. The domain is checked against the VM policy (``check_domain``) and the user-data
against its own (``check_user_data``) right before they are used, whoever built them.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

from byteleap.worker.vm.cloud_init import check_user_data, render_meta_data, render_user_data
from byteleap.worker.vm.domain import DomainType, check_domain, render_domain
from byteleap.worker.vm.errors import HypervisorUnavailableError, VmLifecycleError
from byteleap.worker.vm.spec import VmSpec

TOOL_TIMEOUT_S = 120.0


class VmState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    SHUT_OFF = "shut_off"
    CRASHED = "crashed"
    OTHER = "other"
    ABSENT = "absent"


def _libvirt() -> Any:
    try:
        import libvirt
    except ImportError as exc:
        raise HypervisorUnavailableError(
            "libvirt-python is not installed: pip install 'byteleap[vm]' "
            "(it builds against the host's libvirt: apt-get install libvirt-dev pkg-config)"
        ) from exc
    # libvirt prints every error to stderr by default; ours carry them in exceptions.
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


async def _run_tool(argv: list[str]) -> None:
    if shutil.which(argv[0]) is None:
        raise HypervisorUnavailableError(f"{argv[0]} is not installed", tool=argv[0])
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), TOOL_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise VmLifecycleError(f"{argv[0]} took over {TOOL_TIMEOUT_S:g} s", tool=argv[0]) from None
    if process.returncode != 0:
        raise VmLifecycleError(
            f"{argv[0]} failed: {stderr.decode(errors='replace').strip()[-2000:]}", tool=argv[0]
        )


def _check_disk_paths(spec: VmSpec) -> None:
    for path in (spec.overlay, spec.seed):
        if Path(path).exists():
            raise VmLifecycleError(f"{path} exists already: a lease never reuses a disk")
    if not Path(spec.base_image).is_file():
        raise VmLifecycleError(f"base image {spec.base_image} does not exist")


def _write_seed_files(directory: str, spec: VmSpec) -> list[str]:
    user_data = render_user_data(spec)
    check_user_data(user_data)
    files = {"user-data": user_data, "meta-data": render_meta_data(spec)}
    for name, text in files.items():
        Path(directory, name).write_text(text)
    return [str(Path(directory, name)) for name in files]


async def prepare_disks(spec: VmSpec) -> None:
    """The overlay over the base image and the seed ISO; neither may exist yet."""
    await asyncio.to_thread(_check_disk_paths, spec)
    overlay = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", spec.base_image]
    await _run_tool([*overlay, spec.overlay])
    with tempfile.TemporaryDirectory(prefix="byteleap-seed-") as tmp:
        seed_files = await asyncio.to_thread(_write_seed_files, tmp, spec)
        iso = ["genisoimage", "-quiet", "-output", spec.seed, "-volid", "cidata"]
        await _run_tool([*iso, "-joliet", "-rock", *seed_files])


def _remove_disks(spec: VmSpec) -> None:
    for path in (spec.overlay, spec.seed):
        Path(path).unlink(missing_ok=True)


class VmHost:
    """One libvirt connection (``qemu:///system`` on a GPU host; ``test:///default`` in tests)."""

    def __init__(self, uri: str = "qemu:///system", *, domain_type: DomainType = "kvm") -> None:
        self.uri = uri
        self.domain_type = domain_type
        self._conn: Any = None

    def _connection(self) -> Any:
        libvirt = _libvirt()
        if self._conn is None:
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise HypervisorUnavailableError(f"cannot open {self.uri}: {exc}") from exc
        return self._conn

    async def _call(self, what: str, name: str, fn: Any) -> Any:
        def run() -> Any:
            libvirt = _libvirt()
            conn = self._connection()
            try:
                return fn(libvirt, conn)
            except libvirt.libvirtError as exc:
                raise VmLifecycleError(f"cannot {what} {name}: {exc}", domain=name) from exc

        return await asyncio.to_thread(run)

    async def define(self, spec: VmSpec) -> None:
        xml = render_domain(spec, domain_type=self.domain_type)
        check_domain(xml)
        await self._call("define", spec.name, lambda _lv, conn: conn.defineXML(xml))

    async def start(self, name: str) -> None:
        await self._call("start", name, lambda _lv, conn: conn.lookupByName(name).create())

    async def destroy(self, name: str) -> None:
        """Power the VM off at once (the lease is over: there is nothing to shut down for)."""

        def destroy(libvirt: Any, conn: Any) -> None:
            domain = conn.lookupByName(name)
            if domain.isActive():
                domain.destroy()

        await self._call("destroy", name, destroy)

    async def undefine(self, name: str) -> None:
        await self._call("undefine", name, lambda _lv, conn: conn.lookupByName(name).undefine())

    async def state(self, name: str) -> VmState:
        def state(libvirt: Any, conn: Any) -> VmState:
            try:
                code = conn.lookupByName(name).state()[0]
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    return VmState.ABSENT
                raise
            return {
                libvirt.VIR_DOMAIN_RUNNING: VmState.RUNNING,
                libvirt.VIR_DOMAIN_PAUSED: VmState.PAUSED,
                libvirt.VIR_DOMAIN_SHUTOFF: VmState.SHUT_OFF,
                libvirt.VIR_DOMAIN_CRASHED: VmState.CRASHED,
            }.get(code, VmState.OTHER)

        result: VmState = await self._call("read the state of", name, state)
        return result

    async def addresses(self, name: str) -> list[str]:
        """The running guest's addresses from libvirt's DHCP leases, IPv4 first (empty until
        the guest has asked for one, and for a domain that is not running)."""

        def addresses(libvirt: Any, conn: Any) -> list[str]:
            domain = conn.lookupByName(name)
            if not domain.isActive():
                return []
            source = libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE
            found = [
                (entry.get("type", 0), str(entry["addr"]))
                for interface in domain.interfaceAddresses(source).values()
                for entry in interface.get("addrs") or []
            ]
            ipv4 = libvirt.VIR_IP_ADDR_TYPE_IPV4
            return [addr for kind, addr in sorted(found, key=lambda f: f[0] != ipv4)]

        result: list[str] = await self._call("read the addresses of", name, addresses)
        return result

    async def remove(self, spec: VmSpec) -> None:
        """Destroy, undefine and delete the lease's own disks (never the base image)."""
        if await self.state(spec.name) != VmState.ABSENT:
            await self.destroy(spec.name)
            await self.undefine(spec.name)
        await asyncio.to_thread(_remove_disks, spec)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
