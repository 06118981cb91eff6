"""The worker's side: one WireGuard interface per lease, configured only from peer sets the
member verified.

`LinkCommands` runs ``wg``, ``ip`` and ``wireguard-go`` (optionally inside a network
namespace), each bounded in time. `MemberLink` owns one lease's interface: `up` creates it
with a fresh key pair (the private key reaches ``wg`` through a pipe only), `apply` checks a
`SignedPeerSet` with its `PeerSetVerifier` and then makes the interface match it exactly
(``wg syncconf``: peers not in the set are dropped), `down` deletes the interface and
forgets the key.

Userspace (``wireguard-go``) or kernel WireGuard: ``userspace=True`` starts ``wireguard-go``
in the foreground and keeps its process; otherwise ``ip link add … type wireguard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field

from byteleap.net.wireguard.errors import LinkCommandFailed
from byteleap.net.wireguard.exchange import PeerSetVerdict, PeerSetVerifier
from byteleap.net.wireguard.keys import WireGuardKeyPair
from byteleap.net.wireguard.messages import JoinRequest, SignedPeerSet, check_endpoint
from byteleap.net.wireguard.render import render_config

log = logging.getLogger(__name__)

_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_STDERR_TAIL = 500


@dataclass(frozen=True)
class LinkCommands:
    """Runs link tools, inside ``netns`` when given; every command ends within ``timeout_s``."""

    netns: str | None = None
    timeout_s: float = 10.0

    def argv(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else list(argv)

    async def run(self, *argv: str, stdin: bytes | None = None) -> str:
        """stdout of the command; `LinkCommandFailed` if it fails, hangs or is missing."""
        full = self.argv(*argv)
        try:
            proc = await asyncio.create_subprocess_exec(
                *full,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise LinkCommandFailed(f"{argv[0]}: {exc}", command=argv[0]) from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), self.timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise LinkCommandFailed(
                f"{argv[0]} did not finish in {self.timeout_s:g}s", command=argv[0]
            ) from None
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-_STDERR_TAIL:]
            raise LinkCommandFailed(
                f"{' '.join(argv[:3])} failed ({proc.returncode}): {tail}",
                command=argv[0],
                returncode=proc.returncode,
            )
        return out.decode(errors="replace")


@dataclass
class MemberLink:
    """One lease's WireGuard interface on a worker."""

    ifname: str
    listen_port: int
    verifier: PeerSetVerifier
    commands: LinkCommands = field(default_factory=LinkCommands)
    userspace: bool = True
    keepalive_s: int = 25
    keys: WireGuardKeyPair | None = field(default=None, repr=False)
    address: str | None = None
    _daemon: asyncio.subprocess.Process | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _IFNAME.match(self.ifname):
            raise ValueError(f"interface name {self.ifname!r} must be 1-15 of [A-Za-z0-9_.-]")
        if not 1 <= self.listen_port <= 65_535:
            raise ValueError("listen_port must be 1-65535")

    async def up(self) -> str:
        """Create the interface with a new key pair; its public key."""
        if self.keys is not None:
            raise LinkCommandFailed(f"{self.ifname} is already up", command="up")
        try:
            await self._create()
            keys = WireGuardKeyPair.generate()
            await self.commands.run(
                "wg", "set", self.ifname, "listen-port", str(self.listen_port),
                "private-key", "/dev/stdin",
                stdin=keys.private_key_base64().encode(),
            )  # fmt: skip
            await self.commands.run("ip", "link", "set", self.ifname, "up")
        except BaseException:
            await self.down()
            raise
        self.keys = keys
        return keys.public_key

    async def _create(self) -> None:
        if not self.userspace:
            await self.commands.run("ip", "link", "add", self.ifname, "type", "wireguard")
            return
        argv = self.commands.argv("wireguard-go", "-f", self.ifname)
        try:
            self._daemon = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise LinkCommandFailed(f"wireguard-go: {exc}", command="wireguard-go") from None
        # wireguard-go answers `wg` once its control socket exists.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.commands.timeout_s
        while True:
            if self._daemon.returncode is not None:
                raise LinkCommandFailed(
                    f"wireguard-go exited ({self._daemon.returncode}) creating {self.ifname}",
                    command="wireguard-go",
                )
            try:
                await self.commands.run("wg", "show", self.ifname, "public-key")
                return
            except LinkCommandFailed:
                if loop.time() > deadline:
                    raise
            await asyncio.sleep(0.05)

    def join_request(self, *, lease_id: str, tenant_id: int, underlay_host: str) -> JoinRequest:
        """What the miner signs and sends to the gateway for this member."""
        if self.keys is None:
            raise LinkCommandFailed(f"{self.ifname} is not up", command="join")
        host = f"[{underlay_host}]" if ":" in underlay_host else underlay_host
        return JoinRequest(
            lease_id=lease_id,
            tenant_id=tenant_id,
            public_key=self.keys.public_key,
            endpoint=check_endpoint(f"{host}:{self.listen_port}"),
        )

    async def apply(self, message: SignedPeerSet | bytes | str) -> PeerSetVerdict:
        """Verify, then make the interface match the peer set; a refused one changes nothing."""
        if self.keys is None:
            raise LinkCommandFailed(f"{self.ifname} is not up", command="apply")
        verdict = self.verifier.check(message)
        if not verdict.ok:
            return verdict
        peer_set = verdict.peer_set
        assert peer_set is not None
        prefix = peer_set.subnet.split("/")[1]
        if self.address != peer_set.address:
            await self.commands.run("ip", "address", "flush", "dev", self.ifname)
            await self.commands.run(
                "ip", "address", "add", f"{peer_set.address}/{prefix}", "dev", self.ifname
            )
            self.address = peer_set.address
        config = render_config(
            private_key=self.keys.private_key_base64(),
            listen_port=self.listen_port,
            peer_set=peer_set,
            keepalive_s=self.keepalive_s,
        )
        await self.commands.run("wg", "syncconf", self.ifname, "/dev/stdin", stdin=config.encode())
        log.info(
            "peer set applied",
            extra={"ifname": self.ifname, "epoch": peer_set.epoch, "peers": len(peer_set.peers)},
        )
        return verdict

    async def peer_keys(self) -> set[str]:
        """The public keys of the peers configured now."""
        out = await self.commands.run("wg", "show", self.ifname, "peers")
        return {line.strip() for line in out.splitlines() if line.strip()}

    async def down(self) -> None:
        """Delete the interface and forget the key pair; safe to call more than once."""
        self.keys = None
        self.address = None
        with contextlib.suppress(LinkCommandFailed):
            await self.commands.run("ip", "link", "delete", self.ifname)
        daemon, self._daemon = self._daemon, None
        if daemon is not None and daemon.returncode is None:
            daemon.terminate()
            try:
                await asyncio.wait_for(daemon.wait(), 5.0)
            except TimeoutError:
                daemon.kill()
                await daemon.wait()
