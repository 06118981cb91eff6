"""What a worker runs (``ExecutionSpec``) and how it ended (``ExecutionResult``): the wire half
of the executor port, shared by the gateway, the miner, the worker and the SDK.

The executors (``byteleap.worker.executors``) validate a spec again at their boundary
(``check_spec``), so a spec built with ``model_construct`` or from an old message cannot slip
past.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import to_json

#: A week: longer work is a lease, not a job.
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_OUTPUT_BYTES = 64 << 20
MAX_INPUT_BYTES = 256 << 20
DEFAULT_OUTPUT_BYTES = 1 << 20

#: A customer's spec travels whole to its miner in one signed HTTP request, and a miner reads
#: at most ``net.messages.MAX_HTTP_BODY_BYTES`` (1 MiB) of one. These bounds (their JSON text,
#: escapes included) keep a spec well inside it, so a spec every miner would refuse is refused
#: at submit instead; a test ties them to the miner's limit.
MAX_ARGV_JSON_BYTES = 128 << 10
MAX_ENV_JSON_BYTES = 128 << 10
MAX_INLINE_INPUTS_JSON_BYTES = 512 << 10
#: The image references the worker's container and Kubernetes executors take (a mirror of
#: their ``_IMAGE``: a leading '-' would be read by the engine as a flag).
IMAGE_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
MAX_INPUT_URL_CHARS = 4096
#: The artifacts dir a spec gets unless it names one (an input may not take its place).
DEFAULT_ARTIFACTS_DIR = "artifacts"

#: Features a spec can ask for that an executor may declare in its ``unsupported`` table.
FEATURE_NETWORK_ISOLATION = "network_isolation"
FEATURE_URL_INPUTS = "url_inputs"
FEATURE_CHECKPOINTS = "checkpoints"

Stream = Literal["stdout", "stderr"]
KilledBy = Literal["timeout", "cancel", "memory"]


def safe_relative_path(path: str) -> str:
    """``path`` normalised as a relative POSIX path that stays inside its base directory."""
    if not path or "\x00" in path or "\\" in path:
        raise ValueError(f"{path!r} is not a usable relative path")
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ValueError(f"{path!r} must be relative and stay inside the work dir")
    return pure.as_posix()


def check_checkpoint_dir(path: str, *, artifacts_dir: str, inputs: list[str]) -> str:
    """``path`` normalised: inside the work dir, neither the artifacts dir nor in or around
    it, and no input at it or above it (an input inside it is a restored checkpoint file)."""
    checkpoint = PurePosixPath(safe_relative_path(path))
    artifacts = PurePosixPath(safe_relative_path(artifacts_dir))
    if checkpoint == artifacts or artifacts in checkpoint.parents:
        raise ValueError(f"checkpoint dir {path!r} overlaps the artifacts dir {artifacts_dir!r}")
    if checkpoint in artifacts.parents:
        raise ValueError(f"checkpoint dir {path!r} contains the artifacts dir {artifacts_dir!r}")
    for name in inputs:
        input_path = PurePosixPath(name)
        if input_path == checkpoint or input_path in checkpoint.parents:
            raise ValueError(f"checkpoint dir {path!r} collides with input {name!r}")
    return checkpoint.as_posix()


def inputs_inside(path: str, inputs: list[str]) -> list[str]:
    """The inputs that lie inside checkpoint dir ``path``."""
    base = PurePosixPath(path)
    return [name for name in inputs if base in PurePosixPath(name).parents]


def check_argv(command: list[str]) -> list[str]:
    """An argv the executors can run: a program name, no NUL byte (a C string ends there)."""
    if not command or not command[0]:
        raise ValueError("the program name is empty")
    if any("\x00" in arg for arg in command):
        raise ValueError("an argument contains a NUL byte")
    return command


def check_env(env: dict[str, str], *, names: bool = False) -> dict[str, str]:
    """Variables ``execve`` can pass on: no '=' or NUL in a name, no NUL in a value;
    ``names``: each name a shell could set too (``ENV_NAME``)."""
    for key, value in env.items():
        if not key or "=" in key or "\x00" in key or "\x00" in value:
            raise ValueError(f"environment variable {key[:100]!r} is not valid")
        if names and not ENV_NAME.fullmatch(key):
            raise ValueError(f"environment variable {key[:100]!r} is not a valid name")
    return env


def check_image(image: str | None) -> str | None:
    if image is not None and not IMAGE_REFERENCE.fullmatch(image):
        raise ValueError(f"{image[:100]!r} is not an image reference")
    return image


def check_wire_size(value: object, limit: int, what: str) -> None:
    """``value``'s JSON text is at most ``limit`` bytes."""
    size = len(to_json(value))
    if size > limit:
        raise ValueError(f"{what} take {size} bytes as JSON, at most {limit}")


