"""The worker sends a job's checkpoint dir whole, only when it changed, never past its bounds,
never a half-written or foreign file; a job that names a dir sends its last set before its end,
and what a retry restored is not sent back."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sys
from pathlib import Path

import pytest

from byteleap.net.messages import (
    CheckpointSet,
    JobEnded,
    JobRequest,
    parse_worker_message,
)
from byteleap.protocol.checkpoints import MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_FILES
from byteleap.protocol.execution import ExecutionSpec, InputFile
from byteleap.worker.checkpoint_upload import CheckpointWatcher, restored_checkpoint
from byteleap.worker.jobs import JobRunner

JOB = "job_ckpt_upload_01"


class Sent:
    def __init__(self) -> None:
        self.messages: list[object] = []

    async def __call__(self, raw: str) -> None:
        self.messages.append(parse_worker_message(raw))

    def sets(self) -> list[CheckpointSet]:
        return [m for m in self.messages if isinstance(m, CheckpointSet)]


def contents(checkpoint: CheckpointSet) -> dict[str, bytes]:
    return {f.path: f.data for f in checkpoint.files}


async def test_a_changed_dir_is_sent_whole_and_an_unchanged_one_is_not(tmp_path: Path) -> None:
    sent = Sent()
    watcher = CheckpointWatcher(JOB, tmp_path / "ckpt", sent)
    assert not await watcher.look()  # no dir yet
    (tmp_path / "ckpt" / "sub").mkdir(parents=True)
    assert not await watcher.look()  # an empty dir is no checkpoint
    (tmp_path / "ckpt" / "state.pt").write_bytes(b"step 5")
    (tmp_path / "ckpt" / "sub" / "opt.pt").write_bytes(b"momentum")
    assert await watcher.look()
    assert not await watcher.look()
    (tmp_path / "ckpt" / "state.pt").write_bytes(b"step 10")
    assert await watcher.look()

    first, second = sent.sets()
    assert (first.job_id, first.seq, second.seq) == (JOB, 1, 2)
    assert contents(first) == {"state.pt": b"step 5", "sub/opt.pt": b"momentum"}
    assert contents(second) == {"state.pt": b"step 10", "sub/opt.pt": b"momentum"}
    for f in second.files:
        assert f.sha256 == hashlib.sha256(f.data).hexdigest() and f.size == len(f.data)


async def test_temporary_files_and_symlinks_are_never_sent(tmp_path: Path) -> None:
    base = tmp_path / "ckpt"
    (base / ".hidden").mkdir(parents=True)
    secret = tmp_path / "worker-secret"
    secret.write_text("the worker's own file")
    (base / ".state.pt.tmp").write_bytes(b"half written")
    (base / ".hidden" / "x").write_bytes(b"in a dot dir")
    os.symlink(secret, base / "leak")
    os.symlink(tmp_path, base / "leakdir")
    (base / "state.pt").write_bytes(b"done")
    sent = Sent()
    assert await CheckpointWatcher(JOB, base, sent).look()
    assert contents(sent.sets()[0]) == {"state.pt": b"done"}


@pytest.mark.parametrize("too_many", [False, True])
async def test_a_dir_over_its_bounds_is_not_sent_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, too_many: bool
) -> None:
    base = tmp_path / "ckpt"
    base.mkdir()
    if too_many:
        for i in range(MAX_CHECKPOINT_FILES + 1):
            (base / f"f{i}").write_bytes(b"x")
    else:
        (base / "big").write_bytes(b"x" * (MAX_CHECKPOINT_BYTES + 1))
    sent, watcher = Sent(), CheckpointWatcher(JOB, base, Sent())
    watcher.send = sent
    with caplog.at_level(logging.WARNING):
        assert not await watcher.look()
        assert not await watcher.look()
    assert sent.sets() == []
    assert len([r for r in caplog.records if r.message == "checkpoint not sent"]) == 1
    # Back within bounds: sent again.
    for path in base.iterdir():
        path.unlink()
    (base / "small").write_bytes(b"ok")
    assert await watcher.look() and contents(sent.sets()[0]) == {"small": b"ok"}


# Writes a checkpoint atomically twice, half a second apart (looked at every 0.1 s here).
PROGRAM = """
import os, time
os.makedirs('ckpt', exist_ok=True)
print(open('ckpt/state').read() if os.path.exists('ckpt/state') else 'fresh', flush=True)
for step in (1, 2):
    open('ckpt/.tmp', 'w').write(f'step {step}')
    os.replace('ckpt/.tmp', 'ckpt/state')
    time.sleep(0.5)
