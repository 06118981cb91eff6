"""The worker's answer to a liveness probe: signed with its enrolled key over the prober's
nonce, for the lease and the worker id it was asked about."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from byteleap.net.heartbeat import check_heartbeat, new_nonce
from byteleap.net.messages import LeaseProbed, ProbeLease, parse_worker_message
from byteleap.worker.node import Behaviour, WorkerNode

LEASE = "ab" * 16
WORKER = "w-00000000000000a1"


class Socket:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


async def answer(node: WorkerNode, probe: ProbeLease) -> LeaseProbed | None:
    socket = Socket()
    await node._answer_probe(cast(Any, socket), probe)
    if not socket.sent:
        return None
    message = parse_worker_message(socket.sent[0])
    assert isinstance(message, LeaseProbed)
    return message


async def test_the_worker_signs_its_answer_with_its_enrolled_key(tmp_path: Path) -> None:
    node = WorkerNode(miner_url="wss://127.0.0.1:1/v1/worker", home=tmp_path)
    node.worker_id = WORKER
    nonce = new_nonce()
    probed = await answer(node, ProbeLease(probe_id="cd" * 16, lease_id=LEASE, nonce=nonce))
    assert probed is not None and probed.alive and probed.heartbeat is not None
    verdict = check_heartbeat(
        probed.heartbeat, public_key=node.key.public_hex, lease_id=LEASE, worker_id=WORKER,
        nonce=nonce, now=time.time(), max_age_s=5.0,
    )  # fmt: skip
    assert (verdict.ok, verdict.reason) == (True, "ok")


async def test_no_nonce_no_heartbeat_and_a_hung_worker_answers_nothing(tmp_path: Path) -> None:
    node = WorkerNode(miner_url="wss://127.0.0.1:1/v1/worker", home=tmp_path)
    node.worker_id = WORKER
    probed = await answer(node, ProbeLease(probe_id="cd" * 16, lease_id=LEASE))
    assert probed is not None and probed.alive and probed.heartbeat is None
    node.behaviour = Behaviour.HANG
    assert (
        await answer(node, ProbeLease(probe_id="cd" * 16, lease_id=LEASE, nonce=new_nonce()))
        is None
    )
