"""Schemathesis over the gateway's OpenAPI spec: generated (and deliberately broken) requests,
with and without a valid key, never get a 5xx and get answers the spec documents.

The app is the in-memory twin plus the services and money routes over a real `ServiceDesk`,
`Billing` and SQLite store on a network with no miners (`services_desk`): services are
created, scaled, updated and deleted for real; none ever gets a replica.

Checks narrowed, on purpose:
- ``negative_data_rejection``: the gateway ignores unknown query parameters (forward
  compatibility), which schemathesis counts as accepting invalid data;
- ``positive_data_acceptance`` for job submission: a JobSpec has rules JSON Schema cannot
  say (input paths stay inside the work dir, base64 content decodes, an input has content
  or a url with its sha256, not both, the Idempotency-Key
  header agrees with the body's key), so schema-valid bodies can rightly get a 422;
- ``positive_data_acceptance`` for lease creation and extension: a valid spec can ask for a
  GPU model or price no worker offers, or more than the balance covers (503, 402);
- ``positive_data_acceptance`` for service creation, scaling and updates: a ServiceSpec has
  rules across fields (min_replicas ≤ max_replicas, no PORT in env, input paths) that a
  change is checked against as a whole (422), and the tenant's replica quota fills up as the
  run creates services (429);
- ``positive_data_acceptance`` for a job's estimate (a JobSpec, as above) and for usage
  (``since`` must come before ``until``, at most 366 days apart: 422);
- ``not_a_server_error`` for lease creation answered with the documented ``no_capacity``
  503 only (that is the API's answer for "no worker fits", not a fault); any other 5xx,
  on any route, still fails.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

import asyncio  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
)

from byteleap.config import GatewaySettings  # noqa: E402
from byteleap.gateway.billing import Billing  # noqa: E402
from byteleap.gateway.rest import create_rest_app  # noqa: E402
from byteleap.gateway.rest_billing import mount_billing  # noqa: E402
from byteleap.gateway.rest_services import mount_services  # noqa: E402
from gateway.live import ALICE_KEY, tenants  # noqa: E402
from gateway.services_desk import NoMiners, lazy_desk  # noqa: E402

_STORE_DIR = tempfile.TemporaryDirectory(prefix="byteleap-schema-")  # removed at exit
# Alice and Bob are tenants 1 and 2 in the twin and in the desk's store alike.
_DESK = lazy_desk(f"sqlite+aiosqlite:///{Path(_STORE_DIR.name) / 'store.db'}")
_APP = create_rest_app(tenants(capacity=1 << 30), max_body_bytes=64 << 10)
mount_services(_APP, _DESK.desk)
mount_billing(_APP, Billing(_DESK.store, NoMiners(), GatewaySettings()))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)
_SPEC_RULES_BEYOND_THE_SCHEMA = {
    ("POST", "/v1/jobs"),
    ("POST", "/v1/leases"),
    ("POST", "/v1/leases/{lease_id}/extend"),
    ("POST", "/v1/services"),
    ("POST", "/v1/services/{service_id}/scale"),
    ("POST", "/v1/services/{service_id}/update"),
    ("POST", "/v1/jobs/estimate"),
    ("GET", "/v1/usage"),  # since must come before until, at most 366 days apart
}


@pytest.fixture(scope="module", autouse=True)
def _services_store() -> Iterator[None]:
    asyncio.run(_DESK.setup())
    yield
    asyncio.run(_DESK.close())


def _excluded(case: schemathesis.Case, response: Any) -> list[Any]:
    excluded: list[Any] = [negative_data_rejection]
    if (case.method, case.path) in _SPEC_RULES_BEYOND_THE_SCHEMA:
        excluded.append(positive_data_acceptance)
    if (case.method, case.path) == ("POST", "/v1/leases") and response.status_code == 503:
        assert response.json()["error"] == "no_capacity", response.text
        excluded.append(not_a_server_error)
    return excluded


def _call_and_validate(case: schemathesis.Case, headers: dict[str, str] | None) -> None:
    """`call_and_validate`, split so the checks can depend on the answer."""
    response = case.call(headers=headers)
    case.validate_response(
        response,
        headers=headers,
        excluded_checks=_excluded(case, response),
        transport_kwargs={"headers": dict(headers)} if headers else {},
    )


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case: schemathesis.Case) -> None:
    _call_and_validate(case, {"Authorization": f"Bearer {ALICE_KEY}"})


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_without_a_key(case: schemathesis.Case) -> None:
    _call_and_validate(case, None)
