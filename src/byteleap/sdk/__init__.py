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

`AsyncClient` has the same methods as coroutines (and `stream_logs` as an async iterator).
Errors are the `SdkError` tree (see ``byteleap.sdk.errors``).
"""

from byteleap.cloud.artifacts import ArtifactListing, ArtifactView, RejectedArtifact
from byteleap.cloud.executors.base import InputFile
from byteleap.cloud.gateway.models import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseState,
    LeaseView,
    LogEntry,
    Resources,
)
from byteleap.cloud.services.spec import ServiceSpec, ServiceState, ServiceView
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
    "Client",
    "Conflict",
    "GatewayUnreachable",
    "InputFile",
    "InvalidRequest",
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
    "QuotaExceeded",
    "RejectedArtifact",
    "Resources",
    "SdkError",
    "ServiceSpec",
    "ServiceState",
    "ServiceView",
    "Unauthorized",
    "Unavailable",
    "WaitTimedOut",
]