"""


def job(attempt: int, restored: dict[str, InputFile]) -> JobRequest:
    spec = ExecutionSpec(
        command=[sys.executable, "-c", PROGRAM], timeout_s=30, checkpoint_dir="ckpt",
        inputs=restored,
    )  # fmt: skip
    return JobRequest(job_id=JOB, attempt=attempt, worker_id="w-0123456789abcdef", spec=spec)


async def test_a_running_job_sends_its_checkpoints_while_it_runs_and_at_its_end(
    tmp_path: Path,
) -> None:
    sent = Sent()
    await JobRunner(tmp_path, checkpoint_poll_s=0.1).run(job(1, {}), sent)
    sets = sent.sets()
    assert contents(sets[0]) == {"state": b"step 1"}  # while it ran: it wrote step 2 after
    assert contents(sets[-1]) == {"state": b"step 2"}  # the last one, sent at the end at least
    assert [s.seq for s in sets] == list(range(1, len(sets) + 1))
    ends = [i for i, m in enumerate(sent.messages) if isinstance(m, JobEnded)]
    assert ends and max(sent.messages.index(s) for s in sets) < ends[0]
    ended = sent.messages[ends[0]]
    assert isinstance(ended, JobEnded) and "fresh" in ended.result.stdout_tail


async def test_a_restored_checkpoint_is_what_the_program_finds_and_is_not_sent_back(
    tmp_path: Path,
) -> None:
    sent = Sent()
    restored = {
        "ckpt/state": InputFile.from_bytes(b"step 7"),
        "ckpt/other": InputFile.from_bytes(b"o"),
    }
    await JobRunner(tmp_path).run(job(2, restored), sent)
    ended = next(m for m in sent.messages if isinstance(m, JobEnded))
    assert "step 7" in ended.result.stdout_tail
    # Sent only once the program wrote over it; the untouched file rides along in the set.
    assert all(contents(s)["state"] != b"step 7" for s in sent.sets())
    assert contents(sent.sets()[-1]) == {"state": b"step 2", "other": b"o"}


async def test_the_set_a_retry_restored_is_not_sent_until_it_changes(tmp_path: Path) -> None:
    spec = job(2, {"ckpt/state": InputFile.from_bytes(b"step 7")}).spec
    base = tmp_path / "ckpt"
    base.mkdir()
    (base / "state").write_bytes(b"step 7")
    sent = Sent()
    watcher = CheckpointWatcher(JOB, base, sent, restored=restored_checkpoint(spec))
    assert watcher.restored == {"state": hashlib.sha256(b"step 7").hexdigest()}
    assert not await watcher.look()
    (base / "state").write_bytes(b"step 8")
    assert await watcher.look() and contents(sent.sets()[0]) == {"state": b"step 8"}


async def test_a_failed_send_costs_one_look_not_the_watch(tmp_path: Path) -> None:
    sent, failures = Sent(), [ConnectionResetError("link dropped")]

    async def flaky(raw: str) -> None:
        if failures:
            raise failures.pop()
        await sent(raw)

    base = tmp_path / "ckpt"
    base.mkdir()
    (base / "state").write_bytes(b"step 1")
    watching = asyncio.create_task(CheckpointWatcher(JOB, base, flaky, every_s=0.01).watch())
    try:
        for _ in range(500):
            if sent.sets():
                break
            await asyncio.sleep(0.01)
    finally:
        watching.cancel()
    assert not failures and contents(sent.sets()[0]) == {"state": b"step 1"}
