"""The byteleap customer SDK: submit jobs to a gateway, follow them, collect results;
lease workers by the second.

    from byteleap.sdk import Client

    with Client("http://127.0.0.1:8080", api_key) as client:
        job = client.submit({"command": ["python", "-c", "print(42)"]})
        for entry in client.stream_logs(job.id):
            print(entry.line)
        print(client.wait(job.id).exit_code)
        lease = client.create_lease({"resources": {"gpu_count": 1}, "duration_s": 3600})
        client.release_lease(lease.id)
        money = client.balance()
        print(format_amount(money.available, money.currency))

`AsyncClient` has the same methods as coroutines (and `stream_logs` as an async iterator).
Errors are the `SdkError` tree (see ``byteleap.sdk.errors``); an unusable gateway address
(no ``http(s)://``, no host) is an `SdkError` with reason ``bad_url`` when the client is made.

Times in the views (``created_at``, ``ends_at``, …) are Unix epoch seconds (UTC floats), as
the API sends them: ``datetime.fromtimestamp(lease.ends_at, UTC)`` makes one a datetime.
A CPU lease has ``gpu_count`` 0 and ``gpu_model`` None; ``cpu_cores`` says its size.
"""

from byteleap.protocol.api import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseState,
    LeaseView,
    LogEntry,
    Resources,
)
from byteleap.protocol.artifacts import ArtifactListing, ArtifactView, RejectedArtifact
from byteleap.protocol.billing import (
    Balance,
    JobEstimate,
    Prices,
    Usage,
    format_amount,
    format_rate,
)
from byteleap.protocol.execution import InputFile
from byteleap.protocol.service_spec import ServiceSpec, ServiceState, ServiceView
from byteleap.sdk.client import AsyncClient
from byteleap.sdk.errors import (
    ApiError,
    BadResponse,
    Conflict,
    GatewayUnreachable,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PaymentRequired,
    QuotaExceeded,
    SdkError,
    Unauthorized,
    Unavailable,
    WaitTimedOut,
)
from byteleap.sdk.sync import Client

__all__ = [
    "ApiError",
    "ArtifactListing",
    "ArtifactView",
    "AsyncClient",
    "BadResponse",
    "Balance",
    "Client",
    "Conflict",
    "GatewayUnreachable",
    "InputFile",
    "InvalidRequest",
    "JobEstimate",
    "JobSpec",
    "JobState",
    "JobView",
    "LeaseSpec",
    "LeaseState",
    "LeaseView",
    "LogEntry",
    "NotFound",
    "PayloadTooLarge",
    "PaymentRequired",
    "Prices",
    "QuotaExceeded",
    "RejectedArtifact",
    "Resources",
    "SdkError",
    "ServiceSpec",
    "ServiceState",
    "ServiceView",
    "Unauthorized",
    "Unavailable",
    "Usage",
    "WaitTimedOut",
    "format_amount",
    "format_rate",
]
