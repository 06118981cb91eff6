"""Which executor runs a job on this worker, and what it is told. Pure: no I/O.

The worker's ``executor`` setting decides: ``process`` runs each job as its request says (a
process, or a container when it names an image); ``container`` runs every job in a local
container (a job naming no image gets the container settings' default image); ``kubernetes``
runs every job as a Kubernetes Job in the worker's cluster. A service replica always runs as
its request says: it serves on a port of this host, which a pod in a cluster does not have.
"""

from __future__ import annotations

import re
from typing import Literal

from byteleap.net.messages import JobRequest
from byteleap.worker.executors import KubernetesOptions

ExecutorSetting = Literal["process", "container", "kubernetes"]

# A node label value: at most 63 characters, alphanumerics at both ends, -_. inside.
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


def job_executor(setting: ExecutorSetting, job: JobRequest) -> str:
    if setting == "process" or job.serve:
        return job.executor
    return setting


def gpu_product_label(model: str) -> str | None:
    """NVML's model name as NVIDIA GPU feature discovery labels nodes
    (``nvidia.com/gpu.product``): spaces become dashes, ``NVIDIA A100-SXM4-80GB`` →
    ``NVIDIA-A100-SXM4-80GB``; None when the name cannot be a label value."""
    label = re.sub(r"\s+", "-", model.strip())
    return label if _LABEL_VALUE.fullmatch(label) else None


def kubernetes_options(job: JobRequest, gpu_model: str | None) -> KubernetesOptions:
    """The job's image, the node GPU model to select when it uses GPUs, and its id."""
    wants_gpus = bool(job.spec.gpus) and gpu_model is not None
    return KubernetesOptions(
        image=job.image,
        gpu_model=gpu_product_label(gpu_model) if wants_gpus and gpu_model else None,
        job_id=job.job_id,
    )
