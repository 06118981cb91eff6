"""`LocalChain`: the ChainPort adapter for the devnet chain service, over httpx.

httpx and HTTP errors are translated to the ChainError tree here, once
(:func:`error_for`): transport failures and 502/503/504 → ChainUnavailable,
401 → ChainAuthError, other 4xx → ChainRejected (reason from the service), anything
else → ChainError.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import httpx
from bittensor import http_auth
from pydantic import BaseModel, ValidationError

from byteleap.chain.local.messages import (
    AxonRequest,
    ChainInfo,
    RegisterRequest,
    RegisterResponse,
    StakeRequest,
    StakeResponse,
    WeightsRequest,
)
from byteleap.chain.port import (
    ChainAuthError,
    ChainError,
    ChainRejected,
    ChainUnavailable,
    Metagraph,
)

if TYPE_CHECKING:
    from bittensor import Wallet

M = TypeVar("M", bound=BaseModel)

_UNAVAILABLE_STATUS = frozenset({502, 503, 504})


def _server_error(response: httpx.Response) -> tuple[str, str]:
    """(reason, message) from the service's error body, tolerating any other body."""
    try:
        error = response.json()["error"]
        return str(error["reason"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return "http_error", f"HTTP {response.status_code}: {response.text[:200]}"


def error_for(response: httpx.Response) -> ChainError:
    """The ChainError a non-2xx response of the chain service stands for."""
    reason, message = _server_error(response)
    status = response.status_code
    if status == 401:
        return ChainAuthError(message, detail=reason, status=status)
    if status in _UNAVAILABLE_STATUS:
        return ChainUnavailable(message, status=status)
    if 400 <= status < 500:
        return ChainRejected(message, reason=reason, status=status)
    return ChainError(message, status=status)


class LocalChain:
    """ChainPort over `byteleap chain serve`; writes are btauth/1-signed by the hotkey."""

    name: ClassVar[str] = "local"
    # The devnet chain implements the whole port.
    unsupported: ClassVar[dict[str, str]] = {}

    def __init__(self, url: str, *, netuid: int = 1, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.netuid = netuid
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s)
        self._chain_id: str | None = None

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as exc:
            raise ChainUnavailable(
                f"chain at {self.url} unreachable: {exc!r}", url=self.url
            ) from exc
        if response.is_success:
            return response
        raise error_for(response)

    async def _get(self, path: str, model: type[M]) -> M:
        response = await self._send(self._http.build_request("GET", path))
        return self._parse(response, model)

    async def _post(self, wallet: Wallet, path: str, body: BaseModel, model: type[M]) -> M:
        raw = body.model_dump_json().encode()
        headers = http_auth.sign(
            wallet, method="POST", path=path, body=raw, receiver_ss58=await self.chain_id()
        )
        headers["Content-Type"] = "application/json"
        request = self._http.build_request("POST", path, content=raw, headers=headers)
        return self._parse(await self._send(request), model)

    @staticmethod
    def _parse(response: httpx.Response, model: type[M]) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ChainError(
                f"unexpected response from chain service: {exc.errors()[0]['msg']}",
                reason="bad_response",
            ) from None

    def _subnet(self, route: str) -> str:
        return f"/v1/subnets/{self.netuid}/{route}"

    async def info(self) -> ChainInfo:
        info = await self._get("/v1/info", ChainInfo)
        self._chain_id = info.chain_id
        return info

    async def chain_id(self) -> str:
        """The identity writes are bound to (fetched once)."""
        if self._chain_id is None:
            await self.info()
        assert self._chain_id is not None
        return self._chain_id

    async def metagraph(self) -> Metagraph:
        return await self._get(self._subnet("metagraph"), Metagraph)

    async def current_block(self) -> int:
        return (await self.info()).block

    async def tempo(self) -> int:
        return (await self.info()).tempo

    async def register(self, wallet: Wallet) -> int:
        body = _body(RegisterRequest, coldkey=wallet.coldkeypub.ss58_address)
        return (await self._post(wallet, self._subnet("register"), body, RegisterResponse)).uid

    async def serve_axon(
        self, wallet: Wallet, ip: str, port: int, certificate: bytes | None = None
    ) -> None:
        cert = certificate.hex() if certificate is not None else None
        body = _body(AxonRequest, ip=ip, port=port, certificate=cert)
        await self._post(wallet, self._subnet("axon"), body, _Ok)

    async def set_weights(
        self, wallet: Wallet, uids: list[int], weights: list[float], version_key: int
    ) -> None:
        body = _body(WeightsRequest, uids=uids, weights=weights, version_key=version_key)
        await self._post(wallet, self._subnet("weights"), body, _Ok)

    async def add_stake(self, wallet: Wallet, amount: float) -> float:
        """Devnet only: add ``amount`` stake to the wallet's hotkey; returns its total."""
        body = _body(StakeRequest, amount=amount)
        return (await self._post(wallet, self._subnet("stake"), body, StakeResponse)).stake

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> LocalChain:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()


class _Ok(BaseModel):
    ok: bool


def _body(model: type[M], **fields: Any) -> M:
    """A request body, refused here (as the service would) when malformed."""
    try:
        return model(**fields)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"]
        raise ChainRejected(f"invalid {model.__name__}: {message}", reason="malformed") from None
