"""What the SDK raises. One base, `SdkError`; every error the gateway answered with is an
`ApiError` carrying the HTTP ``status``, the gateway's ``reason`` code, its ``detail`` and,
for invalid requests, the ``field`` at fault.

    SdkError
     ├── ApiError                 the gateway answered with an error status
     │    ├── Unauthorized        401  missing or wrong API key
     │    ├── PaymentRequired     402  balance too low
     │    ├── NotFound            404  no such job or lease (nor another tenant's)
     │    ├── Conflict            409  the state does not allow it (cancel a finished job,
     │    │                            extend or release an ended lease)
     │    ├── PayloadTooLarge     413  request body over the gateway's limit
     │    ├── InvalidRequest      422  the spec or a parameter is invalid; see ``field``
     │    ├── QuotaExceeded       429  too many jobs or leases for the tenant
     │    └── Unavailable         503  no capacity now; try later
     ├── GatewayUnreachable       no answer (connection refused, timeout, broken stream)
     ├── BadResponse              an answer that is not what the API documents
     └── WaitTimedOut             `wait` gave up before the job ended

These are the SDK's own classes, not the gateway's `CloudError` ones: a customer program
imports the SDK without the server side, and a status the SDK does not know still arrives
as a plain `ApiError`. `error_for_status` is the one place statuses map to classes; a test
checks it covers every status the gateway's `CloudError` tree can send.
"""

from __future__ import annotations

from typing import Any, ClassVar

from byteleap.errors import ByteleapError


class SdkError(ByteleapError):
    reason = "sdk_error"


class ApiError(SdkError):
    reason = "api_error"
    status_code: ClassVar[int | None] = None

    def __init__(
        self, status: int, reason: str, detail: str, field: str | None = None, **context: Any
    ) -> None:
        super().__init__(detail or reason, reason=reason, status=status, field=field, **context)
        self.status = status
        self.detail = detail
        self.field = field

    def __str__(self) -> str:
        where = f" (field {self.field})" if self.field else ""
        return f"{self.status} {self.reason}: {self.detail}{where}"


class Unauthorized(ApiError):
    status_code = 401


class PaymentRequired(ApiError):
    status_code = 402


class NotFound(ApiError):
    status_code = 404


class Conflict(ApiError):
    status_code = 409


class PayloadTooLarge(ApiError):
    status_code = 413


class InvalidRequest(ApiError):
    status_code = 422


class QuotaExceeded(ApiError):
    status_code = 429


class Unavailable(ApiError):
    status_code = 503


class GatewayUnreachable(SdkError):
    reason = "gateway_unreachable"


class BadResponse(SdkError):
    reason = "bad_response"


class WaitTimedOut(SdkError):
    reason = "wait_timed_out"


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status_code: cls for cls in ApiError.__subclasses__() if cls.status_code is not None
}


def error_for_status(status: int, reason: str, detail: str, field: str | None = None) -> ApiError:
    """The `ApiError` subclass for ``status`` (plain `ApiError` for one not listed)."""
    return _BY_STATUS.get(status, ApiError)(status, reason, detail, field)
