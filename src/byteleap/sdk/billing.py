"""The SDK's money methods, mixed into `AsyncClient` and (blocking) `Client`.

    client.balance().available                     # what new work may use
    client.usage(since=time.time() - 7 * 86400)    # charges per item and per UTC day
    client.prices().gpus                           # the price list and what is on offer
    client.estimate({"command": ["train"], "resources": {"gpu_count": 1}, "timeout_s": 600})

Every answer names its ``currency``; ``byteleap.protocol.billing.format_amount`` writes an
amount for a person.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx

from byteleap.protocol.api import JobSpec
from byteleap.protocol.billing import Balance, JobEstimate, Prices, Usage

if TYPE_CHECKING:
    from byteleap.sdk.client import AsyncClient

T = TypeVar("T")


class _Requests(Protocol):
    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response: ...


class BillingApi:
    async def balance(self: _Requests) -> Balance:
        """The balance, what running work holds of it, and what new work may use."""
        return Balance.model_validate_json((await self._request("GET", "/balance")).text)

    async def usage(
        self: _Requests, since: float | None = None, until: float | None = None, limit: int = 100
    ) -> Usage:
        """Charges and credits in ``[since, until)`` (epoch seconds; the gateway's default:
        the last 30 days), per item (at most ``limit``) and per UTC day."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        if until is not None:
            params["until"] = until
        return Usage.model_validate_json((await self._request("GET", "/usage", params=params)).text)

    async def prices(self: _Requests) -> Prices:
        """The price per GPU model and per CPU core, and the workers on offer for each."""
        return Prices.model_validate_json((await self._request("GET", "/prices")).text)

    async def estimate(self: _Requests, spec: JobSpec | Mapping[str, Any]) -> JobEstimate:
        """A dry run of `submit`: what it would hold and the workers that fit now; nothing
        is created. A dict goes to the gateway as-is, as in `submit`."""
        body = spec.model_dump(mode="json") if isinstance(spec, JobSpec) else dict(spec)
        response = await self._request("POST", "/jobs/estimate", json=body)
        return JobEstimate.model_validate_json(response.text)


class _Loop(Protocol):
    def run(self, coro: Coroutine[Any, Any, T]) -> T: ...


class _Blocking(Protocol):
    _client: AsyncClient
    _loop: _Loop


class SyncBillingApi:
    """The blocking twins, one line each."""

    def balance(self: _Blocking) -> Balance:
        return self._loop.run(self._client.balance())

    def usage(
        self: _Blocking, since: float | None = None, until: float | None = None, limit: int = 100
    ) -> Usage:
        return self._loop.run(self._client.usage(since, until, limit))

    def prices(self: _Blocking) -> Prices:
        return self._loop.run(self._client.prices())

    def estimate(self: _Blocking, spec: JobSpec | Mapping[str, Any]) -> JobEstimate:
        return self._loop.run(self._client.estimate(spec))
