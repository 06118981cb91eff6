"""The SDK's inference-service methods, mixed into `AsyncClient` and (blocking) `Client`.

svc = client.create_service({"name": "echo", "command": ["python", "serve.py"],
                             "autoscale": {"min_replicas": 2, "max_replicas": 4}})
client.invoke(svc.id, "GET", "/hello")          # an httpx.Response from a replica
for chunk in client.invoke_stream(svc.id, "POST", "/generate", json={"stream": True}):
    print(chunk.decode(), end="")               # each chunk as the replica writes it
client.update_service(svc.id, {"env": {"MODEL": "v2"}})   # rolling update
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from byteleap.protocol.service_spec import (
    ServiceLogs,
    ServiceScale,
    ServiceSpec,
    ServiceUpdate,
    ServiceView,
)
from byteleap.sdk.blocking import Loop, iterate

if TYPE_CHECKING:
    from byteleap.sdk.client import AsyncClient

T = TypeVar("T")
_SERVICE_LIST = TypeAdapter(list[ServiceView])


def _service(service_id: str) -> str:
    return f"/services/{quote(service_id, safe='')}"


def _invoke(service_id: str, path: str) -> str:
    return f"{_service(service_id)}/invoke/{path.lstrip('/')}"


def _body(value: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return dict(value)


class _Requests(Protocol):
    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response: ...

    def _stream(self, method: str, path: str, **kwargs: Any) -> AsyncGenerator[bytes, None]: ...


class ServicesApi:
    async def create_service(self: _Requests, spec: ServiceSpec | Mapping[str, Any]) -> ServiceView:
        """Deploy a service; its replicas start in the background."""
        response = await self._request("POST", "/services", json=_body(spec))
        return ServiceView.model_validate_json(response.text)

    async def get_service(self: _Requests, service_id: str) -> ServiceView:
        return ServiceView.model_validate_json(
            (await self._request("GET", _service(service_id))).text
        )

    async def list_services(self: _Requests, limit: int = 100) -> builtins.list[ServiceView]:
        response = await self._request("GET", "/services", params={"limit": limit})
        return _SERVICE_LIST.validate_json(response.text)

    async def scale_service(
        self: _Requests, service_id: str, change: ServiceScale | Mapping[str, Any]
    ) -> ServiceView:
        """New min/max replicas or autoscaling targets."""
        path = f"{_service(service_id)}/scale"
        return ServiceView.model_validate_json(
            (await self._request("POST", path, json=_body(change))).text
        )

    async def update_service(
        self: _Requests, service_id: str, change: ServiceUpdate | Mapping[str, Any]
    ) -> ServiceView:
        """A new revision (image, command, env …); replicas roll over to it."""
        path = f"{_service(service_id)}/update"
        return ServiceView.model_validate_json(
            (await self._request("POST", path, json=_body(change))).text
        )

    async def service_logs(
        self: _Requests, service_id: str, *, after: int = 0, replica: str | None = None
    ) -> ServiceLogs:
        """Its recent replicas' log lines from ``after`` on (one replica's with ``replica``)."""
        params: dict[str, Any] = {"after": after}
        if replica is not None:
            params["replica"] = replica
        response = await self._request("GET", f"{_service(service_id)}/logs", params=params)
        return ServiceLogs.model_validate_json(response.text)

    async def delete_service(self: _Requests, service_id: str) -> ServiceView:
        """Drain and stop every replica; `Conflict` once it is deleted."""
        return ServiceView.model_validate_json(
            (await self._request("DELETE", _service(service_id))).text
        )

    async def invoke(
        self: _Requests, service_id: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        """Send one request to the service (``kwargs`` as for httpx: content, json, params…)."""
        return await self._request(method, _invoke(service_id, path), **kwargs)

    async def invoke_stream(
        self: _Requests, service_id: str, method: str, path: str, **kwargs: Any
    ) -> AsyncGenerator[bytes, None]:
        """As `invoke`, but the answer's body chunk by chunk as the replica writes it (a
        model's tokens, server-sent events), not read whole first."""
        async for chunk in self._stream(method, _invoke(service_id, path), **kwargs):
            yield chunk


class _Blocking(Protocol):
    _client: AsyncClient
    _loop: Loop


class SyncServicesApi:
    """The blocking twins, one line each."""

    def create_service(self: _Blocking, spec: ServiceSpec | Mapping[str, Any]) -> ServiceView:
        return self._loop.run(self._client.create_service(spec))

    def get_service(self: _Blocking, service_id: str) -> ServiceView:
        return self._loop.run(self._client.get_service(service_id))

    def list_services(self: _Blocking, limit: int = 100) -> builtins.list[ServiceView]:
        return self._loop.run(self._client.list_services(limit))

    def scale_service(
        self: _Blocking, service_id: str, change: ServiceScale | Mapping[str, Any]
    ) -> ServiceView:
        return self._loop.run(self._client.scale_service(service_id, change))

    def update_service(
        self: _Blocking, service_id: str, change: ServiceUpdate | Mapping[str, Any]
    ) -> ServiceView:
        return self._loop.run(self._client.update_service(service_id, change))

    def delete_service(self: _Blocking, service_id: str) -> ServiceView:
        return self._loop.run(self._client.delete_service(service_id))

    def invoke(
        self: _Blocking, service_id: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        return self._loop.run(self._client.invoke(service_id, method, path, **kwargs))

    def service_logs(
        self: _Blocking, service_id: str, *, after: int = 0, replica: str | None = None
    ) -> ServiceLogs:
        return self._loop.run(self._client.service_logs(service_id, after=after, replica=replica))

    def invoke_stream(
        self: _Blocking, service_id: str, method: str, path: str, **kwargs: Any
    ) -> Iterator[bytes]:
        return iterate(self._loop, self._client.invoke_stream(service_id, method, path, **kwargs))
