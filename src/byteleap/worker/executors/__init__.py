"""Executors: the port through which a worker runs a job's program, and its adapters.

``executor_for(name)`` picks an adapter by name. Adapters share one shape (``Executor`` →
``Execution``) and declare what they cannot do in ``unsupported`` ({feature: reason}).
Errors are under ``ExecutorError`` (see ``errors.py`` for the tree).
"""

from __future__ import annotations

from collections.abc import Callable

from byteleap.protocol.execution import (
    ArtifactInfo,
    ExecutionResult,
    ExecutionSpec,
    ExecutionState,
    InputFile,
    LogLine,
)
from byteleap.worker.executors.base import Execution, Executor, parse_spec
from byteleap.worker.executors.container import ContainerExecution, ContainerExecutor
from byteleap.worker.executors.container_create import ContainerOptions, Mount
from byteleap.worker.executors.container_engine import ContainerEngine, ContainerSettings
from byteleap.worker.executors.errors import (
    BadSpecError,
    ExecutorError,
    StartFailedError,
    UnavailableExecutorError,
    UnknownExecutorError,
    UnsupportedError,
    WorkdirError,
)
from byteleap.worker.executors.k8s_settings import (
    KubernetesOptions,
    KubernetesSettings,
    ServiceReplicaSpec,
)
from byteleap.worker.executors.kubernetes import KubernetesExecution, KubernetesExecutor
from byteleap.worker.executors.process import ProcessExecutor

__all__ = [
    "AVAILABLE",
    "UNAVAILABLE",
    "ArtifactInfo",
    "BadSpecError",
    "ContainerEngine",
    "ContainerExecution",
    "ContainerExecutor",
    "ContainerOptions",
    "ContainerSettings",
    "Execution",
    "ExecutionResult",
    "ExecutionSpec",
    "ExecutionState",
    "Executor",
    "ExecutorError",
    "InputFile",
    "KubernetesExecution",
    "KubernetesExecutor",
    "KubernetesOptions",
    "KubernetesSettings",
    "LogLine",
    "Mount",
    "ProcessExecutor",
    "ServiceReplicaSpec",
    "StartFailedError",
    "UnavailableExecutorError",
    "UnknownExecutorError",
    "UnsupportedError",
    "WorkdirError",
    "executor_for",
    "parse_spec",
]

AVAILABLE: dict[str, Callable[[], Executor]] = {
    ProcessExecutor.name: ProcessExecutor,
    ContainerExecutor.name: ContainerExecutor,
    KubernetesExecutor.name: KubernetesExecutor,
}

#: Adapters the design names but this build does not have yet, with why.
UNAVAILABLE: dict[str, str] = {
    "vm": "a VM is a lease, not a job executor: see byteleap.worker.vm (VmHost)",
}


def executor_for(name: str) -> Executor:
    """A fresh executor of the adapter called ``name``."""
    if name in AVAILABLE:
        return AVAILABLE[name]()
    if name in UNAVAILABLE:
        raise UnavailableExecutorError(
            f"executor {name!r} is unavailable: {UNAVAILABLE[name]}", executor=name
        )
    raise UnknownExecutorError(
        f"no executor named {name!r}; known: {', '.join(sorted(AVAILABLE | UNAVAILABLE))}",
        executor=name,
    )
