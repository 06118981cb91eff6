"""A worker set to ``executor = "kubernetes"`` runs its jobs as Kubernetes Jobs: the worker's
own ``JobRunner`` against the stand-in API server of ``worker/executors/k8s/fake_cluster.py``
(real HTTP, the official client), which plays kubelet by running the pod's command as a
process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from byteleap.net.messages import JobEnded, JobLogChunk, JobRequest, parse_worker_message
from byteleap.worker.executors import ExecutionSpec, KubernetesExecutor, KubernetesSettings
from byteleap.worker.executors.k8s_cluster import KubernetesCluster
from byteleap.worker.jobs import JobRunner
from worker.executors.k8s.fake_cluster import FakeCluster, serve

pytestmark = pytest.mark.k8s

SETTINGS = KubernetesSettings(namespace="jobs", image="local/python", start_timeout_s=10)


@pytest.fixture
def cluster() -> Iterator[tuple[FakeCluster, KubernetesExecutor]]:
    fake = FakeCluster()
    with serve(fake) as url:
        configuration = client.Configuration()
        configuration.host = url
        api = client.ApiClient(configuration)
        yield fake, KubernetesExecutor(SETTINGS, cluster=KubernetesCluster(api, SETTINGS))
        api.close()


async def test_a_kubernetes_worker_runs_a_plain_job_as_a_cluster_job(
    cluster: tuple[FakeCluster, KubernetesExecutor], tmp_path: Path
) -> None:
    fake, executor = cluster
    asked: list[str] = []

    def executors(name: str) -> KubernetesExecutor:
        asked.append(name)
        return executor

    runner = JobRunner(
        tmp_path, executor="kubernetes", gpu_model="NVIDIA H100 80GB HBM3", executors=executors
    )
    sent: list[JobLogChunk | JobEnded] = []

    async def send(raw: str) -> None:
        message = parse_worker_message(raw)
        assert isinstance(message, JobLogChunk | JobEnded)
        sent.append(message)

    job = JobRequest(
        job_id="job_k8s_0001",
        attempt=1,
        worker_id="w-0123456789abcdef",
        executor="process",  # the gateway asked for a process; this worker uses its cluster
        spec=ExecutionSpec(command=[sys.executable, "-c", "print('in the cluster')"], timeout_s=20),
    )
    await runner.run(job, send)

    assert asked == ["kubernetes"]
    ended = [m for m in sent if isinstance(m, JobEnded)]
    assert len(ended) == 1 and ended[0].result.exit_code == 0
    assert "in the cluster" in ended[0].result.stdout_tail
    log = b"".join(m.data for m in sent if isinstance(m, JobLogChunk))
    assert len(log) == ended[0].log_bytes and b"in the cluster\n" in log
    created = [body for method, _, body in fake.calls if method == "POST"]
    assert [o["kind"] for o in created] == ["Job"]
    labels = created[0]["metadata"]["labels"]
    assert labels["byteleap.io/job"] == "job_k8s_0001"
    # no GPUs asked: the pod is not pinned to the worker's GPU model
    pod = created[0]["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod or "nvidia.com/gpu.product" not in pod["nodeSelector"]
    assert not fake.objects  # cleaned up
