"""Frames of a lease's exec session: a command (or a shell) run in the lease's environment,
its stdin in, its stdout/stderr out, and its exit code.

The same frames travel every leg — customer ⇄ gateway (WebSocket, API key), gateway ⇄ miner
(WebSocket, btauth-signed handshake) and miner ⇄ worker (the worker's link, where
``session`` tells the sessions apart). Each frame is bounded (``MAX_EXEC_DATA`` bytes of
data, sent base64 in JSON); one `TypeAdapter` parses any of them.

On the miner ⇄ worker leg, output is paced: a worker may have at most ``EXEC_WINDOW`` output
frames of a session that the miner has not yet passed on; the miner's `ExecAck` gives the
credit back as the gateway takes them. A slow reader thus slows the program (its pipe fills)
instead of filling the miner's memory or ending the session.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from byteleap.errors import ByteleapError
from byteleap.protocol.ids import HexId

MAX_EXEC_DATA = 64 * 1024
MAX_EXEC_FRAME = 2 * MAX_EXEC_DATA  # the JSON of the largest frame fits
EXEC_WINDOW = 32  # output frames a worker may send ahead of the miner's acknowledgements
SessionId = HexId
ExecData = Annotated[bytes, Field(max_length=MAX_EXEC_DATA)]


class _Frame(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
    )
    v: Literal[1] = 1
    session: SessionId | None = None  # set on the miner ⇄ worker leg only


class ExecStart(_Frame):
    """Run ``command`` (an argv list; none: an interactive shell) in the lease's work dir.

    With ``ssh``, no program: the session's bytes are one SSH connection, which the worker
    serves itself (shell, commands, sftp and scp in the lease's dir; see worker/ssh_access.py).
    The SSH client then asks for its own commands and terminal, so ``ssh`` takes none of
    ``command``, ``tty``, ``rows``, ``cols`` or ``env``."""

    type: Literal["exec_start"] = "exec_start"
    command: list[Annotated[str, Field(max_length=4096)]] | None = Field(
        default=None, min_length=1, max_length=256
    )
    env: dict[str, str] = Field(default_factory=dict, max_length=64)
    tty: bool = False  # one terminal for stdin/stdout/stderr (what a shell wants)
    # The customer's terminal, so full-screen programs and `stty size` see its real size
    # (with ``tty`` only; none: the terminal's default, 0 x 0).
    rows: int | None = Field(default=None, ge=1, le=10_000)
    cols: int | None = Field(default=None, ge=1, le=10_000)
    # Left out when false: a plain session's start still parses at a miner or worker from
    # before this field (frames forbid fields they do not know).
    ssh: bool = Field(default=False, exclude_if=lambda ssh: not ssh)
    lease_id: HexId | None = None  # miner-set

    @model_validator(mode="after")
    def _ssh_stands_alone(self) -> Self:
        asks = self.command is not None or self.tty or self.rows or self.cols or self.env
        if self.ssh and asks:
            raise ValueError("an ssh session takes no command, tty, size or env")
        return self


class ExecStdin(_Frame):
    type: Literal["exec_stdin"] = "exec_stdin"
    data: ExecData = b""
    eof: bool = False  # close the program's stdin after ``data``


class ExecResize(_Frame):
    """The customer's terminal changed size (a ``tty`` session): the worker sets the session's
    terminal to it, and the program gets SIGWINCH, as under a local terminal."""

    type: Literal["exec_resize"] = "exec_resize"
    rows: int = Field(ge=1, le=10_000)
    cols: int = Field(ge=1, le=10_000)


class ExecOutput(_Frame):
    type: Literal["exec_output"] = "exec_output"
    stream: Literal["stdout", "stderr"]
    data: ExecData


class ExecExited(_Frame):
    """The end of a session: the exit code (negative: killed by that signal), or why not."""

    type: Literal["exec_exited"] = "exec_exited"
    exit_code: int | None = None
    reason: str = Field(default="", max_length=500)


class ExecStop(_Frame):
    type: Literal["exec_stop"] = "exec_stop"


class ExecAck(_Frame):
    """The miner passed on ``frames`` more output frames of ``session``: the worker may send
    that many more (miner → worker only; not one of the customer's frames)."""

    type: Literal["exec_ack"] = "exec_ack"
    frames: int = Field(ge=1, le=EXEC_WINDOW)


ExecFrame = Annotated[
    ExecStart | ExecStdin | ExecResize | ExecOutput | ExecExited | ExecStop,
    Field(discriminator="type"),
]
_FRAMES: TypeAdapter[ExecFrame] = TypeAdapter(ExecFrame)


class ExecFrameError(ByteleapError):
    reason = "malformed_frame"


def parse_exec_frame(raw: str | bytes) -> ExecFrame:
    if len(raw) > MAX_EXEC_FRAME:
        raise ExecFrameError(f"frame of {len(raw)} bytes exceeds {MAX_EXEC_FRAME}")
    try:
        return _FRAMES.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ExecFrameError(f"bad frame at {where or '<root>'}: {first['msg']}") from None
