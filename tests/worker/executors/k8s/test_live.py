"""The Kubernetes executor against a real cluster (marker ``k8s``): runs only when ``KUBECONFIG``
is set. ``BYTELEAP_K8S_NAMESPACE`` (default ``byteleap``, must exist) and
``BYTELEAP_K8S_TEST_IMAGE`` (default ``busybox:1.36``, pullable by the cluster) pick where and
what; GPU scenarios are not run here (the manifests' GPU parts are checked offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from byteleap.worker.executors import (
    ExecutionSpec,
    ExecutionState,
    KubernetesExecutor,
    KubernetesOptions,
    KubernetesSettings,
    StartFailedError,
)
from byteleap.worker.executors.base import parse_spec

pytestmark = [
    pytest.mark.k8s,
    pytest.mark.skipif(
        not os.environ.get("KUBECONFIG"), reason="no cluster: set KUBECONFIG to run live tests"
    ),
]

IMAGE = os.environ.get("BYTELEAP_K8S_TEST_IMAGE", "busybox:1.36")


@pytest.fixture
def executor() -> KubernetesExecutor:
    settings = KubernetesSettings.from_env().model_copy(
        update={"image": IMAGE, "start_timeout_s": 180.0, "kill_grace_s": 2}
    )
    return KubernetesExecutor(settings)


def sh(script: str, timeout_s: float = 60) -> ExecutionSpec:
    return parse_spec({"command": ["sh", "-c", script], "timeout_s": timeout_s})


async def test_live_job_output_and_exit_code(executor: KubernetesExecutor, tmp_path: Path) -> None:
    execution = await executor.start(sh("echo hello; exit 4"), tmp_path)
    result = await execution.wait()
    assert result.exit_code == 4 and result.state == ExecutionState.FAILED
    assert "hello" in result.stdout_tail


async def test_live_inputs_are_files_in_the_work_dir(
    executor: KubernetesExecutor, tmp_path: Path
) -> None:
    spec = parse_spec(
        {"command": ["cat", "/work/in.txt"], "timeout_s": 60, "inputs": {"in.txt": "payload"}}
    )
    result = await (await executor.start(spec, tmp_path, KubernetesOptions(job_id="live"))).wait()
    assert result.state == ExecutionState.SUCCEEDED and "payload" in result.stdout_tail


async def test_live_timeout_and_cancel_delete_the_job(
    executor: KubernetesExecutor, tmp_path: Path
) -> None:
    timed = await (await executor.start(sh("sleep 600", timeout_s=3), tmp_path)).wait()
    assert timed.state == ExecutionState.TIMED_OUT
    execution = await executor.start(sh("sleep 600"), tmp_path)
    cancelled = await execution.cancel()
    assert cancelled.state == ExecutionState.CANCELLED
    cluster = await executor.cluster()
    job = cluster.read("Job", execution.name)
    assert job is None or job["metadata"].get("deletionTimestamp") is not None


async def test_live_unpullable_image_is_a_start_failure(
    executor: KubernetesExecutor, tmp_path: Path
) -> None:
    with pytest.raises(StartFailedError):
        await executor.start(
            sh("true"), tmp_path, KubernetesOptions(image="localhost/does-not-exist:0")
        )