def _unset(value: object) -> bool:
    return value is None


class InputFile(BaseModel):
    """One file written into the work dir before the program starts: inline (``content``) or
    fetched by the worker (``url``, checked against ``sha256`` and, if given, ``size``).

    A URL input travels as its few fields, not its bytes: large data stays out of the spec's
    size budget, and a worker that already holds that digest fetches nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Unset fields are left out of the JSON: an inline input serialises as it always did, so
    # a worker or miner of an older release still reads it.
    content: str | None = Field(
        default=None, exclude_if=_unset, description="the file's text (or base64); or url"
    )
    encoding: Literal["utf-8", "base64"] = "utf-8"
    url: str | None = Field(
        default=None,
        max_length=MAX_INPUT_URL_CHARS,
        exclude_if=_unset,
        description="http(s) URL the worker fetches the file from; or content",
    )
    sha256: str | None = Field(
        default=None, exclude_if=_unset, description="with url: the file's digest, 64 hex digits"
    )
    size: int | None = Field(
        default=None, ge=0, exclude_if=_unset, description="with url: the file's size in bytes"
    )
    executable: bool = False

    @classmethod
    def from_bytes(cls, data: bytes, *, executable: bool = False) -> InputFile:
        return cls(
            content=base64.b64encode(data).decode(), encoding="base64", executable=executable
        )

    @classmethod
    def from_url(
        cls, url: str, sha256: str, *, size: int | None = None, executable: bool = False
    ) -> InputFile:
        return cls(url=url, sha256=sha256, size=size, executable=executable)

    @field_validator("url")
    @classmethod
    def _fetchable(cls, url: str | None) -> str | None:
        return None if url is None else check_input_url(url)

    @field_validator("sha256")
    @classmethod
    def _digest(cls, digest: str | None) -> str | None:
        if digest is not None and not SHA256_HEX.fullmatch(digest):
            raise ValueError("sha256 must be 64 hex digits")
        return None if digest is None else digest.lower()

    @model_validator(mode="after")
    def _one_source(self) -> InputFile:
        if (self.content is None) == (self.url is None):
            raise ValueError("an input has exactly one of content or url")
        if self.url is None:
            if self.sha256 is not None or self.size is not None:
                raise ValueError("sha256 and size belong to a url input")
            if self.encoding == "base64":
                try:
                    base64.b64decode(self.content or "", validate=True)
                except binascii.Error as exc:
                    raise ValueError(f"content is not valid base64: {exc}") from exc
            return self
        if self.sha256 is None:
            raise ValueError("a url input needs its sha256 (the worker checks what it fetched)")
        if self.encoding != "utf-8":
            raise ValueError("encoding belongs to a content input")
        return self

    @property
    def is_url(self) -> bool:
        return self.url is not None

    def data(self) -> bytes:
        """An inline input's bytes (a URL input's are the worker's to fetch)."""
        if self.content is None:
            raise ValueError("a url input has no inline content")
        if self.encoding == "base64":
            return base64.b64decode(self.content, validate=True)
        return self.content.encode()


def check_input_url(url: str) -> str:
    """An absolute http(s) URL with a host, no whitespace or control characters."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("url contains whitespace or a control character")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"url must be http or https, not {parts.scheme or 'relative'!r}")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"url is malformed: {exc}") from exc
    if not host:
        raise ValueError("url has no host")
    return url


def check_inputs(inputs: dict[str, InputFile]) -> dict[str, InputFile]:
    """Inputs with their paths normalised: inside the work dir, no two on one file, none
    under another input's file, within ``MAX_INPUT_BYTES``."""
    normalised = {safe_relative_path(path): file for path, file in inputs.items()}
    if len(normalised) != len(inputs):
        raise ValueError("two inputs name the same file")
    for path in normalised:
        for parent in PurePosixPath(path).parents:
            if parent.as_posix() in normalised:
                raise ValueError(f"input {path!r} lies under input file {parent.as_posix()!r}")
    # URL inputs are bounded by the worker's fetch limits, not by the spec's inline budget.
    if sum(len(f.data()) for f in normalised.values() if not f.is_url) > MAX_INPUT_BYTES:
        raise ValueError(f"inline inputs exceed {MAX_INPUT_BYTES} bytes")
    return normalised


