"""A job's checkpoint dir: where it may be, what a checkpoint set must be to be kept, and the
bound that lets the largest set ride along with the largest spec in one miner request."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from byteleap.gateway.job_requests import job_request
from byteleap.net.messages import MAX_HTTP_BODY_BYTES, CheckpointFile, CheckpointSet
from byteleap.protocol.api import JobSpec
from byteleap.protocol.checkpoints import MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_FILES
from byteleap.protocol.execution import (
    FEATURE_CHECKPOINTS,
    MAX_ARGV_JSON_BYTES,
    MAX_ENV_JSON_BYTES,
    MAX_INLINE_INPUTS_JSON_BYTES,
    ExecutionSpec,
    InputFile,
)
from byteleap.worker.executors.base import check_spec
from byteleap.worker.executors.errors import UnsupportedError
from byteleap.worker.executors.kubernetes import KubernetesExecutor

JOB = "job_" + "0" * 24


def spec(**fields: object) -> JobSpec:
    return JobSpec.model_validate({"command": ["python", "train.py"], **fields})


def test_a_checkpoint_dir_is_normalised_and_inside_the_work_dir() -> None:
    assert spec(checkpoint="ckpt/").checkpoint == "ckpt"
    assert spec(checkpoint="runs/a/ckpt").checkpoint == "runs/a/ckpt"
    assert spec().checkpoint is None
    for outside in ("/tmp/ckpt", "../ckpt", "a/../../b", ".", "", "a\\b"):
        with pytest.raises(ValidationError):
            spec(checkpoint=outside)


@pytest.mark.parametrize("where", ["artifacts", "artifacts/ckpt", "artifacts/a/b"])
def test_a_checkpoint_dir_is_not_the_artifacts_dir_nor_inside_it(where: str) -> None:
    with pytest.raises(ValidationError, match="artifacts dir"):
        spec(checkpoint=where)


def test_a_checkpoint_dir_and_the_artifacts_dir_do_not_contain_each_other() -> None:
    with pytest.raises(ValidationError, match="contains the artifacts dir"):
        ExecutionSpec(command=["x"], timeout_s=1, artifacts_dir="out/art", checkpoint_dir="out")
    ExecutionSpec(command=["x"], timeout_s=1, artifacts_dir="out/art", checkpoint_dir="out/ck")


@pytest.mark.parametrize(
    ("checkpoint", "input_path"),
    [("ckpt", "ckpt"), ("a/ckpt", "a"), ("ckpt", "ckpt/state.pt"), ("ckpt", "ckpt/x/y")],
)
def test_a_tenants_input_is_never_at_above_or_inside_the_checkpoint_dir(
    checkpoint: str, input_path: str
) -> None:
    with pytest.raises(ValidationError, match="checkpoint dir"):
        spec(checkpoint=checkpoint, inputs={input_path: {"content": "x"}})
    spec(checkpoint=checkpoint, inputs={"train.py": {"content": "x"}})


def test_a_retry_restores_the_checkpoint_as_inputs_inside_the_dir() -> None:
    # The worker's spec takes files inside the dir (the restored set), never at or above it.
    restored = {"ckpt/state.pt": InputFile.from_bytes(b"\x00state")}
    request = job_request(f"{JOB}-a2", 2, "w-" + "0" * 16, spec(checkpoint="ckpt"),
                          restored=restored)  # fmt: skip
    assert request.spec.checkpoint_dir == "ckpt"
    assert request.spec.inputs["ckpt/state.pt"].data() == b"\x00state"
    with pytest.raises(ValidationError, match="collides with input"):
        ExecutionSpec(
            command=["x"], timeout_s=1, checkpoint_dir="a/b", inputs={"a": InputFile(content="x")}
        )


def test_a_spec_without_a_checkpoint_leaves_it_out_of_the_wire() -> None:
    plain = job_request(f"{JOB}-a1", 1, "w-" + "0" * 16, spec())
    assert "checkpoint_dir" not in plain.spec.model_dump_json()


def _file(path: str, data: bytes) -> CheckpointFile:
    return CheckpointFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                          data=data)  # fmt: skip


def test_a_checkpoint_set_is_only_ever_complete() -> None:
    good = CheckpointSet(job_id=JOB, seq=1, files=[_file("state.pt", b"abc"), _file("m/x", b"")])
    assert CheckpointSet.model_validate_json(good.model_dump_json()) == good
    wrong = _file("state.pt", b"abc").model_copy(update={"data": b"abd"})
    short = _file("state.pt", b"abc").model_copy(update={"data": b"ab"})
    for files in (
        [wrong],
        [short],
        [_file("a", b"1"), _file("a", b"2")],
        [_file("../escape", b"1")],
        [_file("a//b", b"1")],
        [_file(f"f{i}", b"") for i in range(MAX_CHECKPOINT_FILES + 1)],
        [_file("a", b"x" * (MAX_CHECKPOINT_BYTES // 2)), _file("b", b"y" * MAX_CHECKPOINT_BYTES)],
    ):
        with pytest.raises(ValidationError):
            CheckpointSet(job_id=JOB, seq=1, files=files)


def test_the_largest_checkpoint_with_the_largest_spec_fits_a_miners_request() -> None:
    argv = ["x" * 1000] * (MAX_ARGV_JSON_BYTES // 1003 - 1)
    env = {f"V{i}": "y" * 990 for i in range(min(256, MAX_ENV_JSON_BYTES // 1003) - 1)}
    content = "z" * (MAX_INLINE_INPUTS_JSON_BYTES - 100)
    big = JobSpec(command=argv, env=env, inputs={"a": InputFile(content=content)}, image="a/b:c",
                  checkpoint="ckpt")  # fmt: skip
    each = MAX_CHECKPOINT_BYTES // MAX_CHECKPOINT_FILES
    restored = {
        f"ckpt/{'p' * 200}{i}": InputFile.from_bytes(bytes([i]) * each)
        for i in range(MAX_CHECKPOINT_FILES)
    }
    request = job_request(f"{JOB}-a2", 2, "w-" + "0" * 16, big, restored=restored)
    assert len(request.model_dump_json()) < MAX_HTTP_BODY_BYTES - (64 << 10)


def test_an_executor_that_cannot_watch_the_dir_refuses_a_checkpointing_spec() -> None:
    # The kubernetes executor: the job's files live in its pod, out of the worker's sight.
    checkpointing = ExecutionSpec(command=["x"], timeout_s=1, checkpoint_dir="ckpt")
    assert FEATURE_CHECKPOINTS in checkpointing.requested_features()
    with pytest.raises(UnsupportedError, match="checkpoints"):
        check_spec(checkpointing, KubernetesExecutor.unsupported)
    plain = ExecutionSpec(command=["x"], timeout_s=1)
    assert check_spec(plain, KubernetesExecutor.unsupported) == plain
