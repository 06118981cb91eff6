"""The miner's side of a liveness probe: it forwards the prober's nonce to the leased worker
and hands back the worker's signed heartbeat as it came; it never signs one itself."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from byteleap.miner.leases import LeaseProbes, MinerLease
from byteleap.miner.links import WorkerLink
from byteleap.net.heartbeat import new_nonce, sign_heartbeat
from byteleap.net.messages import (
    LeaseLiveness,
    LeaseProbed,
    LeaseRequest,
    ProbeLease,
    parse_miner_message,
)

WORKER = "w-00000000000000a1"
LEASE = "ab" * 16
KEY = Ed25519PrivateKey.generate()


def lease() -> MinerLease:
    request = LeaseRequest(lease_id=LEASE, worker_id=WORKER, ends_at=2e9)
    return MinerLease(request, gateway="gw", started_at=1.0)


async def probe_through(
    probes: LeaseProbes, nonce: str | None, answering_worker: str = WORKER
) -> tuple[list[ProbeLease], LeaseLiveness]:
    """Probe a lease over a link whose 'worker' signs each probe it is sent."""
    sent: list[ProbeLease] = []

    async def send(text: str) -> None:
        probe = parse_miner_message(text)
        assert isinstance(probe, ProbeLease)
        sent.append(probe)
        heartbeat = None
        if probe.nonce is not None:
            heartbeat = sign_heartbeat(
                KEY.sign, lease_id=probe.lease_id, worker_id=WORKER, nonce=probe.nonce,
                alive=True, signed_at_ms=1_700_000_000_000,
            )  # fmt: skip
        answer = LeaseProbed(probe_id=probe.probe_id, alive=True, heartbeat=heartbeat)
        probes.deliver(answering_worker, answer)

    link = WorkerLink(WORKER, send)
    try:
        return sent, await probes.ask(lease(), link, 1.0, nonce)
    finally:
        await link.close("test over")


async def test_the_nonce_goes_to_the_worker_and_its_heartbeat_comes_back() -> None:
    nonce = new_nonce()
    sent, liveness = await probe_through(LeaseProbes(), nonce)
    assert [p.nonce for p in sent] == [nonce] and sent[0].lease_id == LEASE
    heartbeat = liveness.heartbeat
    assert liveness.alive and heartbeat is not None
    assert heartbeat.nonce == nonce and heartbeat.lease_id == LEASE
    assert heartbeat.worker_id == WORKER


async def test_without_a_nonce_there_is_no_heartbeat() -> None:
    """An older gateway sends no nonce: the probe works as before, and carries nothing signed."""
    sent, liveness = await probe_through(LeaseProbes(), None)
    assert sent[0].nonce is None and liveness.heartbeat is None


@pytest.mark.adversarial
async def test_another_worker_cannot_answer_for_the_leased_one() -> None:
    """An answer from another worker's link is not this probe's answer: it times out."""
    _, liveness = await probe_through(LeaseProbes(), new_nonce(), "w-00000000000000b2")
    assert (liveness.alive, liveness.reason, liveness.heartbeat) == (False, "timeout", None)
