"""Customer-facing errors. Each carries the HTTP status (and gRPC code name) it maps to,
so REST and gRPC handlers translate them in one line.

CloudError
 ├── Unauthorized      401  missing or wrong API key
 │    └── KeyRevoked   401  the key of an open stream was revoked while it ran
 ├── NotFound          404  no such job/lease (also: another tenant's)
 ├── PaymentRequired   402  balance too low for the job's maximum cost
 ├── QuotaExceeded     429  too many jobs/leases/GPUs for the tenant
 ├── InvalidSpec       422  the request body is invalid; ``field`` names the field
 ├── PayloadTooLarge   413  upload or body over the limit
 ├── Conflict          409  the state does not allow it (e.g. cancel a finished job)
 └── NoCapacity        503  no worker can take it now
"""

from __future__ import annotations

from typing import Any, ClassVar

from byteleap.errors import ByteleapError


class CloudError(ByteleapError):
    reason = "cloud_error"
    status: ClassVar[int] = 400
    grpc_code: ClassVar[str] = "INVALID_ARGUMENT"


class Unauthorized(CloudError):
    reason = "unauthorized"
    status = 401
    grpc_code = "UNAUTHENTICATED"


class KeyRevoked(Unauthorized):
    reason = "key_revoked"


class NotFound(CloudError):
    reason = "not_found"
    status = 404
    grpc_code = "NOT_FOUND"


class PaymentRequired(CloudError):
    reason = "payment_required"
    status = 402
    grpc_code = "FAILED_PRECONDITION"


class QuotaExceeded(CloudError):
    reason = "quota_exceeded"
    status = 429
    grpc_code = "RESOURCE_EXHAUSTED"


class InvalidSpec(CloudError):
    reason = "invalid_spec"
    status = 422
    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str, **context: Any) -> None:
        super().__init__(message, field=field, **context)
        self.field = field


class PayloadTooLarge(CloudError):
    reason = "payload_too_large"
    status = 413
    grpc_code = "RESOURCE_EXHAUSTED"


class Conflict(CloudError):
    reason = "conflict"
    status = 409
    grpc_code = "FAILED_PRECONDITION"


class NoCapacity(CloudError):
    reason = "no_capacity"
    status = 503
    grpc_code = "UNAVAILABLE"
