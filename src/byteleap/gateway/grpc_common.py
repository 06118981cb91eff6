"""What the gateway's gRPC services share: the generated code, the key check that runs before
a call's request is read, list limits, spec parsing, and the mapping of errors to status codes
and trailers."""

from __future__ import annotations

import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeAlias, TypeVar

import grpc
from pydantic import BaseModel, ValidationError

from byteleap.gateway import protogen
from byteleap.gateway.errors import CloudError, InvalidSpec, Unauthorized
from byteleap.gateway.port import Tenant

try:
    from byteleap.gateway._pb import gateway_pb2 as pb
    from byteleap.gateway._pb import gateway_pb2_grpc as pb_grpc
except ModuleNotFoundError as exc:  # a checkout where the build step has not run yet
    if not (exc.name or "").startswith("byteleap.gateway._pb"):
        raise
    raise ImportError(
        f"the gateway's gRPC code is not generated: run `{protogen.COMMAND}` (`make venv` does it)"
    ) from exc

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "Context",
    "KeyFirst",
    "abort",
    "api_key",
    "call_tenant",
    "limit",
    "parse_spec",
    "pb",
    "pb_grpc",
    "streaming",
    "unary",
]

log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
M = TypeVar("M", bound=BaseModel)
Context: TypeAlias = grpc.aio.ServicerContext


def parse_spec(model: type[M], raw: str | dict[str, Any], field: str = "spec_json") -> M:
    """``raw`` (JSON text or a dict) validated by ``model``; `InvalidSpec` naming the first bad
    field (``field`` itself when the text is not a JSON object at all)."""
    try:
        return model.model_validate_json(raw) if isinstance(raw, str) else model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        loc = [] if errors[0]["type"] == "json_invalid" else errors[0]["loc"]
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or field}: {e['msg']}" for e in errors)
        raise InvalidSpec(detail, field=".".join(map(str, loc)) or field) from exc


async def abort(context: Context, exc: Exception) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # already aborted, by a handler that knew better
    if isinstance(exc, CloudError):
        trailers = [("reason", exc.reason)]
        if isinstance(exc, InvalidSpec):
            trailers.append(("field", exc.field))
        code = getattr(grpc.StatusCode, exc.grpc_code)
        await context.abort(code, str(exc), tuple(trailers))  # grpc wants a tuple, not a list
    log.error("unhandled error in a gRPC call", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error", (("reason", "internal"),))
    raise AssertionError("context.abort returned")  # it raises; this keeps NoReturn honest


Unary = Callable[[Any, Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Any, Context], AsyncIterator[Any]]


def unary(method: Unary) -> Unary:
    @functools.wraps(method)
    async def handle(self: Any, request: Any, context: Context) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await abort(context, exc)

    return handle


def streaming(method: Streaming) -> Streaming:
    @functools.wraps(method)
    async def handle(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for message in method(self, request, context):
                yield message
        except Exception as exc:
            await abort(context, exc)

    return handle


def limit(requested: int) -> int:
    if requested > MAX_LIST_LIMIT:
        raise InvalidSpec(f"limit: at most {MAX_LIST_LIMIT}", field="limit")
    return requested or DEFAULT_LIST_LIMIT


def api_key(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise Unauthorized("missing API key: send metadata authorization: Bearer <api key>")


# The tenant `KeyFirst` found for the call being served: each call runs in a task of its own,
# so a value set while it is intercepted is seen by its handler and by no other call (and
# every call that reaches a handler has had it set, by its own interception, just before).
_CALL_TENANT: contextvars.ContextVar[Tenant] = contextvars.ContextVar("grpc_call_tenant")


class KeyFirst(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks a call's API key from its metadata before its request is read, as the REST API
    does before a body: a unary handler would first wait for the whole request message (up
    to the gateway's size limit) from a client that may have no key at all. A call without a
    live key gets a handler that refuses it at once and never reads the request."""

    def __init__(self, authenticate: Callable[[str], Awaitable[Tenant]]) -> None:
        self._authenticate = authenticate

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        try:
            _CALL_TENANT.set(await self._authenticate(api_key(details.invocation_metadata)))
        except Exception as exc:
            return _refusal(exc)
        return await continuation(details)


def _refusal(exc: Exception) -> grpc.RpcMethodHandler:
    async def refuse(requests: AsyncIterator[Any], context: Context) -> None:
        await abort(context, exc)

    # Stream-in: the request is read only when iterated, and this never does.
    return grpc.stream_unary_rpc_method_handler(refuse)


async def call_tenant(context: Context, authenticate: Callable[[str], Awaitable[Tenant]]) -> Tenant:
    """The calling tenant: the one `KeyFirst` found, else (a server without it) looked up."""
    found = _CALL_TENANT.get(None)
    if found is not None:
        return found
    return await authenticate(api_key(context.invocation_metadata()))