class ExecutionSpec(BaseModel):
    """What to run. ``command`` is an argv list: no shell ever parses it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    inputs: dict[str, InputFile] = Field(default_factory=dict)
    timeout_s: float = Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    cpu_time_limit_s: int | None = Field(default=None, ge=1)  # CPU-seconds, not cores
    memory_limit_mib: int | None = Field(default=None, ge=1)
    artifacts_dir: str = DEFAULT_ARTIFACTS_DIR
    max_output_bytes: int = Field(default=DEFAULT_OUTPUT_BYTES, ge=1, le=MAX_OUTPUT_BYTES)
    gpus: list[int] = Field(default_factory=list)  # device indices the program may see
    network: Literal["host", "none"] = "host"
    # Sent to the gateway whenever it changes; a retried attempt finds it restored (as
    # inputs inside it). Left out of the JSON when unset: older workers still read a spec.
    checkpoint_dir: str | None = Field(default=None, exclude_if=_unset)

    @field_validator("command")
    @classmethod
    def _argv(cls, command: list[str]) -> list[str]:
        return check_argv(command)

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        return check_env(env)

    @field_validator("inputs", mode="before")
    @classmethod
    def _plain_text_inputs(cls, inputs: Any) -> Any:
        # A bare string is the common case (a script, a config): accept it as utf-8 text.
        if isinstance(inputs, Mapping):
            return {k: {"content": v} if isinstance(v, str) else v for k, v in inputs.items()}
        return inputs

    @field_validator("inputs")
    @classmethod
    def _input_paths(cls, inputs: dict[str, InputFile]) -> dict[str, InputFile]:
        return check_inputs(inputs)

    @field_validator("artifacts_dir")
    @classmethod
    def _artifacts_dir(cls, path: str) -> str:
        return safe_relative_path(path)

    @field_validator("checkpoint_dir")
    @classmethod
    def _checkpoint_dir(cls, path: str | None) -> str | None:
        return None if path is None else safe_relative_path(path)

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, gpus: list[int]) -> list[int]:
        if any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
            raise ValueError("gpu indices must be distinct and non-negative")
        return gpus

    @model_validator(mode="after")
    def _artifacts_dir_is_free(self) -> ExecutionSpec:
        artifacts = PurePosixPath(self.artifacts_dir)
        for path in self.inputs:
            if PurePosixPath(path) == artifacts or PurePosixPath(path) in artifacts.parents:
                raise ValueError(
                    f"artifacts_dir {self.artifacts_dir!r} collides with input {path!r}"
                )
        if self.checkpoint_dir is not None:
            check_checkpoint_dir(
                self.checkpoint_dir, artifacts_dir=self.artifacts_dir, inputs=list(self.inputs)
            )
        return self

    def requested_features(self) -> set[str]:
        features = {FEATURE_NETWORK_ISOLATION} if self.network == "none" else set()
        if any(file.is_url for file in self.inputs.values()):
            features.add(FEATURE_URL_INPUTS)
        if self.checkpoint_dir is not None:
            features.add(FEATURE_CHECKPOINTS)
        return features


class LogLine(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream: Stream
    line: str  # without its trailing newline; a very long line arrives in pieces
    ts: datetime


class ArtifactInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    path: str  # relative to the artifacts dir, POSIX separators
    size: int = Field(ge=0)
    sha256: str


class ExecutionState(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class ExecutionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    exit_code: int  # negative: killed by that signal number (-9 is SIGKILL)
    state: ExecutionState
    stdout_tail: str
    stderr_tail: str
    stdout_dropped_bytes: int = Field(ge=0)
    stderr_dropped_bytes: int = Field(ge=0)
    started_at: datetime
    finished_at: datetime
    artifacts: list[ArtifactInfo]
    killed_by: KilledBy | None = None
    detail: str = ""  # a human explanation of an abnormal end
