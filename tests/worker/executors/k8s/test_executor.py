"""The Kubernetes executor's I/O shell — the official client, the pod watch, the log follow,
timeouts, cancel and cleanup — against ``fake_cluster`` over real HTTP (marker ``k8s``).
The same scenarios run against a real cluster in ``test_live.py`` when one is configured."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from byteleap.worker.executors import (
    ExecutionSpec,
    ExecutionState,
    KubernetesExecutor,
    KubernetesOptions,
    KubernetesSettings,
    StartFailedError,
)
from byteleap.worker.executors.base import parse_spec
from byteleap.worker.executors.k8s_cluster import KubernetesCluster
from worker.executors.k8s.fake_cluster import FakeCluster, serve

pytestmark = pytest.mark.k8s

SETTINGS = KubernetesSettings(namespace="jobs", image="local/python", start_timeout_s=10)


@pytest.fixture
def fake() -> Iterator[tuple[FakeCluster, KubernetesExecutor]]:
    cluster = FakeCluster()
    with serve(cluster) as url:
        configuration = client.Configuration()
        configuration.host = url
        api = client.ApiClient(configuration)
        yield cluster, KubernetesExecutor(SETTINGS, cluster=KubernetesCluster(api, SETTINGS))
        api.close()


def python(code: str, **fields: object) -> ExecutionSpec:
    return parse_spec({"command": [sys.executable, "-c", code], "timeout_s": 20} | fields)


def deletes(cluster: FakeCluster) -> list[tuple[str, str]]:
    return [(path, q.get("propagationPolicy")) for m, path, q in cluster.calls if m == "DELETE"]


async def test_a_job_runs_streams_its_log_and_is_cleaned_up(
    fake: tuple[FakeCluster, KubernetesExecutor], tmp_path: Path
) -> None:
    cluster, executor = fake
    spec = python("import sys; print('hello'); print('bye', file=sys.stderr); sys.exit(3)")
    execution = await executor.start(spec, tmp_path, KubernetesOptions(job_id="job-42"))
    lines = [line.line async for line in execution.logs()]
    result = await execution.wait()
    assert result.exit_code == 3 and result.state == ExecutionState.FAILED
    assert "hello" in lines and "bye" in lines
    assert "hello" in result.stdout_tail
    created = [body for m, _, body in cluster.calls if m == "POST"]
    assert [o["kind"] for o in created] == ["Job"]
    assert created[0]["metadata"]["labels"]["byteleap.io/job"] == "job-42"
    job_path = f"/apis/batch/v1/namespaces/jobs/jobs/{execution.name}"
    assert deletes(cluster) == [(job_path, "Background")]
    assert not cluster.objects


async def test_deletes_propagate_in_the_background(
    fake: tuple[FakeCluster, KubernetesExecutor], tmp_path: Path
) -> None:
    cluster, executor = fake
    execution = await executor.start(python("print(1)", inputs={"a.txt": "x"}), tmp_path)
    assert (await execution.wait()).state == ExecutionState.SUCCEEDED
    kinds = {path.split("/")[-2]: policy for path, policy in deletes(cluster)}
    assert kinds == {"jobs": "Background", "configmaps": "Background"}
    assert not cluster.objects


async def test_a_timeout_deletes_the_job(
    fake: tuple[FakeCluster, KubernetesExecutor], tmp_path: Path
) -> None:
    cluster, executor = fake
    spec = python("import time; print('start', flush=True); time.sleep(60)", timeout_s=1)
    execution = await executor.start(spec, tmp_path)
    result = await execution.wait()
    assert result.state == ExecutionState.TIMED_OUT and result.killed_by == "timeout"
    assert "start" in result.stdout_tail
    assert all(pod.exit_code is not None or pod.deleted for pod in cluster.pods.values())
    assert not cluster.objects


async def test_cancel_stops_the_pod_and_says_so(
    fake: tuple[FakeCluster, KubernetesExecutor], tmp_path: Path
) -> None:
    cluster, executor = fake
    execution = await executor.start(python("import time; time.sleep(60)"), tmp_path)
    result = await execution.cancel()
    assert result.state == ExecutionState.CANCELLED and result.killed_by == "cancel"
    assert (await execution.cancel()) == result
    assert not cluster.objects


async def test_a_refused_create_is_a_start_failure_and_leaves_nothing(
    fake: tuple[FakeCluster, KubernetesExecutor], tmp_path: Path
) -> None:
    cluster, executor = fake
    cluster.app.router.routes.insert(0, _refuse_jobs_route())
    with pytest.raises(StartFailedError, match="cannot create Job"):
        await executor.start(python("print(1)", inputs={"a.txt": "x"}), tmp_path)
    assert not cluster.objects  # the ConfigMap made before the refusal was deleted


def _refuse_jobs_route() -> object:
    from fastapi import Response
    from fastapi.routing import APIRoute

    async def refuse() -> Response:
        return Response('{"kind":"Status","message":"quota exceeded"}', 403)

    return APIRoute("/apis/batch/v1/namespaces/{ns}/jobs", refuse, methods=["POST"])
