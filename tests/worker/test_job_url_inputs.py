"""A job with an input given by URL, through the worker's job runner and the real process
executor: the file is fetched into the cache once, copied into each job's work dir, and a
fetch that cannot succeed refuses the job as ``bad_input``."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from byteleap.config import WorkerInputSettings
from byteleap.net.messages import JobEnded, JobRefused, JobRequest, parse_worker_message
from byteleap.protocol.execution import ExecutionSpec, InputFile
from byteleap.worker.executors import (
    KubernetesExecutor,
    KubernetesOptions,
    KubernetesSettings,
    ProcessExecutor,
    UnsupportedError,
)
from byteleap.worker.jobs import JobRunner
from file_server import FileServer, serving

WORKER = "w-0123456789abcdef"
DATA = bytes(range(256)) * 400
DIGEST = hashlib.sha256(DATA).hexdigest()
# Reads its input, says what it got, then writes into its copy (which must not reach the cache).
PROGRAM = """
import hashlib, os
data = open("data/set.bin", "rb").read()
print(len(data), hashlib.sha256(data).hexdigest(), os.access("data/set.bin", os.X_OK))
open("data/set.bin", "ab").write(b"scribbled")
"""


class Sent:
    def __init__(self) -> None:
        self.messages: list[object] = []

    async def __call__(self, raw: str) -> None:
        self.messages.append(parse_worker_message(raw))

    def end(self) -> JobEnded | JobRefused:
        (ended,) = [m for m in self.messages if isinstance(m, JobEnded | JobRefused)]
        return ended


@pytest.fixture
def server() -> Iterator[FileServer]:
    with serving(FileServer(files={"set": DATA})) as running:
        yield running


def job(job_id: str, file: InputFile) -> JobRequest:
    spec = ExecutionSpec(
        command=[sys.executable, "-c", PROGRAM], timeout_s=30, inputs={"data/set.bin": file}
    )
    return JobRequest(job_id=job_id, attempt=1, worker_id=WORKER, spec=spec)


def runner_at(home: Path) -> JobRunner:
    return JobRunner(home, inputs=WorkerInputSettings(allow_private=True))


async def test_a_job_reads_its_url_input_and_a_second_job_fetches_nothing(
    tmp_path: Path, server: FileServer
) -> None:
    runner = runner_at(tmp_path)
    file = InputFile.from_url(server.url("/f/set"), DIGEST, size=len(DATA), executable=True)
    for n in (1, 2):
        sent = Sent()
        await runner.run(job(f"job_url_in_{n}", file), sent)
        ended = sent.end()
        assert isinstance(ended, JobEnded) and ended.result.state.value == "succeeded"
        assert ended.result.stdout_tail.split() == [str(len(DATA)), DIGEST, "True"]
    assert server.total == 1
    # The job wrote into its copy: the cached file is as fetched.
    cached = runner.input_cache.path_of(DIGEST)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == DIGEST


@pytest.mark.adversarial
async def test_a_wrong_digest_refuses_the_job_as_its_own_fault(
    tmp_path: Path, server: FileServer
) -> None:
    runner, sent = runner_at(tmp_path), Sent()
    wrong = InputFile.from_url(server.url("/f/set"), "0" * 64)
    await runner.run(job("job_url_wrong", wrong), sent)
    ended = sent.end()
    assert isinstance(ended, JobRefused) and ended.reason == "bad_input"
    assert "0" * 64 in ended.detail and DIGEST in ended.detail
    assert not any(runner.input_cache.files.iterdir())
    assert not (tmp_path / "jobs" / "job_url_wrong-1").exists()
    assert not runner.starting and not runner.running


@pytest.mark.adversarial
async def test_a_worker_refuses_a_private_url_by_default(
    tmp_path: Path, server: FileServer
) -> None:
    runner, sent = JobRunner(tmp_path), Sent()
    await runner.run(job("job_url_private", InputFile.from_url(server.url("/f/set"), DIGEST)), sent)
    ended = sent.end()
    assert isinstance(ended, JobRefused) and ended.reason == "bad_input"
    assert "not a public address" in ended.detail and server.total == 0


@pytest.mark.adversarial
async def test_the_executor_refuses_a_url_input_no_one_fetched(tmp_path: Path) -> None:
    spec = job("job_url_unfetched", InputFile.from_url("https://h/x", DIGEST)).spec
    with pytest.raises(UnsupportedError, match="was not fetched"):
        await ProcessExecutor().start(spec, tmp_path / "work")


@pytest.mark.adversarial
async def test_the_kubernetes_executor_refuses_url_inputs_before_any_call(tmp_path: Path) -> None:
    spec = job("job_url_k8s", InputFile.from_url("https://h/x", DIGEST)).spec
    executor = KubernetesExecutor(KubernetesSettings())
    with pytest.raises(UnsupportedError, match="url_inputs"):
        await executor.start(spec, tmp_path / "work", KubernetesOptions())
    assert executor._cluster is None  # no cluster was ever reached


@pytest.mark.adversarial
async def test_a_cached_file_changed_behind_the_cache_is_not_handed_on(
    tmp_path: Path, server: FileServer
) -> None:
    # A process job runs as the worker's user: it could rewrite the cache for later jobs.
    runner = runner_at(tmp_path)
    file = InputFile.from_url(server.url("/f/set"), DIGEST)
    await runner.run(job("job_url_first", file), Sent())
    cached = runner.input_cache.path_of(DIGEST)
    cached.chmod(0o644)
    cached.write_bytes(b"poisoned")

    sent = Sent()
    await runner.run(job("job_url_poisoned", file), sent)
    ended = sent.end()
    assert isinstance(ended, JobRefused) and ended.reason == "bad_workdir"  # tried elsewhere
    assert "no longer has its sha256" in ended.detail and not cached.exists()

    sent = Sent()
    await runner.run(job("job_url_refetched", file), sent)
    assert isinstance(sent.end(), JobEnded) and server.total == 2
    assert cached.read_bytes() == DATA
