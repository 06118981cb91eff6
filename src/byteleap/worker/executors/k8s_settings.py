"""The Kubernetes executor's inputs: its settings (``BYTELEAP_K8S_*``), the per-job options, a
service replica spec, and the naming rules every object follows. Pure: no I/O.

Names are DNS-1123 labels: ``byteleap-`` and the sanitised id, with a hash of the raw id
appended whenever sanitising changed or shortened it, so two ids never share a name. Label
values are cut and hashed the same way.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from byteleap.protocol.execution import IMAGE_REFERENCE
from byteleap.worker.executors.errors import BadSpecError, ExecutorError

Manifest = dict[str, Any]

WORK_DIR = "/work"
CONTAINER_NAME = "main"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_EXECUTION = "byteleap.io/execution"
LABEL_JOB = "byteleap.io/job"
LABEL_SERVICE = "byteleap.io/service"
#: etcd keeps an object under about 1.5 MiB; a ConfigMap's data is capped at 1 MiB.
MAX_CONFIGMAP_BYTES = 1 << 20
#: Input files live in a ConfigMap, so their total size is bounded by it.
FEATURE_LARGE_INPUTS = "inputs_over_1mib"
FEATURE_CPU_TIME_LIMIT = "cpu_time_limit"

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_IMAGE = IMAGE_REFERENCE  # one grammar, the one the API checks at submit
_PREFIX = "byteleap-"
_HASH_CHARS = 8


def _digest(raw: str) -> str:
    return hashlib.blake2s(raw.encode(), digest_size=8).hexdigest()[:_HASH_CHARS]


def dns1123_name(raw: str, *, max_len: int = 63) -> str:
    """``byteleap-<raw>`` as a DNS-1123 label (and DNS-1035: it starts with a letter)."""
    cleaned = re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw.lower())).strip("-")
    name = f"{_PREFIX}{cleaned}" if cleaned else _PREFIX.rstrip("-")
    if cleaned == raw and len(name) <= max_len:
        return name
    head = name[: max_len - _HASH_CHARS - 1].rstrip("-")
    return f"{head}-{_digest(raw)}"


def label_value(raw: str) -> str:
    """``raw`` as a label value (63 characters at most), hashed when it had to change."""
    if len(raw) <= 63 and _LABEL_VALUE.fullmatch(raw):
        return raw
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", raw)[: 63 - _HASH_CHARS - 1].strip("-_.")
    return f"{cleaned}-{_digest(raw)}" if cleaned else _digest(raw)


def cpu_quantity(cpus: float) -> str:
    return f"{max(1, math.ceil(cpus * 1000))}m"


def memory_quantity(mib: int) -> str:
    return f"{mib}Mi"


class KubernetesSettings(BaseModel):
    """Where and how the executor runs pods. ``from_env`` reads ``BYTELEAP_K8S_*``; the cluster
    itself comes from ``KUBECONFIG`` (or the in-cluster service account)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = "byteleap"
    context: str | None = None  # a kubeconfig context; None: the current one
    image: str | None = None  # the image of a job that names none
    run_as_user: int = Field(default=65532, ge=1)  # never 0: pods run as non-root
    runtime_class: str | None = None  # e.g. "nvidia" where GPU pods need that runtime
    default_cpus: float = Field(default=1.0, gt=0, le=1024, allow_inf_nan=False)
    default_memory_mib: int = Field(default=2048, ge=16)
    scratch_mib: int = Field(default=10240, ge=1)  # /work; /tmp gets a tenth
    start_timeout_s: float = Field(default=600.0, gt=0)  # scheduling plus an image pull
    kill_grace_s: int = Field(default=10, ge=0)
    request_timeout_s: float = Field(default=30.0, gt=0)  # one API call

    @field_validator("namespace", "runtime_class")
    @classmethod
    def _dns_label(cls, value: str | None) -> str | None:
        if value is not None and (len(value) > 63 or not _DNS_LABEL.fullmatch(value)):
            raise ValueError(f"{value!r} is not a DNS-1123 label")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, image: str | None) -> str | None:
        return _checked_image(image)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KubernetesSettings:
        env = os.environ if environ is None else environ
        fields = {
            field: env[f"BYTELEAP_K8S_{field.upper()}"]
            for field in cls.model_fields
            if env.get(f"BYTELEAP_K8S_{field.upper()}")
        }
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise ExecutorError(f"invalid BYTELEAP_K8S_* settings: {exc}") from exc


