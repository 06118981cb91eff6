"""Collecting a job's artifacts asks again for a piece the miner could not deliver for a
passing reason, and gives up on a file at once for a final one.

The miner here is a stand-in serving bytes from memory, because the point is to fail its
answers on purpose; the real miner path is covered by test_artifacts_e2e.py."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import cast

import pytest

from byteleap.gateway import artifact_vault as artifacts_module
from byteleap.gateway.artifact_vault import READ_ATTEMPTS, ArtifactVault
from byteleap.gateway.miners import MinerApi
from byteleap.net.messages import ArtifactPiece
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.api import JobState
from byteleap.protocol.artifacts import RejectedArtifact
from byteleap.protocol.execution import ArtifactInfo
from byteleap.store import JobRecord, Store, create_tenant, insert_job
from byteleap.store.artifact_records import list_artifacts

DATA = bytes(range(256)) * 40  # 10 KiB: three 4 KiB pieces


class FlakyMiner:
    """Holds one file; the first ``failures`` reads fail with ``reason`` (and ``status``)."""

    def __init__(self, failures: int, reason: str, status: int | None = None) -> None:
        self.failures, self.reason, self.status = failures, reason, status
        self.reads = 0
        self.dropped = False

    async def read_artifact(
        self, job_id: str, path: str, *, offset: int = 0, length: int = 4096
    ) -> ArtifactPiece:
        self.reads += 1
        if self.reads <= self.failures:
            raise MinerCallError("injected", reason=self.reason, status=self.status)
        data = DATA[offset : offset + length]
        return ArtifactPiece(
            path=path, offset=offset, data=data, eof=offset + len(data) >= len(DATA)
        )

    async def drop_artifacts(self, job_id: str) -> object:
        self.dropped = True
        return None


async def _job(store: Store) -> str:
    async with store.session() as s:
        tenant = await create_tenant(s, "acme", balance=1.0, at=0)
        await insert_job(
            s,
            JobRecord(
                id="job_0001", tenant_id=tenant.id, state=JobState.RUNNING, spec_json="{}",
                idempotency_key=None, attempts=0, worker_id=None, miner_hotkey=None,
                created_at=0.0, started_at=None, finished_at=None, exit_code=None,
                stdout_tail="", stderr_tail="", error=None, cost=0.0,
            ),
        )  # fmt: skip
    return "job_0001"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(artifacts_module, "_RETRY_WAIT_S", 0.0)


INFO = ArtifactInfo(path="out/model.bin", size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())


async def _collect(
    store: Store, tmp_path: Path, miner: FlakyMiner
) -> tuple[ArtifactVault, list[RejectedArtifact]]:
    vault = ArtifactVault(tmp_path / "vault", limit_bytes=1 << 20, read_bytes=4096)
    job_id = await _job(store)
    rejected = await vault.collect(store, cast(MinerApi, miner), job_id, "m-job", [INFO])
    return vault, rejected


@pytest.mark.parametrize(("reason", "status"), [("timeout", None), ("internal", 503)])
async def test_passing_failures_are_asked_again_and_the_file_is_kept(
    store: Store, tmp_path: Path, reason: str, status: int | None
) -> None:
    miner = FlakyMiner(failures=READ_ATTEMPTS - 1, reason=reason, status=status)
    vault, rejected = await _collect(store, tmp_path, miner)
    assert rejected == []
    assert vault.file_of("job_0001", INFO.sha256).read_bytes() == DATA
    assert miner.reads == READ_ATTEMPTS - 1 + 3  # the failures, then three pieces
    async with store.session() as s:
        [record] = await list_artifacts(s, "job_0001")
    assert record.rejected is None


async def test_a_miner_that_keeps_failing_costs_the_file_after_the_last_attempt(
    store: Store, tmp_path: Path
) -> None:
    miner = FlakyMiner(failures=100, reason="unreachable")
    vault, rejected = await _collect(store, tmp_path, miner)
    assert [r.path for r in rejected] == [INFO.path]
    assert "not received from the miner" in rejected[0].reason
    assert miner.reads == READ_ATTEMPTS
    assert not vault.file_of("job_0001", INFO.sha256).exists()
    assert miner.dropped


async def test_a_final_refusal_is_not_asked_again(store: Store, tmp_path: Path) -> None:
    miner = FlakyMiner(failures=100, reason="not_found", status=404)
    _, rejected = await _collect(store, tmp_path, miner)
    assert [r.path for r in rejected] == [INFO.path]
    assert miner.reads == 1
