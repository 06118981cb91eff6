"""Errors of the executors package.

ByteleapError
 └── ExecutorError               reason "executor"
      ├── BadSpecError           reason "bad_spec": the spec is invalid; nothing was started
      ├── UnsupportedError       reason "unsupported": the executor cannot do what is asked
      ├── WorkdirError           reason "bad_workdir": the work dir is not a fresh, empty dir
      │    └── CorruptInputError  a cached URL input no longer matches its digest
      ├── StartFailedError       reason "start_failed": the program could not be started
      ├── UnknownExecutorError   reason "unknown_executor": no executor has that name
      └── UnavailableExecutorError reason "unavailable": a known adapter not usable yet
"""

from __future__ import annotations

from byteleap.errors import ByteleapError


class ExecutorError(ByteleapError):
    """Base of every error raised by ``byteleap.worker.executors``."""

    reason = "executor"


class BadSpecError(ExecutorError):
    reason = "bad_spec"


class UnsupportedError(ExecutorError):
    reason = "unsupported"


class WorkdirError(ExecutorError):
    reason = "bad_workdir"


class CorruptInputError(WorkdirError):
    """This worker's cached copy of an input changed: its fault, so another worker may run the
    job (``context["sha256"]`` names the digest to drop from the cache)."""


class StartFailedError(ExecutorError):
    reason = "start_failed"


class UnknownExecutorError(ExecutorError):
    reason = "unknown_executor"


class UnavailableExecutorError(ExecutorError):
    reason = "unavailable"