def _checked_image(image: str | None) -> str | None:
    if image is not None and not _IMAGE.fullmatch(image):
        raise ValueError(f"{image!r} is not an image reference")
    return image


def _checked_gpu_model(model: str | None) -> str | None:
    if model is not None and (not model or len(model) > 63 or not _LABEL_VALUE.fullmatch(model)):
        raise ValueError(f"{model!r} is not a node label value")
    return model


class KubernetesOptions(BaseModel):
    """What a Kubernetes job needs beyond ``ExecutionSpec``. The GPU count is
    ``len(spec.gpus)``: the device plugin, not the worker, picks which devices."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str | None = None
    cpus: float | None = Field(default=None, gt=0, le=1024, allow_inf_nan=False)
    gpu_model: str | None = None  # a GFD product label value, e.g. "NVIDIA-A100-SXM4-80GB"
    job_id: str | None = None  # the gateway's job id, carried as a label

    @field_validator("image")
    @classmethod
    def _image(cls, image: str | None) -> str | None:
        return _checked_image(image)

    @field_validator("gpu_model")
    @classmethod
    def _gpu_model(cls, model: str | None) -> str | None:
        return _checked_gpu_model(model)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> KubernetesOptions:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadSpecError(f"invalid kubernetes options: {exc}", errors=exc.errors()) from exc


class ServiceReplicaSpec(BaseModel):
    """One service replica set: a long-running HTTP server behind a readiness probe."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    service_id: str = Field(min_length=1, max_length=200)
    image: str
    command: list[str] | None = None  # None: the image's entrypoint
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    port: int = Field(ge=1, le=65535)
    health_path: str = Field(default="/health", pattern=r"^/[\x21-\x7e]{0,1023}$")
    replicas: int = Field(default=1, ge=0, le=1000)
    cpus: float | None = Field(default=None, gt=0, le=1024, allow_inf_nan=False)
    memory_mib: int | None = Field(default=None, ge=16)
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_model: str | None = None
    max_unavailable: int = Field(default=0, ge=0)
    max_surge: int = Field(default=1, ge=0)

    @field_validator("image")
    @classmethod
    def _image(cls, image: str) -> str:
        _checked_image(image)
        return image

    @field_validator("gpu_model")
    @classmethod
    def _gpu_model(cls, model: str | None) -> str | None:
        return _checked_gpu_model(model)

    @model_validator(mode="after")
    def _rollout_can_progress(self) -> ServiceReplicaSpec:
        if self.max_unavailable == 0 and self.max_surge == 0:
            raise ValueError("max_unavailable and max_surge cannot both be 0")
        if self.gpu_model is not None and self.gpus == 0:
            raise ValueError("a GPU model is named but no GPU is asked for")
        return self

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        return checked_env(env)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ServiceReplicaSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadSpecError(f"invalid service spec: {exc}", errors=exc.errors()) from exc


def checked_env(env: Mapping[str, str]) -> dict[str, str]:
    """A workload's env, refusing ``NVIDIA_VISIBLE_DEVICES``: with the NVIDIA runtime in
    env-var mode it would name GPUs the device plugin never gave the pod."""
    for key in env:
        if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", key):
            raise ValueError(f"environment variable {key!r} is not valid in Kubernetes")
        if key == "NVIDIA_VISIBLE_DEVICES":
            raise ValueError("NVIDIA_VISIBLE_DEVICES is set by the GPU device plugin, not the job")
    return dict(env)
