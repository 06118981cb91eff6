"""The miner's part in tenants' private networks: the relay between gateway and worker.

- The gateway attaches a lease (``POST /v1/leases/{id}/network``): the miner tells the
  leased worker to bring up the lease's link (`NetworkUp`), with the address it sees the
  worker at and the gateway it must trust.
- The worker answers with its `JoinRequest` (`NetworkJoin`); the miner checks that it is
  for that lease and tenant, signs it with its hotkey (btauth/1) and sends it to the
  gateway's join URL; the peer set that comes back goes to the worker (`NetworkPeers`).
  A refused join takes the link down again (`NetworkDown`).
- Peer sets the gateway pushes later (``POST /v1/leases/{id}/network/peers``) go to the
  worker holding that lease, and when the lease ends the link goes down.

The miner never judges a peer set: the worker accepts only what the gateway signed for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from bittensor.signing import WalletLike
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError

from byteleap.miner.errors import LeaseRefused, WorkerLost, WorkerTimeout
from byteleap.miner.leases import MinerLease
from byteleap.miner.links import WorkerLink
from byteleap.miner.signed_http import MinerApp, parse_body
from byteleap.net.messages import LeaseNetwork, NetworkDown, NetworkJoin, NetworkPeers, NetworkUp
from byteleap.net.wireguard import sign_join
from byteleap.net.wireguard.messages import MAX_AUTH_HEADERS, MAX_PEER_SET_BYTES, SignedPeerSet

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 10.0
# A signed peer set: the body plus btauth/1 headers and JSON quoting, with room to spare.
MAX_JOIN_ANSWER = 2 * MAX_PEER_SET_BYTES + MAX_AUTH_HEADERS * 1024


@dataclass
class Attachment:
    lease_id: str
    worker_id: str
    gateway: str
    network: LeaseNetwork
    joining: bool = False  # one join in flight per lease


class LeaseNetworks:
    """Which leases are in a private network, and the relay of their key exchange."""

    def __init__(
        self,
        wallet: WalletLike,
        hotkey: str,
        links: dict[str, WorkerLink],
        worker_ip: Callable[[str], str | None],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.wallet = wallet
        self.hotkey = hotkey
        self.links = links  # the node's live links, by worker id
        self.worker_ip = worker_ip
        self._http = httpx.AsyncClient(timeout=JOIN_TIMEOUT_S, transport=transport)
        self._attached: dict[str, Attachment] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def attached(self, lease_id: str) -> Attachment | None:
        return self._attached.get(lease_id)

    def attach(self, lease: MinerLease, network: LeaseNetwork) -> None:
        """Have the leased worker bring up its link and join (the same request again is a
        no-op; another network for the same lease is refused)."""
        lease_id, worker_id = lease.request.lease_id, lease.request.worker_id
        if not lease.active:
            raise LeaseRefused(f"lease {lease_id} has ended")
        known = self._attached.get(lease_id)
        if known is not None:
            if known.network != network:
                raise LeaseRefused(f"lease {lease_id} is in a network already")
            return
        ip = self.worker_ip(worker_id)
        if ip is None:
            raise LeaseRefused(f"the address of worker {worker_id} is not known")
        up = NetworkUp(
            lease_id=lease_id,
            tenant_id=network.tenant_id,
            gateway_hotkey=lease.gateway,
            miner_hotkey=self.hotkey,
            underlay_host=ip,
            validity_s=network.validity_s,
            skew_s=network.skew_s,
            keepalive_s=network.keepalive_s,
        )
        self._post(worker_id, up.model_dump_json(), required=True)
        self._attached[lease_id] = Attachment(lease_id, worker_id, lease.gateway, network)
        log.info("lease network attached", extra={"lease": lease_id, "worker": worker_id})

    def relay(self, lease: MinerLease, peer_set: SignedPeerSet) -> None:
        """A peer set the gateway pushed, to the worker holding the lease."""
        known = self._attached.get(lease.request.lease_id)
        if known is None or not lease.active:
            raise LeaseRefused(f"lease {lease.request.lease_id} is in no network here")
        message = NetworkPeers(lease_id=known.lease_id, peer_set=peer_set)
        self._post(known.worker_id, message.model_dump_json(), required=True)

    def lease_ended(self, lease: MinerLease) -> None:
        """The lease ended (released, expired, worker lost): its link goes down."""
        known = self._attached.pop(lease.request.lease_id, None)
        if known is not None:
            down = NetworkDown(lease_id=known.lease_id, reason=lease.detail or "lease ended")
            self._post(known.worker_id, down.model_dump_json(), required=False)

    def on_join(self, worker_id: str, message: NetworkJoin) -> None:
        """A worker's join request: checked here, sent on in the background."""
        request = message.request
        known = self._attached.get(request.lease_id)
        if known is None or known.worker_id != worker_id:
            log.warning("join for a lease this worker does not hold", extra={"worker": worker_id})
            return
        if request.tenant_id != known.network.tenant_id:
            log.warning("join names another tenant", extra={"lease": known.lease_id})
            self._take_down(known, "join named another tenant")
            return
        if known.joining:
            log.warning("join already in flight", extra={"lease": known.lease_id})
            return
        known.joining = True
        task = asyncio.create_task(self._join(known, message), name=f"join-{known.lease_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, known: Attachment, message: NetworkJoin) -> None:
        try:
            await self._send_join(known, message)
        finally:
            known.joining = False

    async def _send_join(self, known: Attachment, message: NetworkJoin) -> None:
        headers, body = sign_join(self.wallet, message.request, gateway_hotkey=known.gateway)
        headers["content-type"] = "application/json"
        try:
            answer = await self._http.post(known.network.join_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("join not delivered", extra={"lease": known.lease_id, "why": repr(exc)})
            self._take_down(known, f"gateway unreachable: {type(exc).__name__}")
            return
        if answer.status_code != 200 or len(answer.content) > MAX_JOIN_ANSWER:
            why = _refusal(answer)
            log.warning("join refused", extra={"lease": known.lease_id, "why": why})
            self._take_down(known, f"join refused: {why}")
            return
        try:
            peer_set = SignedPeerSet.model_validate_json(answer.content)
        except ValidationError:
            self._take_down(known, "the gateway's answer is not a signed peer set")
            return
        if self._attached.get(known.lease_id) is known:  # still attached: it may have ended
            message_out = NetworkPeers(lease_id=known.lease_id, peer_set=peer_set)
            self._post(known.worker_id, message_out.model_dump_json(), required=False)

    def _take_down(self, known: Attachment, reason: str) -> None:
        if self._attached.get(known.lease_id) is known:
            del self._attached[known.lease_id]
            down = NetworkDown(lease_id=known.lease_id, reason=reason[:500])
            self._post(known.worker_id, down.model_dump_json(), required=False)

    def _post(self, worker_id: str, text: str, *, required: bool) -> None:
        link = self.links.get(worker_id)
        try:
            if link is None:
                raise WorkerLost(f"worker {worker_id} is not connected", worker_id=worker_id)
            link.post(text)
        except (WorkerLost, WorkerTimeout):
            if required:
                raise
            log.info("network message not delivered", extra={"worker": worker_id})

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()


def _refusal(answer: httpx.Response) -> str:
    try:
        data = answer.json()
        return f"{answer.status_code} {data['error']}: {str(data.get('detail', ''))[:300]}"
    except (ValueError, KeyError, TypeError):
        return f"{answer.status_code}"


def mount_lease_networks(app: FastAPI, miner: MinerApp, networks: LeaseNetworks) -> None:
    """The gateway-facing routes (signed both ways, like the rest of the miner's API); the
    worker socket finds ``networks`` in ``app.state`` for the joins workers send."""

    app.state.lease_networks = networks

    @app.post("/v1/leases/{lease_id}/network")
    async def attach_network(lease_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        lease = miner.node.leases.get(lease_id, caller)
        networks.attach(lease, parse_body(LeaseNetwork, body))
        return miner.reply(request, caller, lease.status())

    @app.post("/v1/leases/{lease_id}/network/peers")
    async def push_peer_set(lease_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        lease = miner.node.leases.get(lease_id, caller)
        networks.relay(lease, parse_body(SignedPeerSet, body))
        return miner.reply(request, caller, lease.status())
