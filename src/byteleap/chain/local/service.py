"""`byteleap chain serve`: the devnet chain as an HTTP service (FastAPI).

Routes (reads are open, writes are btauth/1-signed by the hotkey they act for):

    GET  /v1/info                          ChainInfo (chain id, block, params)
    GET  /v1/subnets/{netuid}/metagraph    Metagraph
    POST /v1/subnets/{netuid}/register     {"coldkey"}                   -> {"uid"}
    POST /v1/subnets/{netuid}/stake        {"amount"}   (devnet faucet)  -> {"stake"}
    POST /v1/subnets/{netuid}/axon         {"ip", "port", "certificate"}
    POST /v1/subnets/{netuid}/weights      {"uids", "weights", "version_key"}

Errors are ``{"error": {"reason", "message"}}``: 401 unsigned/forged/replayed/stale,
422 malformed body, 429 weights rate limit, 403/404/409/400 other refusals. A refused
write changes nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from byteleap.chain.local.auth import ALLOWED_SKEW_S, SqliteNonceStore, WriteVerifier
from byteleap.chain.local.messages import (
    AxonRequest,
    ChainInfo,
    ErrorBody,
    ErrorResponse,
    RegisterRequest,
    RegisterResponse,
    StakeRequest,
    StakeResponse,
    WeightsRequest,
)
from byteleap.chain.local.state import ChainParams, Ledger, connect
from byteleap.chain.port import ChainAuthError, ChainError, ChainRejected, Metagraph
from byteleap.config import ChainServiceSettings, describe_validation_error

B = TypeVar("B", bound=BaseModel)

# ChainRejected reason -> HTTP status; any other rejection is a 400.
REJECTION_STATUS: dict[str, int] = {
    "malformed": 422,
    "rate_limited": 429,
    "no_validator_permit": 403,
    "not_registered": 404,
    "unknown_subnet": 404,
    "coldkey_mismatch": 409,
    "subnet_full": 409,
    "unknown_uid": 400,
}


class Ok(BaseModel):
    ok: bool = True


def params_from(settings: ChainServiceSettings) -> ChainParams:
    return ChainParams(
        netuid=settings.netuid,
        block_time_s=settings.block_time_s,
        tempo=settings.tempo,
        max_uids=settings.max_uids,
        immunity_period=settings.immunity_period,
        max_validators=settings.max_validators,
        weights_rate_limit=settings.weights_rate_limit,
        kappa=settings.kappa,
    )


def status_of(exc: ChainError) -> int:
    if isinstance(exc, ChainAuthError):
        return 401
    if isinstance(exc, ChainRejected):
        return REJECTION_STATUS.get(exc.reason, 400)
    return 500


def _error(status: int, reason: str, message: str) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(reason=reason, message=message))
    return JSONResponse(body.model_dump(), status_code=status)


@dataclass(frozen=True)
class ChainService:
    """What the handlers need, kept on ``app.state.chain``."""

    netuid: int
    ledger: Ledger
    verifier: WriteVerifier

    def check_subnet(self, netuid: int) -> None:
        if netuid != self.netuid:
            raise ChainRejected(f"no subnet {netuid} on this chain", reason="unknown_subnet")

    async def signed(self, request: Request, netuid: int, model: type[B]) -> tuple[str, B]:
        """Check the subnet, the signature, then parse the body; returns (hotkey, body)."""
        self.check_subnet(netuid)
        raw = await request.body()
        query = f"?{request.url.query}" if request.url.query else ""
        hotkey = self.verifier.verify(
            request.headers, raw, method=request.method, path=request.url.path + query
        )
        try:
            return hotkey, model.model_validate_json(raw)
        except ValidationError as exc:
            raise ChainRejected(describe_validation_error(exc), reason="malformed") from None


def _chain(request: Request) -> ChainService:
    service: ChainService = request.app.state.chain
    return service


router = APIRouter(prefix="/v1")


@router.get("/info")
def info(request: Request) -> ChainInfo:
    return _chain(request).ledger.info()


@router.get("/subnets/{netuid}/metagraph")
def metagraph(netuid: int, request: Request) -> Metagraph:
    chain = _chain(request)
    chain.check_subnet(netuid)
    return chain.ledger.metagraph()


@router.post("/subnets/{netuid}/register")
async def register(netuid: int, request: Request) -> RegisterResponse:
    chain = _chain(request)
    hotkey, body = await chain.signed(request, netuid, RegisterRequest)
    return RegisterResponse(uid=chain.ledger.register(hotkey, body.coldkey))


@router.post("/subnets/{netuid}/stake")
async def stake(netuid: int, request: Request) -> StakeResponse:
    chain = _chain(request)
    hotkey, body = await chain.signed(request, netuid, StakeRequest)
    return StakeResponse(stake=chain.ledger.add_stake(hotkey, body.amount))


@router.post("/subnets/{netuid}/axon")
async def axon(netuid: int, request: Request) -> Ok:
    chain = _chain(request)
    hotkey, body = await chain.signed(request, netuid, AxonRequest)
    chain.ledger.serve_axon(hotkey, body.ip, body.port, body.certificate)
    return Ok()


@router.post("/subnets/{netuid}/weights")
async def weights(netuid: int, request: Request) -> Ok:
    chain = _chain(request)
    hotkey, body = await chain.signed(request, netuid, WeightsRequest)
    chain.ledger.set_weights(hotkey, body.uids, body.weights, body.version_key)
    return Ok()


async def _chain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChainError)
    return _error(status_of(exc), exc.reason, str(exc))


async def _bad_request(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"])
    return _error(422, "malformed", f"{field}: {first['msg']}")


def create_app(
    settings: ChainServiceSettings, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The chain service over the SQLite file at ``settings.db_path``."""
    ledger = Ledger(connect(settings.db_path), params_from(settings), clock=clock)
    # The nonce store keeps its own connection so auth never waits on the ledger lock.
    nonces = SqliteNonceStore(
        connect(settings.db_path), retention=settings.request_max_age_s + ALLOWED_SKEW_S + 5.0
    )
    verifier = WriteVerifier(ledger.chain_id, nonces, settings.request_max_age_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ledger.close()
        nonces.close()

    app = FastAPI(title="byteleap devnet chain", lifespan=lifespan)
    app.state.chain = ChainService(settings.netuid, ledger, verifier)
    app.add_exception_handler(ChainError, _chain_error)
    app.add_exception_handler(RequestValidationError, _bad_request)
    app.include_router(router)
    return app
