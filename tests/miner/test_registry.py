"""The worker registry's state machine and the miner ledger, without processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from byteleap.miner.errors import IllegalTransition, TokenRejected, UnknownWorker, WorkerUnavailable
from byteleap.miner.ledger import MinerLedger
from byteleap.miner.registry import TRANSITIONS, WorkerEntry, WorkerRegistry
from byteleap.net.enrollment import EnrollmentToken
from byteleap.net.errors import MalformedToken
from byteleap.net.messages import WorkerState
from byteleap.protocol.hardware import HardwareInventory
from byteleap.worker.hardware_probe import probe_hardware

S = WorkerState


@pytest.fixture(scope="module")
def hardware() -> HardwareInventory:
    return probe_hardware()


def entry(hardware: HardwareInventory, worker_id: str = "w-0000000000000001") -> WorkerEntry:
    return WorkerEntry(
        worker_id=worker_id, public_key="ab" * 32, hardware=hardware, profile="cpu-f64"
    )


def test_every_state_has_a_row_and_offline_only_returns_to_idle() -> None:
    assert set(TRANSITIONS) == set(WorkerState)
    assert TRANSITIONS[S.OFFLINE] == {S.IDLE}
    assert all(S.OFFLINE in TRANSITIONS[s] for s in WorkerState if s is not S.OFFLINE)


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        (S.IDLE, S.CHALLENGED, True),
        (S.CHALLENGED, S.LEASED, False),
        (S.LEASED, S.CHALLENGED, False),
        (S.BUSY, S.CHALLENGED, False),
        (S.OFFLINE, S.CHALLENGED, False),
        (S.LEASED, S.IDLE, True),
    ],
)
def test_transitions(
    hardware: HardwareInventory, start: WorkerState, target: WorkerState, allowed: bool
) -> None:
    registry = WorkerRegistry()
    worker = entry(hardware)
    worker.state = start
    registry.add(worker)
    if allowed:
        registry.transition(worker.worker_id, target)
        assert worker.state is target
    else:
        with pytest.raises(IllegalTransition):
            registry.transition(worker.worker_id, target)
        assert worker.state is start


def test_connect_heartbeat_expire_and_ip_history(hardware: HardwareInventory) -> None:
    registry = WorkerRegistry()
    worker = entry(hardware)
    registry.add(worker)
    assert registry.connect(worker.worker_id, hardware, "cpu-f64", "10.0.0.1", now=100) is False
    assert worker.state is S.IDLE
    registry.heartbeat(worker.worker_id, now=130)
    assert registry.expire(now=150, heartbeat_s=10, missed=3) == []
    assert registry.expire(now=161, heartbeat_s=10, missed=3) == [worker.worker_id]
    assert worker.state is S.OFFLINE
    assert registry.connect(worker.worker_id, hardware, "cpu-f64", "10.0.0.2", now=200) is True
    assert [ip for ip, _ in worker.ip_history] == ["10.0.0.1", "10.0.0.2"]


def test_revoked_and_unknown_workers(hardware: HardwareInventory) -> None:
    registry = WorkerRegistry()
    worker = entry(hardware)
    registry.add(worker)
    registry.revoke(worker.worker_id)
    with pytest.raises(WorkerUnavailable):
        registry.connect(worker.worker_id, hardware, "cpu-f64", "10.0.0.1", now=1)
    with pytest.raises(UnknownWorker):
        registry.get("w-ffffffffffffffff")


def test_tokens_are_one_time_and_expire(tmp_path: Path, hardware: HardwareInventory) -> None:
    ledger = MinerLedger(tmp_path / "miner.db")
    token = EnrollmentToken.decode(ledger.new_token("cd" * 22, ttl_s=60, now=1000))
    assert token.miner_public_key == "cd" * 22
    ledger.enroll(token.secret, entry(hardware), now=1010)
    with pytest.raises(TokenRejected, match="already used"):
        ledger.enroll(token.secret, entry(hardware, "w-0000000000000002"), now=1011)
    late = EnrollmentToken.decode(ledger.new_token("cd" * 22, ttl_s=60, now=1000))
    with pytest.raises(TokenRejected, match="expired"):
        ledger.enroll(late.secret, entry(hardware, "w-0000000000000003"), now=2000)
    with pytest.raises(TokenRejected, match="unknown"):
        ledger.enroll("00" * 32, entry(hardware, "w-0000000000000004"), now=1000)
    # Only the first enrollment left a worker behind.
    assert [e.worker_id for e in ledger.load()] == ["w-0000000000000001"]
    ledger.close()


@pytest.mark.adversarial
@pytest.mark.parametrize("token", ["", "blt1.", "blt1.!!!", "nottoken", "blt1.e30"])
def test_corrupt_tokens_are_rejected(token: str) -> None:
    with pytest.raises(MalformedToken) as refused:
        EnrollmentToken.decode(token)
    assert refused.value.reason == TokenRejected.reason


def test_ledger_survives_reopen_with_workers_offline(
    tmp_path: Path, hardware: HardwareInventory
) -> None:
    ledger = MinerLedger(tmp_path / "miner.db")
    secret = EnrollmentToken.decode(ledger.new_token("ef" * 22, ttl_s=60, now=0)).secret
    worker = entry(hardware)
    worker.state = S.IDLE
    ledger.enroll(secret, worker, now=1)
    ledger.record_ip(worker.worker_id, "10.1.1.1", 2)
    ledger.close()
    reopened = MinerLedger(tmp_path / "miner.db")
    (loaded,) = reopened.load()
    assert loaded.worker_id == worker.worker_id and loaded.state is S.OFFLINE
    assert loaded.ip_history == [("10.1.1.1", 2)]
    reopened.revoke(worker.worker_id)
    assert reopened.is_revoked(worker.worker_id)
    with pytest.raises(UnknownWorker):
        reopened.revoke("w-ffffffffffffffff")
    reopened.close()
