"""A worker's GPU checks: NVML (through the worker's own probe), CUDA torch with a small
matmul and triton (in a child process, killed at its deadline), and for the container
executor the engine, its OCI runtime and the CDI spec that gives containers GPUs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from byteleap.commands.doctor_checks.model import Finding, fail, ok, skip, warn
from byteleap.config import ConfigError, WorkerSettings
from byteleap.protocol.hardware import GpuInfo

DRIVER_FIX = (
    "install the NVIDIA driver until `nvidia-smi` lists the GPUs, or set `gpus = []` in "
    "[worker] to run a CPU worker"
)
CUDA_TORCH_FIX = (
    "install a CUDA build of torch: pip install torch --index-url "
    "https://download.pytorch.org/whl/cu124 (match `nvidia-smi`'s CUDA version)"
)
TRITON_FIX = "pip install 'byteleap[gpu]' (triton; torch's CUDA wheels bring it too)"
CDI_FIX = (
    "sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml (the NVIDIA container "
    "toolkit), or point BYTELEAP_CONTAINER_CDI_DIRS at the directory that holds the spec"
)


@dataclass(frozen=True)
class GpuFacts:
    """What NVML showed: its error, the host's GPUs and those this worker serves."""

    nvml_error: str | None = None
    host: list[GpuInfo] = field(default_factory=list)
    chosen: list[GpuInfo] = field(default_factory=list)
    choice_error: str | None = None


def probe_facts(settings: WorkerSettings, environ: Mapping[str, str]) -> GpuFacts:
    """NVML through the worker's own probe and GPU choice (blocking: NVML init)."""
    from byteleap.worker import hardware_probe
    from byteleap.worker.gpu_choice import choose_gpus

    nvml = hardware_probe.pynvml
    try:
        nvml.nvmlInit()
        nvml.nvmlShutdown()
    except (nvml.NVMLError, OSError) as exc:
        return GpuFacts(nvml_error=str(exc) or type(exc).__name__)
    host = hardware_probe.probe_gpus()
    try:
        choice = choose_gpus(
            host, indices=settings.gpus, visible_devices=environ.get("CUDA_VISIBLE_DEVICES")
        )
    except ConfigError as exc:
        return GpuFacts(host=host, choice_error=str(exc))
    chosen = host if choice.uuids is None else [g for g in host if g.uuid in choice.uuids]
    return GpuFacts(host=host, chosen=chosen)


def wants_gpus(settings: WorkerSettings, facts: GpuFacts) -> bool:
    """Whether this worker serves GPUs: those it names, or those NVML shows it."""
    return bool(settings.gpus) or bool(facts.chosen)


def nvml_verdict(settings: WorkerSettings, facts: GpuFacts) -> Finding:
    named = settings.gpus
    if named == []:
        return skip("nvml", "a CPU-only worker (gpus = [])")
    if facts.nvml_error is not None:
        if not named:
            return skip("nvml", f"no NVIDIA driver here (NVML: {facts.nvml_error}): a CPU worker")
        return fail(
            "nvml", f"gpus = {named} but NVML is not readable: {facts.nvml_error}", DRIVER_FIX
        )
    if facts.choice_error is not None:
        return fail(
            "nvml",
            facts.choice_error,
            "set `gpus` in [worker] (or CUDA_VISIBLE_DEVICES) to GPUs `nvidia-smi -L` lists",
        )
    if not facts.host:
        return skip("nvml", "NVML shows no GPU: a CPU worker")
    first = facts.host[0]
    serves = ", ".join(str(g.index) for g in facts.chosen) or "none"
    models = sorted({g.model for g in facts.host})
    return ok(
        "nvml",
        f"driver {first.driver_version} (CUDA {first.cuda_version}): {len(facts.host)} GPU(s) "
        f"({', '.join(models)}); this worker serves {serves}",
    )


# Run in a child: importing torch takes seconds and a CUDA context cannot be undone; a stuck
# driver is killed with the child.
TORCH_PROBE = """
import json
try:
    import torch
except ImportError as exc:
    print(json.dumps({"missing": str(exc)})); raise SystemExit
out = {"torch": torch.__version__, "cuda": torch.version.cuda}
if torch.version.cuda is not None and torch.cuda.is_available():
    a = torch.ones(64, 64, device="cuda")
    out["sum"] = float((a @ a).sum().item())
    out["device"] = torch.cuda.get_device_name(0)
print(json.dumps(out))
"""
TRITON_PROBE = "import json, triton; print(json.dumps({'triton': triton.__version__}))"


@dataclass(frozen=True)
class ChildReply:
    returncode: int
    stdout: str
    stderr: str


