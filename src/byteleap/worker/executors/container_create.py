"""What a container job is made of: the per-job container options and the ``create`` command
line built from them, the execution spec and the engine. Pure: no I/O.

The work dir is bind-mounted at ``/work`` (the program's cwd and HOME): inputs are written
there before the start and artifacts read from there after the end, on the host. Everything a
container gets is explicit: no network unless asked, a pids limit, no capabilities, no new
privileges, no GPU unless listed, the engine's log driver off (output is bounded here, not in a
log file that grows on the worker's disk).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from byteleap.protocol.execution import IMAGE_REFERENCE, ExecutionSpec
from byteleap.worker.executors.container_engine import ContainerEngine, ContainerSettings, Ulimits
from byteleap.worker.executors.errors import BadSpecError

WORK_DIR = "/work"
LABEL_EXECUTOR = "byteleap.executor"
LABEL_EXECUTION = "byteleap.execution"
#: Seconds between SIGXCPU (soft RLIMIT_CPU) and the kernel's SIGKILL, as for processes.
CPU_HARD_MARGIN_S = 5

_IMAGE = IMAGE_REFERENCE  # one grammar, the one the API checks at submit
#: A path the engine's ``--mount`` parser can take whole (it splits on commas).
_MOUNT_PATH = re.compile(r"/[^,\n\x00]*")

NetworkMode = Literal["none", "bridge"]


class Mount(BaseModel):
    """A host directory the operator lends a job (a model cache, a data set); read-only unless
    said otherwise. Never build one from a customer's input: the source is any host path."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    target: str
    read_only: bool = True

    @field_validator("source", "target")
    @classmethod
    def _absolute(cls, path: str) -> str:
        if not _MOUNT_PATH.fullmatch(path) or ".." in PurePosixPath(path).parts:
            raise ValueError(f"{path!r} must be an absolute path without commas or '..'")
        return PurePosixPath(path).as_posix()

    @field_validator("target")
    @classmethod
    def _beside_work_dir(cls, target: str) -> str:
        pure, work = PurePosixPath(target), PurePosixPath(WORK_DIR)
        if pure == work or work in pure.parents or pure in work.parents:
            raise ValueError(f"mount target {target!r} would cover {WORK_DIR} or lie inside it")
        return target


class ContainerOptions(BaseModel):
    """What a container job needs beyond ``ExecutionSpec``; unset fields take the settings'."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image: str | None = None
    cpus: float | None = Field(default=None, gt=0, le=1024, allow_inf_nan=False)
    network: NetworkMode | None = None  # a spec that asks for isolation overrides this
    mounts: list[Mount] = Field(default_factory=list)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ContainerOptions:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadSpecError(f"invalid container options: {exc}", errors=exc.errors()) from exc

    @field_validator("image")
    @classmethod
    def _image(cls, image: str | None) -> str | None:
        # A leading '-' would be read by the engine as one more flag.
        if image is not None and not _IMAGE.fullmatch(image):
            raise ValueError(f"{image!r} is not an image reference")
        return image

    @field_validator("mounts")
    @classmethod
    def _distinct_targets(cls, mounts: list[Mount]) -> list[Mount]:
        if len({m.target for m in mounts}) != len(mounts):
            raise ValueError("two mounts share a target")
        return mounts


def job_image(options: ContainerOptions, settings: ContainerSettings) -> str:
    image = options.image or settings.image
    if image is None:
        raise BadSpecError(
            "no image: give ContainerOptions.image or set BYTELEAP_CONTAINER_IMAGE", field="image"
        )
    return ContainerOptions.parse({"image": image}).image or image


def network_mode(
    spec: ExecutionSpec, options: ContainerOptions, settings: ContainerSettings
) -> NetworkMode:
    if spec.network == "none":
        return "none"
    return options.network or settings.network


def job_env(spec: ExecutionSpec, engine: ContainerEngine) -> dict[str, str]:
    """HOME, the spec's env, and the one variable the NVIDIA hooks read, which the job must
    not set: it could name GPUs it was not given."""
    env = {"HOME": WORK_DIR, **spec.env}
    if engine.kind == "docker" and spec.gpus:
        env["NVIDIA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
    else:
        # podman injects listed GPUs through CDI; "void" keeps a legacy hook from adding more.
        env["NVIDIA_VISIBLE_DEVICES"] = "void"
    return env


def job_ulimits(spec: ExecutionSpec, engine: ContainerEngine) -> Ulimits:
    limits = dict(engine.ulimits)
    if spec.cpu_time_limit_s is not None:
        limits["cpu"] = (spec.cpu_time_limit_s, spec.cpu_time_limit_s + CPU_HARD_MARGIN_S)
    return limits


def create_argv(
    engine: ContainerEngine,
    settings: ContainerSettings,
    spec: ExecutionSpec,
    options: ContainerOptions,
    *,
    workdir: Path,
    name: str,
    execution_id: str,
    user: tuple[int, int] | None = None,
) -> list[str]:
    """The full ``<engine> create`` command line; ``user`` (uid, gid) is used with docker only,
    whose root in the container would otherwise own the artifacts."""
    if not _MOUNT_PATH.fullmatch(str(workdir)):
        raise BadSpecError(f"work dir {workdir} cannot be mounted (a comma in its path?)")
    argv = engine.argv("create", *engine.create_args)
    argv += [
        f"--name={name}",
        f"--label={LABEL_EXECUTOR}=container",
        f"--label={LABEL_EXECUTION}={execution_id}",
        "--log-driver=none",
        f"--pull={settings.pull}",
        f"--network={network_mode(spec, options, settings)}",
        f"--pids-limit={settings.pids_limit}",
        "--security-opt=no-new-privileges",
        f"--mount=type=bind,src={workdir},dst={WORK_DIR}",
        f"--workdir={WORK_DIR}",
    ]
    if settings.drop_capabilities:
        argv.append("--cap-drop=ALL")
    argv += [
        f"--mount=type=bind,src={m.source},dst={m.target}" + (",readonly" if m.read_only else "")
        for m in options.mounts
    ]
    argv += [f"--env={key}={value}" for key, value in job_env(spec, engine).items()]
    argv += [
        f"--ulimit={k}={soft}:{hard}"
        for k, (soft, hard) in sorted(job_ulimits(spec, engine).items())
    ]
    if spec.memory_limit_mib is not None:
        # Swap equal to memory: over the limit the job is killed, it does not swap.
        argv += [f"--memory={spec.memory_limit_mib}m", f"--memory-swap={spec.memory_limit_mib}m"]
    if options.cpus is not None:
        argv.append(f"--cpus={options.cpus:g}")
    argv += _gpu_args(engine, spec.gpus)
    if engine.kind == "docker" and user is not None:
        argv.append(f"--user={user[0]}:{user[1]}")
    return [*argv, job_image(options, settings), *spec.command]


def _gpu_args(engine: ContainerEngine, gpus: list[int]) -> list[str]:
    if not gpus:
        return []
    if engine.kind == "podman":
        return [f"--device=nvidia.com/gpu={g}" for g in gpus]
    # docker reads --gpus as CSV: a list of devices must be one quoted field.
    return [f'--gpus="device={",".join(str(g) for g in gpus)}"']
