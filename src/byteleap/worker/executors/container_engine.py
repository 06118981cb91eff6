"""The container engine the container executor drives: which CLI (podman, or docker where only
docker exists), how it is invoked (OCI runtime, ulimits, init) and what it cannot provide.

Settings (``ContainerSettings.from_env``), every one optional:

- ``BYTELEAP_CONTAINER_ENGINE``: ``podman``, ``docker`` or a path to either CLI. Default: podman
  on PATH, else docker.
- ``BYTELEAP_CONTAINER_RUNTIME``: the OCI runtime; a path for podman (default ``/usr/sbin/runc``
  where it exists, else podman's own choice), a registered runtime name for docker.
- ``BYTELEAP_CONTAINER_ULIMITS``: ``nofile=1024:1024,nproc=1024:1024``, or ``none``. Default for
  podman: nofile and nproc at the worker's own limits. podman's built-in defaults raise both far
  above them, which a sandboxed host (no CAP_SYS_RESOURCE) refuses at container start ("error
  setting rlimit ... operation not permitted"); the worker's own limits are always allowed.
  docker's containers are started by the daemon, under the daemon's limits: no default.
- ``BYTELEAP_CONTAINER_IMAGE``: the image of a job that names none.
- ``BYTELEAP_CONTAINER_NETWORK``: ``none`` (default) or ``bridge``: what a job gets that does not
  ask for isolation. A job that asks (``spec.network == "none"``) never gets a network.
- ``BYTELEAP_CONTAINER_PIDS_LIMIT``: processes per container (default 4096).
- ``BYTELEAP_CONTAINER_CDI_DIRS``: where podman's CDI specs for GPUs are looked for, a
  ``:``-separated list (default ``/etc/cdi:/var/run/cdi``, where podman reads them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from byteleap.worker.executors.errors import ExecutorError, UnavailableExecutorError

logger = logging.getLogger(__name__)

EngineKind = Literal["podman", "docker"]
#: Feature name for ``spec.gpus``, in an engine's ``unsupported`` table.
FEATURE_GPUS = "gpus"

_DEFAULT_RUNC = Path("/usr/sbin/runc")
_CATATONIT = (Path("/usr/libexec/podman/catatonit"), Path("/usr/bin/catatonit"))
_CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
_NVIDIA_TOOLKIT = ("nvidia-container-runtime-hook", "nvidia-container-runtime", "nvidia-ctk")
_PID_MAX = Path("/proc/sys/kernel/pid_max")
_DETECT_TIMEOUT_S = 30.0

Ulimits = dict[str, tuple[int, int]]


class ContainerSettings(BaseModel):
    """How the container executor reaches and uses its engine (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: str | None = None  # "podman", "docker" or a path; None: detect
    runtime: str | None = None  # None: /usr/sbin/runc for podman where it exists
    ulimits: Ulimits | None = None  # None: detected; {}: pass none
    init: bool | None = None  # an init as PID 1 that forwards signals and reaps; None: detect
    image: str | None = None
    network: Literal["none", "bridge"] = "none"
    pids_limit: int = Field(default=4096, ge=1)
    pull: Literal["missing", "never", "always", "newer"] = "missing"
    cdi_dirs: tuple[Path, ...] = _CDI_DIRS
    drop_capabilities: bool = True
    create_timeout_s: float = Field(default=600.0, gt=0)  # an image pull may take minutes
    command_timeout_s: float = Field(default=60.0, gt=0)  # inspect, stop, rm

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ContainerSettings:
        env = os.environ if environ is None else environ
        fields: dict[str, object] = {}
        for key, field in (
            ("ENGINE", "engine"),
            ("RUNTIME", "runtime"),
            ("IMAGE", "image"),
            ("NETWORK", "network"),
            ("PIDS_LIMIT", "pids_limit"),
        ):
            if value := env.get(f"BYTELEAP_CONTAINER_{key}"):
                fields[field] = value
        if cdi_dirs := env.get("BYTELEAP_CONTAINER_CDI_DIRS"):
            fields["cdi_dirs"] = tuple(Path(d) for d in cdi_dirs.split(":") if d)
        try:
            if (ulimits := env.get("BYTELEAP_CONTAINER_ULIMITS")) is not None:
                fields["ulimits"] = parse_ulimits(ulimits)
            return cls.model_validate(fields)
        except (ValidationError, ValueError) as exc:
            raise ExecutorError(f"invalid BYTELEAP_CONTAINER_* settings: {exc}") from exc


def parse_ulimits(text: str) -> Ulimits:
    """``nofile=1024:1024,nproc=512`` → ``{"nofile": (1024, 1024), "nproc": (512, 512)}``."""
    if text.strip().lower() in {"", "none"}:
        return {}
    limits: Ulimits = {}
    for item in text.replace(" ", ",").split(","):
        if not item:
            continue
        name, sep, values = item.partition("=")
        soft, _, hard = values.partition(":")
        if not sep or not name.isalpha():
            raise ValueError(f"ulimit {item!r} is not name=soft[:hard]")
        limits[name] = (int(soft), int(hard or soft))
    return limits


@dataclass(frozen=True)
class ContainerEngine:
    """A detected, working engine CLI and the flags every use of it needs."""

    kind: EngineKind
    path: str
    version: str
    global_args: tuple[str, ...]  # right after the program, before the subcommand
    create_args: tuple[str, ...]  # docker's runtime, init: for ``create``
    ulimits: Ulimits  # for ``create``, merged with the job's own (cpu)
    unsupported: dict[str, str]  # feature → why this engine here cannot provide it

    def argv(self, *args: str) -> list[str]:
        return [self.path, *self.global_args, *args]


@dataclass(frozen=True)
class EngineReply:
    returncode: int
    stdout: str
    stderr: str


async def run_engine(argv: Sequence[str], timeout_s: float) -> EngineReply:
    """Run one engine CLI command to its end; a command over ``timeout_s`` is killed."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        return EngineReply(-9, "", f"{argv[0]} {argv[1]}: no answer in {timeout_s:g} s")
    finally:
        if process.returncode is None:  # cancelled while waiting: leave no CLI behind
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    assert process.returncode is not None
    return EngineReply(
        process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


async def detect_engine(settings: ContainerSettings) -> ContainerEngine:
    """Find the engine CLI, check that it answers, and work out its flags and gaps."""
    path = _engine_path(settings.engine)
    try:
        reply = await run_engine([path, "--version"], _DETECT_TIMEOUT_S)
    except OSError as exc:
        raise UnavailableExecutorError(
            f"container engine {path!r} cannot run: {exc}", executor="container", engine=path
        ) from exc
    text = reply.stdout.strip()
    if reply.returncode != 0 or not text:
        raise UnavailableExecutorError(
            f"container engine {path!r} does not answer --version: {reply.stderr.strip()}",
            executor="container",
            engine=path,
        )
    kind: EngineKind = "docker" if text.lower().startswith("docker") else "podman"
    if kind == "docker":
        await _check_docker_daemon(path)
    engine = _configure(kind, path, text, settings)
    logger.info("container engine ready", extra={"engine": path, "version": text})
    return engine


def _engine_path(configured: str | None) -> str:
    candidates = [configured] if configured else ["podman", "docker"]
    for name in candidates:
        if os.sep in name:
            if os.access(name, os.X_OK) and Path(name).is_file():
                return name
        elif found := shutil.which(name):
            return found
    wanted = configured or "podman or docker"
    raise UnavailableExecutorError(
        f"no container engine: {wanted!r} is not installed (or not executable); install "
        "podman (with runc) or set BYTELEAP_CONTAINER_ENGINE",
        executor="container",
        engine=wanted,
    )


async def _check_docker_daemon(path: str) -> None:
    reply = await run_engine([path, "version", "--format", "{{.Server.Version}}"], 30.0)
    if reply.returncode != 0:
        raise UnavailableExecutorError(
            f"docker CLI {path!r} found but its daemon does not answer: {reply.stderr.strip()}",
            executor="container",
            engine=path,
        )


def _configure(
    kind: EngineKind, path: str, version: str, settings: ContainerSettings
) -> ContainerEngine:
    runtime = settings.runtime
    if runtime is None and kind == "podman" and _DEFAULT_RUNC.exists():
        runtime = str(_DEFAULT_RUNC)
    ulimits = settings.ulimits if settings.ulimits is not None else _default_ulimits(kind)
    init = settings.init if settings.init is not None else _init_available(kind)
    global_args: list[str] = []
    create_args: list[str] = []
    if runtime is not None:
        # podman records the runtime per container but its other commands want it too.
        (global_args if kind == "podman" else create_args).append(f"--runtime={runtime}")
    if init:
        create_args.append("--init")
    return ContainerEngine(
        kind=kind,
        path=path,
        version=version,
        global_args=tuple(global_args),
        create_args=tuple(create_args),
        ulimits=ulimits,
        unsupported=_gaps(kind, settings.cdi_dirs),
    )


def _default_ulimits(kind: EngineKind) -> Ulimits:
    if kind == "docker":
        return {}
    limits: Ulimits = {}
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, hard = (_rlim(v) for v in resource.getrlimit(which))
        if name == "nproc" and (pid_max := _pid_max()) is not None:
            # podman lowers its own RLIMIT_NPROC to kernel.pid_max (seen: 32768), and a
            # container cannot be given more than the runtime below it holds.
            soft, hard = (pid_max if v == -1 else min(v, pid_max) for v in (soft, hard))
        limits[name] = (soft, hard)
    return limits


def _pid_max() -> int | None:
    try:
        return int(_PID_MAX.read_text().strip())
    except (OSError, ValueError):
        return None


def _rlim(value: int) -> int:
    return -1 if value == resource.RLIM_INFINITY else value  # -1: unlimited, for the CLI


def _init_available(kind: EngineKind) -> bool:
    if kind == "docker":
        return True  # docker-init ships with the daemon
    return any(p.exists() for p in _CATATONIT) or shutil.which("catatonit") is not None


def _gaps(kind: EngineKind, cdi_dirs: Sequence[Path] = _CDI_DIRS) -> dict[str, str]:
    if kind == "podman" and not nvidia_cdi_specs(cdi_dirs):
        return {FEATURE_GPUS: no_cdi_spec_reason(cdi_dirs)}
    if kind == "docker" and not nvidia_toolkit():
        return {FEATURE_GPUS: "the NVIDIA container toolkit (needed by --gpus) is not installed"}
    return {}


def no_cdi_spec_reason(cdi_dirs: Sequence[Path] = _CDI_DIRS) -> str:
    where = " or ".join(str(d) for d in cdi_dirs)
    return f"no CDI spec for nvidia.com/gpu in {where} (create one with `nvidia-ctk cdi generate`)"


def nvidia_toolkit() -> str | None:
    """The first NVIDIA container toolkit program on PATH (docker's ``--gpus`` needs one)."""
    return next((found for tool in _NVIDIA_TOOLKIT if (found := shutil.which(tool))), None)


def nvidia_cdi_specs(cdi_dirs: Sequence[Path] = _CDI_DIRS) -> list[Path]:
    """The CDI spec files in ``cdi_dirs`` that declare ``nvidia.com/gpu`` devices."""
    found: list[Path] = []
    for directory in cdi_dirs:
        with contextlib.suppress(OSError):
            for spec in sorted(directory.iterdir()):
                if spec.suffix in {".yaml", ".yml", ".json"} and "nvidia.com/gpu" in (
                    spec.read_text(errors="replace")
                ):
                    found.append(spec)
    return found
