"""The executor port: the shape every adapter has (``Executor`` starting an ``Execution``).

A spec is validated twice: when it is parsed (``parse_spec``) and again by ``check_spec`` at
the executor boundary, so a spec built with ``model_construct`` or from an old message cannot
slip past. Both raise ``BadSpecError`` before anything touches the disk. What a spec and a
result are is the wire contract's (``byteleap.protocol.execution``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import ValidationError

from byteleap.protocol.execution import ExecutionResult, ExecutionSpec, LogLine
from byteleap.worker.executors.errors import BadSpecError, UnsupportedError


def parse_spec(data: Mapping[str, Any]) -> ExecutionSpec:
    """Validate ``data`` into a spec, raising ``BadSpecError`` instead of pydantic's error."""
    try:
        return ExecutionSpec.model_validate(data)
    except ValidationError as exc:
        raise BadSpecError(f"invalid execution spec: {_summary(exc)}", errors=exc.errors()) from exc


def _summary(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors()
    )


def check_spec(spec: ExecutionSpec, unsupported: Mapping[str, str]) -> ExecutionSpec:
    """Re-validate ``spec`` and refuse features the executor declared unsupported."""
    checked = parse_spec(spec.model_dump())
    for feature in sorted(checked.requested_features()):
        if feature in unsupported:
            raise UnsupportedError(
                f"this executor cannot provide {feature}: {unsupported[feature]}", feature=feature
            )
    return checked


class Execution(Protocol):
    """One running program. ``wait`` and ``cancel`` may be called any number of times."""

    @property
    def pid(self) -> int: ...

    def logs(self) -> AsyncIterator[LogLine]:
        """Lines kept so far, then live lines until the program ends."""
        ...

    async def wait(self) -> ExecutionResult: ...

    async def cancel(self) -> ExecutionResult:
        """Stop the program and everything it started; return once it is gone."""
        ...


class Executor(Protocol):
    name: ClassVar[str]
    #: feature → why this executor cannot provide it
    unsupported: ClassVar[dict[str, str]]

    async def start(self, spec: ExecutionSpec, workdir: Path) -> Execution: ...
