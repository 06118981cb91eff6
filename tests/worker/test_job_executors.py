"""Which executor a worker runs a job with, and the Kubernetes options it passes."""

from __future__ import annotations

from typing import Any

import pytest

from byteleap.net.messages import JobRequest
from byteleap.worker.executors import ExecutionSpec
from byteleap.worker.job_executors import gpu_product_label, job_executor, kubernetes_options


def job(**fields: Any) -> JobRequest:
    values: dict[str, Any] = {
        "job_id": "job_0123456789",
        "attempt": 1,
        "worker_id": "w-0123456789abcdef",
        "spec": ExecutionSpec(command=["true"], timeout_s=10),
    }
    return JobRequest(**(values | fields))


@pytest.mark.parametrize(
    ("setting", "requested", "serve", "expected"),
    [
        ("process", "process", False, "process"),
        ("process", "container", False, "container"),
        ("container", "process", False, "container"),
        ("kubernetes", "process", False, "kubernetes"),
        ("kubernetes", "container", False, "kubernetes"),
        # a replica serves on this host's port: it runs as asked, wherever jobs go
        ("kubernetes", "container", True, "container"),
        ("container", "process", True, "process"),
    ],
)
def test_the_worker_setting_picks_the_executor(
    setting: Any, requested: str, serve: bool, expected: str
) -> None:
    assert job_executor(setting, job(executor=requested, serve=serve)) == expected


def test_kubernetes_options_carry_image_job_and_the_gpu_product_when_gpus_are_used() -> None:
    gpu_job = job(
        image="pytorch/pytorch:2.3", spec=ExecutionSpec(command=["x"], timeout_s=5, gpus=[0])
    )
    options = kubernetes_options(gpu_job, "NVIDIA A100-SXM4-80GB")
    assert options.image == "pytorch/pytorch:2.3"
    assert options.job_id == "job_0123456789"
    assert options.gpu_model == "NVIDIA-A100-SXM4-80GB"
    # no GPUs asked: no node selector on the model
    assert kubernetes_options(job(), "NVIDIA A100-SXM4-80GB").gpu_model is None
    assert kubernetes_options(gpu_job, None).gpu_model is None


@pytest.mark.parametrize(
    ("model", "label"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("Tesla T4", "Tesla-T4"),
        ("NVIDIA GeForce RTX 4090 ", "NVIDIA-GeForce-RTX-4090"),
        ("weird/model", None),
        ("x" * 64, None),
    ],
)
def test_gpu_product_labels_follow_feature_discovery(model: str, label: str | None) -> None:
    assert gpu_product_label(model) == label