async def run_python(code: str, env: Mapping[str, str]) -> ChildReply:
    """``python -c code`` with this interpreter; killed when its awaiter gives up."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
    )  # fmt: skip
    try:
        out, err = await process.communicate()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode is not None
    return ChildReply(
        process.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    )


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


def torch_verdict(reply: ChildReply) -> Finding:
    try:
        found = json.loads(reply.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return fail("torch", f"the torch probe failed: {_last_line(reply.stderr)}", CUDA_TORCH_FIX)
    if "missing" in found:
        return fail("torch", f"torch is not installed ({found['missing']})", CUDA_TORCH_FIX)
    version = found["torch"]
    if found.get("cuda") is None:
        return fail("torch", f"torch {version} is a CPU build", CUDA_TORCH_FIX)
    if "sum" not in found:
        return fail(
            "torch",
            f"torch {version} (CUDA {found['cuda']}) sees no GPU",
            "check `nvidia-smi` and CUDA_VISIBLE_DEVICES; the driver must support CUDA "
            f"{found['cuda']}",
        )
    if found["sum"] != 64.0**3:
        return fail(
            "torch",
            f"a 64x64 matmul of ones on {found['device']} summed to {found['sum']}, not 262144",
            "the GPU computes wrongly: check `nvidia-smi -q` for errors, reset or replace it",
        )
    return ok("torch", f"torch {version} (CUDA {found['cuda']}): matmul on {found['device']} ok")


def triton_verdict(reply: ChildReply) -> Finding:
    try:
        version = json.loads(reply.stdout.strip().splitlines()[-1])["triton"]
    except (IndexError, ValueError, KeyError):
        return fail("triton", f"cannot import triton: {_last_line(reply.stderr)}", TRITON_FIX)
    return ok("triton", f"triton {version}")


def gpu_env(facts: GpuFacts) -> dict[str, str]:
    """This environment with only the worker's GPUs visible, as its challenges see them."""
    env = dict(os.environ)
    if facts.chosen:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(g.uuid for g in facts.chosen)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


async def check_torch(facts: GpuFacts) -> Finding:
    return torch_verdict(await run_python(TORCH_PROBE, gpu_env(facts)))


async def check_triton(facts: GpuFacts) -> Finding:
    return triton_verdict(await run_python(TRITON_PROBE, gpu_env(facts)))


async def check_container(environ: Mapping[str, str]) -> list[Finding]:
    """The engine the container executor would pick, its runtime, and GPU access for it."""
    from byteleap.worker.executors.container_engine import (
        ContainerSettings,
        detect_engine,
        no_cdi_spec_reason,
        nvidia_cdi_specs,
        nvidia_toolkit,
    )
    from byteleap.worker.executors.errors import ExecutorError

    try:
        settings = ContainerSettings.from_env(environ)
        engine = await detect_engine(settings)
    except ExecutorError as exc:
        return [
            fail(
                "container",
                str(exc),
                "install podman (with runc): apt-get install podman runc, or set "
                "BYTELEAP_CONTAINER_ENGINE",
            )
        ]
    found = [ok("container", f"{engine.kind} at {engine.path} ({engine.version})")]
    if engine.kind == "podman":
        found.append(_runtime(engine.global_args))
        specs = nvidia_cdi_specs(settings.cdi_dirs)
        if specs:
            found.append(ok("cdi", f"nvidia.com/gpu in {', '.join(map(str, specs))}"))
        else:
            found.append(fail("cdi", no_cdi_spec_reason(settings.cdi_dirs), CDI_FIX))
    else:
        found.append(skip("runtime", "docker's daemon chooses the OCI runtime"))
        toolkit = nvidia_toolkit()
        if toolkit:
            found.append(ok("cdi", f"NVIDIA container toolkit at {toolkit} (docker --gpus)"))
        else:
            found.append(
                fail(
                    "cdi",
                    "the NVIDIA container toolkit (needed by docker --gpus) is not installed",
                    "install nvidia-container-toolkit and run "
                    "`sudo nvidia-ctk runtime configure --runtime=docker`",
                )
            )
    return found


def _runtime(global_args: tuple[str, ...]) -> Finding:
    runtime = next((a.split("=", 1)[1] for a in global_args if a.startswith("--runtime=")), None)
    if runtime is None:
        if found := shutil.which("runc"):
            return ok("runtime", f"podman's default runtime; runc at {found}")
        return warn(
            "runtime",
            "no runc: podman uses its own default OCI runtime",
            "apt-get install runc (or set BYTELEAP_CONTAINER_RUNTIME to a runtime's path)",
        )
    if not Path(runtime).is_file() or not os.access(runtime, os.X_OK):
        return fail(
            "runtime",
            f"OCI runtime {runtime} is not an executable file",
            "apt-get install runc, or set BYTELEAP_CONTAINER_RUNTIME to a runtime's path",
        )
    return ok("runtime", f"OCI runtime {runtime}")


def gpu_skip_reason(settings: WorkerSettings, facts: GpuFacts) -> str:
    """Why the CUDA checks do not apply to this worker."""
    if settings.gpus == []:
        return "a CPU-only worker (gpus = [])"
    if facts.nvml_error is not None:
        return "no GPU: NVML is not readable here"
    return "no GPU: NVML shows none"
