"""Wire messages: unknown, malformed and oversized input fails loudly and typed."""

from __future__ import annotations

import json

import pytest

from byteleap.net.messages import (
    Heartbeat,
    MessageError,
    RunChallenge,
    parse_miner_message,
    parse_worker_message,
)
from byteleap.proof import Profile, issue_challenge


def test_round_trip_by_tag() -> None:
    spec = issue_challenge(64, Profile.CPU_F64, now=0, ttl_s=10)
    parsed = parse_miner_message(RunChallenge(spec=spec).model_dump_json())
    assert isinstance(parsed, RunChallenge) and parsed.spec == spec
    assert isinstance(parse_worker_message(Heartbeat(sent_at=1.0).model_dump_json()), Heartbeat)


@pytest.mark.adversarial
@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps({"type": "heartbeat"}),
        json.dumps({"type": "self_destruct", "v": 1}),
        json.dumps({"type": "heartbeat", "sent_at": 1.0, "v": 2}),
        json.dumps({"type": "heartbeat", "sent_at": 1.0, "extra": True}),
        json.dumps({"type": "hello", "worker_id": "../../etc", "signature": "00"}),
    ],
)
def test_malformed_messages(raw: str) -> None:
    with pytest.raises(MessageError) as info:
        parse_worker_message(raw)
    assert info.value.reason == "malformed"


@pytest.mark.adversarial
def test_oversized_messages_are_refused_before_parsing() -> None:
    with pytest.raises(MessageError) as info:
        parse_worker_message("x" * 101, max_bytes=100)
    assert info.value.reason == "oversized"


def test_a_worker_cannot_send_miner_messages() -> None:
    spec = issue_challenge(64, Profile.CPU_F64, now=0, ttl_s=10)
    with pytest.raises(MessageError):
        parse_worker_message(RunChallenge(spec=spec).model_dump_json())
