"""What every route of the miner's HTTPS app shares: checking a validator's signed request,
signing the reply for it, parsing a body, and the status each miner error answers with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from bittensor.signing import WalletLike
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from byteleap.errors import ByteleapError
from byteleap.miner.errors import (
    IllegalTransition,
    JobConflict,
    LeaseRefused,
    TooManyBatches,
    UnknownBatch,
    UnknownChallenge,
    UnknownJob,
    UnknownLease,
    UnknownWorker,
    WorkerLost,
    WorkerTimeout,
    WorkerUnavailable,
)
from byteleap.miner.node import MinerNode
from byteleap.net.auth import AuthRejected, RequestVerifier, sign_response
from byteleap.net.messages import MAX_HTTP_BODY_BYTES, MessageError

STATUS: dict[type[ByteleapError], int] = {
    UnknownWorker: 404,
    UnknownChallenge: 404,
    UnknownBatch: 404,
    TooManyBatches: 429,
    UnknownJob: 404,
    UnknownLease: 404,
    LeaseRefused: 409,
    JobConflict: 409,
    WorkerUnavailable: 409,
    IllegalTransition: 409,
    WorkerLost: 410,
    WorkerTimeout: 504,
    MessageError: 422,
}
M = TypeVar("M", bound=BaseModel)


@dataclass
class MinerApp:
    node: MinerNode
    wallet: WalletLike
    verifier: RequestVerifier

    async def authenticate(self, request: Request) -> tuple[str, bytes]:
        body = await request.body()
        if len(body) > MAX_HTTP_BODY_BYTES:
            raise MessageError("request body too large", reason="oversized")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        caller = await self.verifier.verify(request.headers, body, method=request.method, path=path)
        return caller, body

    def reply(self, request: Request, caller: str, model: BaseModel) -> Response:
        body = model.model_dump_json().encode()
        headers = sign_response(
            self.wallet, method=request.method, path=request.url.path, body=body, caller=caller
        )
        return Response(body, media_type="application/json", headers=headers)


def error_response(exc: ByteleapError) -> JSONResponse:
    if isinstance(exc, AuthRejected):
        status = exc.status
    elif isinstance(exc, MessageError) and exc.reason == "oversized":
        status = 413
    else:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=status)


def parse_body(kind: type[M], body: bytes) -> M:
    try:
        return kind.model_validate_json(body)
    except ValueError as exc:
        raise MessageError(f"malformed {kind.__name__}: {str(exc).splitlines()[0]}") from None
