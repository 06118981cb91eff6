"""Inputs by URL in the wire contract: exactly one of content or url, an http(s) URL, a sha256
to check it by; inline inputs serialise as they always did."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import ValidationError

from byteleap.protocol.api import JobSpec
from byteleap.protocol.execution import (
    FEATURE_URL_INPUTS,
    MAX_INLINE_INPUTS_JSON_BYTES,
    ExecutionSpec,
    InputFile,
)

DIGEST = hashlib.sha256(b"data").hexdigest()
URL_INPUT = {"url": "https://data.example.org/set.bin", "sha256": DIGEST, "size": 4}


def test_a_url_input_parses_and_round_trips() -> None:
    spec = JobSpec(command=["python", "run.py"], inputs={"data/set.bin": URL_INPUT})
    file = spec.inputs["data/set.bin"]
    assert file.is_url and file.url == URL_INPUT["url"] and file.size == 4
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec
    dumped = spec.model_dump()["inputs"]["data/set.bin"]
    assert dumped == {**URL_INPUT, "encoding": "utf-8", "executable": False}  # no content


def test_an_upper_case_digest_is_kept_lower_case() -> None:
    assert InputFile(url="http://h/x", sha256=DIGEST.upper()).sha256 == DIGEST


def test_inline_inputs_serialise_as_before() -> None:
    # Exactly the old JSON: a worker of an older release (extra="forbid") still reads it.
    assert InputFile(content="hi").model_dump() == {
        "content": "hi",
        "encoding": "utf-8",
        "executable": False,
    }
    spec = ExecutionSpec(command=["true"], timeout_s=1, inputs={"a": "x"})
    assert spec.model_dump_json().count('"url"') == 0
    assert spec.requested_features() == set()


def test_a_url_input_is_a_feature_an_executor_may_lack() -> None:
    spec = ExecutionSpec(command=["true"], timeout_s=1, inputs={"a": URL_INPUT})
    assert FEATURE_URL_INPUTS in spec.requested_features()


def test_url_inputs_do_not_count_against_the_inline_budget() -> None:
    # 256 URL inputs of 1 TiB each: only their JSON counts.
    inputs = {f"f{i}": {**URL_INPUT, "size": 1 << 40} for i in range(256)}
    assert len(JobSpec(command=["x"], inputs=inputs).inputs) == 256
    big = "z" * (MAX_INLINE_INPUTS_JSON_BYTES - 100)
    with pytest.raises(ValidationError, match="the inputs take"):
        JobSpec(command=["x"], inputs={"a": {"content": big}, "b": URL_INPUT})


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("file", "message"),
    [
        ({}, "exactly one of content or url"),
        ({"content": "x", **URL_INPUT}, "exactly one of content or url"),
        ({"url": "https://h/x"}, "needs its sha256"),
        ({"url": "ftp://h/x", "sha256": DIGEST}, "must be http or https"),
        ({"url": "file:///etc/passwd", "sha256": DIGEST}, "must be http or https"),
        ({"url": "/relative", "sha256": DIGEST}, "must be http or https"),
        ({"url": "https:///x", "sha256": DIGEST}, "has no host"),
        ({"url": "http://h:99999/x", "sha256": DIGEST}, "malformed"),
        ({"url": "http://h/a b", "sha256": DIGEST}, "whitespace or a control"),
        ({"url": "http://h/\x00", "sha256": DIGEST}, "whitespace or a control"),
        ({"url": "http://h/x", "sha256": "ab" * 31}, "64 hex digits"),
        ({"url": "http://h/x", "sha256": "g" * 64}, "64 hex digits"),
        ({"url": "http://h/x", "sha256": DIGEST, "size": -1}, "greater than or equal"),
        ({"url": "http://h/x", "sha256": DIGEST, "encoding": "base64"}, "encoding belongs"),
        ({"url": "http://h/" + "x" * 5000, "sha256": DIGEST}, "at most 4096"),
        ({"content": "x", "sha256": DIGEST}, "belong to a url input"),
        ({"content": "x", "size": 1}, "belong to a url input"),
        ({"url": "http://h/x", "sha256": DIGEST, "mirror": "y"}, "Extra inputs"),
    ],
)
def test_a_malformed_input_is_refused_with_a_clear_error(
    file: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        JobSpec(command=["x"], inputs={"in": file})
    with pytest.raises(ValidationError, match=message):
        ExecutionSpec(command=["x"], timeout_s=1, inputs={"in": file})


@pytest.mark.adversarial
def test_a_url_input_has_no_inline_data() -> None:
    with pytest.raises(ValueError, match="no inline content"):
        InputFile(**URL_INPUT).data()


@pytest.mark.adversarial
def test_a_url_input_is_held_to_the_path_rules() -> None:
    with pytest.raises(ValidationError, match="stay inside the work dir"):
        JobSpec(command=["x"], inputs={"../escape": URL_INPUT})
    with pytest.raises(ValidationError, match="artifacts dir"):
        JobSpec(command=["x"], inputs={"artifacts": URL_INPUT})
