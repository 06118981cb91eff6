"""The gateway keeps each job's latest complete checkpoint set, read from its miner, gives it
to that job's next attempt only, and forgets it when the job ends. The miner here is the real
miner job book in-process; what its workers would send is handed to it by the test."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from byteleap.config import GatewaySettings
from byteleap.gateway.checkpoint_keeper import CheckpointKeeper
from byteleap.gateway.dispatch import Dispatcher
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.miner.jobs import JobBook
from byteleap.net.messages import CheckpointFile, CheckpointSet, JobEnded, JobRequest, JobStatus
from byteleap.protocol.api import JobState
from byteleap.protocol.execution import ExecutionResult, ExecutionState
from byteleap.protocol.states import WorkerState
from byteleap.store import Store
from byteleap.store.cloud import JobRecord, create_tenant, get_job, insert_job

T0 = 1_700_000_000.0
MINER = "miner-0"
WORKERS = ("w-0000000000000000", "w-0000000000000001")
SPEC = json.dumps({"command": ["python", "train.py"], "checkpoint": "ckpt", "retries": 2})


class _BookMiner:
    """A miner in-process: requests go into a real ``JobBook``; a checkpoint is read back
    through its JSON, as the signed HTTP client parses it (``tamper`` alters a digest)."""

    def __init__(self) -> None:
        self.book = JobBook()
        self.sent: list[JobRequest] = []
        self.tamper = False

    async def submit_job(self, request: JobRequest) -> JobStatus:
        self.sent.append(request)
        job, _ = self.book.start(request)
        return job.status()

    async def job_status(self, job_id: str) -> JobStatus:
        return self.book.get(job_id).status()

    async def read_checkpoint(self, job_id: str) -> CheckpointSet:
        kept = self.book.get(job_id).checkpoint
        assert kept is not None
        raw = kept.model_dump_json()
        if self.tamper:
            raw = raw.replace(kept.files[0].sha256, "0" * 64)
        return CheckpointSet.model_validate_json(raw)

    def attempt(self, job_id: str) -> JobRequest:
        return [r for r in self.sent if r.job_id.startswith(job_id)][-1]


class _Supply:
    def __init__(self, miner: _BookMiner) -> None:
        self.miner = miner

    async def offers(self) -> list[WorkerOffer]:
        return [
            WorkerOffer(
                miner_hotkey=MINER,
                worker_id=w,
                state=WorkerState.IDLE,
                cpu_cores=4,
                ram_mib=8192,
                region="local",
                price_per_cpu_s=0.001,
            )
            for w in WORKERS
        ]

    async def client(self, hotkey: str) -> Any:
        return self.miner

    async def close(self) -> None:
        return None


@pytest.fixture
def miner() -> Iterator[_BookMiner]:
    m = _BookMiner()
    yield m
    m.book.close()


async def _job(store: Store, tenant: str) -> str:
    async with store.session() as s:
        owner = await create_tenant(s, tenant, balance=100.0, at=int(T0))
        record = JobRecord(
            id=f"job_{tenant:0>24}", tenant_id=owner.id, state=JobState.QUEUED,
            spec_json=SPEC, idempotency_key=None, attempts=0, worker_id=None,
            miner_hotkey=None, created_at=T0, started_at=None, finished_at=None,
            exit_code=None, stdout_tail="", stderr_tail="", error=None, cost=0.0,
        )  # fmt: skip
        job, _ = await insert_job(s, record)
    return job.id


def _set(job_id: str, seq: int, data: bytes) -> CheckpointSet:
    digest = hashlib.sha256(data).hexdigest()
    files = [CheckpointFile(path="state.pt", size=len(data), sha256=digest, data=data)]
    return CheckpointSet(job_id=job_id, seq=seq, files=files)


def names(directory: Path) -> set[str]:
    return {p.name for p in directory.iterdir()}


def damage(path: Path) -> None:
    path.write_text('{"half": ')


def _ended(job_id: str) -> JobEnded:
    at = datetime.fromtimestamp(T0, UTC)
    result = ExecutionResult(
        exit_code=0, state=ExecutionState.SUCCEEDED, stdout_tail="", stderr_tail="",
        stdout_dropped_bytes=0, stderr_dropped_bytes=0, started_at=at, finished_at=at,
        artifacts=[],
    )  # fmt: skip
    return JobEnded(job_id=job_id, result=result)


async def test_the_latest_complete_set_goes_to_the_next_attempt_of_its_own_job_only(
    sqlite_store: Store, miner: _BookMiner, tmp_path: Path
) -> None:
    clock = itertools.count(T0)
    keeper = CheckpointKeeper(tmp_path / "checkpoints")
    dispatcher = Dispatcher(
        sqlite_store, _Supply(miner), GatewaySettings(), clock=lambda: float(next(clock)),
        checkpoints=keeper,
    )  # fmt: skip
    alice, bob = await _job(sqlite_store, "alice"), await _job(sqlite_store, "bob")
    assert await dispatcher.dispatch_once() == 2
    a1, b1 = miner.attempt(alice), miner.attempt(bob)
    assert a1.spec.checkpoint_dir == "ckpt" and a1.spec.inputs == {}

    miner.book.checkpoint(_set(a1.job_id, 1, b"alice step 5"))
    miner.book.checkpoint(_set(b1.job_id, 1, b"bob step 5"))
    await dispatcher.monitor_once()
    miner.book.checkpoint(_set(a1.job_id, 2, b"alice step 10"))
    miner.book.checkpoint(_set(a1.job_id, 1, b"alice, a stale set"))  # older: not taken
    await dispatcher.monitor_once()
    # A set that does not check out on arrival is never kept: the one before stands.
    miner.book.checkpoint(_set(a1.job_id, 3, b"alice step 15"))
    miner.tamper = True
    await dispatcher.monitor_once()
    miner.tamper = False
    kept = await keeper.latest(alice)
    assert kept is not None and kept.files[0].data == b"alice step 10"
    assert names(keeper.root) == {f"{alice}.json", f"{bob}.json"}

    # Both workers vanish; the miner still holds their jobs' last sets for the gateway.
    for worker in WORKERS:
        miner.book.lose_worker(worker, "the worker's link dropped")
    await dispatcher.monitor_once()
    assert await dispatcher.dispatch_once() == 2
    a2, b2 = miner.attempt(alice), miner.attempt(bob)
    assert (a2.attempt, b2.attempt) == (2, 2)
    assert {p: f.data() for p, f in a2.spec.inputs.items()} == {"ckpt/state.pt": b"alice step 15"}
    assert {p: f.data() for p, f in b2.spec.inputs.items()} == {"ckpt/state.pt": b"bob step 5"}

    # The second attempt's sets start at seq 1 again, and still replace the first's.
    miner.book.checkpoint(_set(a2.job_id, 1, b"alice step 20"))
    await dispatcher.monitor_once()
    kept = await keeper.latest(alice)
    assert kept is not None and kept.files[0].data == b"alice step 20"

    # Ended: nothing more would use it.
    miner.book.end(_ended(a2.job_id))
    await dispatcher.monitor_once()
    async with sqlite_store.session() as s:
        assert (await get_job(s, alice)).state is JobState.SUCCEEDED
    assert await keeper.latest(alice) is None
    assert names(keeper.root) == {f"{bob}.json"}


async def test_a_kept_set_is_replaced_whole_and_a_damaged_file_is_no_checkpoint(
    tmp_path: Path,
) -> None:
    keeper = CheckpointKeeper(tmp_path)
    job = "job_" + "1" * 24
    assert await keeper.keep(job, 1, _set(job, 2, b"two"))
    assert not await keeper.keep(job, 1, _set(job, 1, b"one"))
    assert await keeper.keep(job, 2, _set(job, 1, b"retry one"))
    restored = await keeper.inputs_for(job, "a/ckpt")
    assert {p: f.data() for p, f in restored.items()} == {"a/ckpt/state.pt": b"retry one"}
    assert names(tmp_path) == {f"{job}.json"}  # no partial file left
    damage(tmp_path / f"{job}.json")
    assert await keeper.latest(job) is None and await keeper.inputs_for(job, "ckpt") == {}


def test_the_miner_holds_sets_only_of_running_jobs_that_named_a_checkpoint_dir(
    miner: _BookMiner,
) -> None:
    plain = JobRequest.model_validate(
        {"job_id": "job_plain-a1", "attempt": 1, "worker_id": WORKERS[0],
         "spec": {"command": ["x"], "timeout_s": 5}}
    )  # fmt: skip
    checkpointing = plain.model_copy(
        update={
            "job_id": "job_ckpt-a1",
            "spec": plain.spec.model_copy(update={"checkpoint_dir": "c"}),
        }
    )
    miner.book.start(plain)
    miner.book.start(checkpointing)
    miner.book.checkpoint(_set("job_plain-a1", 1, b"x"))
    miner.book.checkpoint(_set("job_unknown-a1", 1, b"x"))
    miner.book.checkpoint(_set("job_ckpt-a1", 1, b"x"))
    assert miner.book.get("job_plain-a1").status().checkpoint_seq is None
    assert miner.book.get("job_ckpt-a1").status().checkpoint_seq == 1
    assert "checkpoint_seq" not in miner.book.get("job_plain-a1").status().model_dump_json()
    miner.book.end(_ended("job_ckpt-a1"))  # ended, not lost: no retry will want it
    miner.book.checkpoint(_set("job_ckpt-a1", 2, b"after the end"))
    assert miner.book.get("job_ckpt-a1").checkpoint is None
