"""What a customer's job becomes for placement and on the wire: its requirements, its worst
price, and the request a miner is sent for one attempt. Pure: no I/O."""

from __future__ import annotations

from typing import Protocol

from byteleap.config import GatewaySettings
from byteleap.gateway.scheduler import Requirements
from byteleap.gateway.scheduler.offers import worst_gpu_price
from byteleap.net.messages import JobRequest
from byteleap.protocol.api import JobSpec, Resources
from byteleap.protocol.execution import ExecutionSpec, InputFile
from byteleap.store.cloud import JobRecord


def miner_job_id(job: JobRecord) -> str:
    """The job's current attempt as the miner knows it."""
    return f"{job.id}-a{job.attempts}"


class _Sized(Protocol):
    """What placement reads of a job or a service: its resources and its price cap."""

    @property
    def resources(self) -> Resources: ...

    @property
    def max_price_per_s(self) -> float | None: ...


def requirements_of(spec: _Sized) -> Requirements:
    r = spec.resources
    return Requirements(
        gpu_count=r.gpu_count,
        gpu_model=r.gpu_model,
        min_vram_mib=r.min_vram_mib,
        cpu_cores=r.cpu_cores,
        ram_mib=r.ram_mib,
        max_price_per_s=spec.max_price_per_s,
    )


def worst_price_per_s(spec: _Sized, settings: GatewaySettings) -> float:
    """The most a job or a service replica can cost per second anywhere (what the balance
    must cover before it is admitted)."""
    if spec.max_price_per_s is not None:
        return spec.max_price_per_s
    r = spec.resources
    if r.gpu_count:
        return r.gpu_count * worst_gpu_price(settings.price_per_gpu_s, r.gpu_model)
    return r.cpu_cores * settings.price_per_cpu_s


def worst_case(spec: JobSpec, settings: GatewaySettings) -> float:
    """What a job's submit holds against the balance: its worst price × its timeout; nothing
    for a job on a lease, whose own billing covers it. A dry run (``billing.Billing``) shows
    the same number."""
    return 0.0 if spec.lease_id else worst_price_per_s(spec, settings) * spec.timeout_s


def job_request(
    job_id: str,
    attempt: int,
    worker_id: str,
    spec: JobSpec,
    *,
    lease: str | None = None,
    artifact_limit_bytes: int | None = None,
    gpus: tuple[int, ...] = (),
    restored: dict[str, InputFile] | None = None,
) -> JobRequest:
    """What a miner is asked to run for one attempt (or re-execution) of ``spec``; ``gpus``
    are the worker's GPUs placement picked for it (positions in the worker's listing);
    ``restored``: the checkpoint files a retried attempt starts with, inside its checkpoint
    dir (the spec refuses inputs of its own there)."""
    return JobRequest(
        job_id=job_id,
        attempt=attempt,
        worker_id=worker_id,
        lease_id=lease,
        artifact_limit_bytes=artifact_limit_bytes,
        executor="container" if spec.image else "process",
        image=spec.image,
        spec=ExecutionSpec(
            command=spec.command,
            env=spec.env,
            inputs={**spec.inputs, **(restored or {})},
            timeout_s=spec.timeout_s,
            memory_limit_mib=spec.resources.ram_mib,
            network=spec.network or ("none" if spec.image else "host"),
            gpus=list(gpus),
            checkpoint_dir=spec.checkpoint,
        ),
    )


__all__ = ["job_request", "miner_job_id", "requirements_of", "worst_case", "worst_price_per_s"]
