"""Exec sessions on a lease: a command (or a shell) on the leased worker, over the gateway's
``/v1/leases/{id}/exec`` WebSocket (frames: ``byteleap.protocol.exec_frames``)."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from urllib.parse import quote

import websockets

from byteleap.protocol.exec_frames import (
    MAX_EXEC_DATA,
    MAX_EXEC_FRAME,
    ExecExited,
    ExecFrameError,
    ExecOutput,
    ExecResize,
    ExecStart,
    ExecStdin,
    ExecStop,
    parse_exec_frame,
)
from byteleap.sdk.errors import BadResponse, GatewayUnreachable, error_for_status
from byteleap.sdk.gateway_address import gateway_base_url, why_unreachable


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None: the session ended without one (``reason`` says why)
    stdout: bytes
    stderr: bytes
    reason: str = ""


class ExecSession:
    """One open session: `send` input, `recv` output frames until an `ExecExited`."""

    def __init__(self, socket: websockets.ClientConnection) -> None:
        self._socket = socket

    async def send(self, data: bytes = b"", *, eof: bool = False) -> None:
        for start in range(0, max(len(data), 1), MAX_EXEC_DATA):
            last = start + MAX_EXEC_DATA >= len(data)
            chunk = data[start : start + MAX_EXEC_DATA]
            await self._socket.send(ExecStdin(data=chunk, eof=eof and last).model_dump_json())

    async def recv(self) -> ExecOutput | ExecExited:
        try:
            frame = parse_exec_frame(await self._socket.recv())
        except websockets.ConnectionClosed:
            return ExecExited(reason="the gateway closed the session")
        except ExecFrameError as exc:
            raise BadResponse(f"unexpected frame from the gateway: {exc}") from exc
        if not isinstance(frame, ExecOutput | ExecExited):
            raise BadResponse(f"unexpected frame from the gateway: {frame.type}")
        return frame

    async def resize(self, rows: int, cols: int) -> None:
        """The terminal's new size (a session opened with ``tty``): its program sees it."""
        await self._socket.send(ExecResize(rows=rows, cols=cols).model_dump_json())

    async def stop(self) -> None:
        await self._socket.send(ExecStop().model_dump_json())

    async def close(self) -> None:
        await self._socket.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def collect(self) -> ExecResult:
        """Read until the end: everything the program wrote, and its exit code."""
        out: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        while True:
            frame = await self.recv()
            if isinstance(frame, ExecExited):
                return ExecResult(frame.exit_code, bytes(out["stdout"]), bytes(out["stderr"]),
                                  frame.reason)  # fmt: skip
            out[frame.stream] += frame.data


async def open_exec(
    base_url: str,
    api_key: str,
    lease_id: str,
    command: list[str] | None = None,
    *,
    tty: bool = False,
    env: dict[str, str] | None = None,
    size: tuple[int, int] | None = None,
    open_timeout_s: float = 30.0,
    tls: ssl.SSLContext | None = None,
    ssh: bool = False,
) -> ExecSession:
    """Start ``command`` (none: a shell) on the lease's worker and return its session
    (over ``wss://`` with ``tls``, the client's CA bundle, when the gateway is ``https://``).

    With ``ssh`` (and no command), the session carries one SSH connection to a server the
    worker runs for it: send an SSH client's bytes, and its stdout is the server's."""
    url = (
        gateway_base_url(base_url).replace("http", "ws", 1)
        + f"/v1/leases/{quote(lease_id, safe='')}/exec"
    )
    # websockets' own default context for wss:// unless the client was given a CA bundle.
    trust = {"ssl": tls} if tls is not None and url.startswith("wss://") else {}
    try:
        socket = await websockets.connect(
            url,
            additional_headers={"Authorization": f"Bearer {api_key}"},
            max_size=MAX_EXEC_FRAME,
            open_timeout=open_timeout_s,
            **trust,
        )
    except websockets.InvalidStatus as exc:
        response = exc.response
        try:
            body = json.loads(response.body or b"")
            reason, detail = str(body["error"]), str(body.get("detail", ""))
        except (ValueError, KeyError, TypeError):
            reason, detail = "http_error", ""
        raise error_for_status(response.status_code, reason, detail, None) from None
    except (OSError, TimeoutError, websockets.WebSocketException) as exc:
        raise GatewayUnreachable(
            f"cannot reach the gateway's exec session at {url}: {why_unreachable(exc)}"
        ) from exc
    rows, cols = size if size is not None else (None, None)
    start = ExecStart(command=command, tty=tty, env=env or {}, rows=rows, cols=cols, ssh=ssh)
    await socket.send(start.model_dump_json())
    return ExecSession(socket)
