"""Schemathesis over the gateway's OpenAPI spec: generated (and deliberately broken) requests,
with and without a valid key, never get a 5xx and get answers the spec documents.

Two checks are narrowed, on purpose:
- ``negative_data_rejection``: the gateway ignores unknown query parameters (forward
  compatibility), which schemathesis counts as accepting invalid data;
- ``positive_data_acceptance`` for job submission: a JobSpec has rules JSON Schema cannot
  say (input paths stay inside the work dir, base64 content decodes, the Idempotency-Key
  header agrees with the body's key), so schema-valid bodies can rightly get a 422.
"""

from __future__ import annotations

from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    negative_data_rejection,
    positive_data_acceptance,
)

from byteleap.cloud.gateway.rest import create_rest_app  # noqa: E402
from cloud.gateway.live import ALICE_KEY, tenants  # noqa: E402

schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_rest_app(tenants(), max_body_bytes=64 << 10)
)


def _excluded(case: schemathesis.Case) -> list[Any]:
    excluded: list[Any] = [negative_data_rejection]
    if case.method == "POST" and case.path == "/v1/jobs":
        excluded.append(positive_data_acceptance)
    return excluded


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_responses_match_the_spec(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ALICE_KEY}"}, excluded_checks=_excluded(case)
    )


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_without_a_key(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=_excluded(case))
