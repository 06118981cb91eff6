"""The submit-time size bounds keep the largest spec they allow inside what a miner reads."""

from __future__ import annotations

from byteleap.gateway.job_requests import job_request
from byteleap.net.messages import MAX_HTTP_BODY_BYTES
from byteleap.protocol.api import JobSpec
from byteleap.protocol.execution import (
    MAX_ARGV_JSON_BYTES,
    MAX_ENV_JSON_BYTES,
    MAX_INLINE_INPUTS_JSON_BYTES,
)


def test_the_largest_spec_submit_takes_fits_a_miners_request() -> None:
    # Each part just under its bound: an argv, an env and an input of ~1 KiB pieces.
    argv = ["x" * 1000] * (MAX_ARGV_JSON_BYTES // 1003 - 1)
    env = {f"V{i}": "y" * 990 for i in range(min(256, MAX_ENV_JSON_BYTES // 1003) - 1)}
    content = "z" * (MAX_INLINE_INPUTS_JSON_BYTES - 100)
    spec = JobSpec(command=argv, env=env, inputs={"a": {"content": content}}, image="a/b:c")
    request = job_request("job_" + "0" * 24 + "-a1", 1, "w-" + "0" * 16, spec)
    assert len(request.model_dump_json()) < MAX_HTTP_BODY_BYTES - (64 << 10)
