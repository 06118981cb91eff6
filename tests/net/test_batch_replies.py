"""A miner's answer to a challenge batch is checked before the validator believes any of it."""

from __future__ import annotations

import secrets
import time

import pytest
from pydantic import ValidationError

from byteleap.net.messages import (
    BatchItemResult,
    ChallengeBatch,
    ChallengeBatchReply,
    StartChallenge,
)
from byteleap.net.miner_client import MinerCallError, _checked
from byteleap.proof import Profile, issue_challenge

pytestmark = pytest.mark.adversarial


def _batch(workers: int = 3) -> ChallengeBatch:
    now = time.time()
    return ChallengeBatch(
        batch_id=secrets.token_hex(16),
        items=[
            StartChallenge(
                worker_id=f"w-{i:016x}", spec=issue_challenge(64, Profile.CPU_F64, now=now, ttl_s=9)
            )
            for i in range(workers)
        ],
    )


def _refused(item: StartChallenge) -> BatchItemResult:
    return BatchItemResult(
        worker_id=item.worker_id, challenge_id=item.spec.challenge_id, error="busy"
    )


def _reply(
    batch: ChallengeBatch, results: list[BatchItemResult], **kw: object
) -> ChallengeBatchReply:
    fields: dict[str, object] = {"batch_id": batch.batch_id, "seen": 0, "results": results}
    return ChallengeBatchReply.model_validate(fields | kw)


def test_an_honest_reply_in_two_parts_is_taken() -> None:
    batch = _batch()
    first = [_refused(batch.items[1])]
    assert _checked(_reply(batch, first), batch, 0).results == first
    rest = [_refused(batch.items[0]), _refused(batch.items[2])]
    assert _checked(_reply(batch, rest, seen=1, done=True), batch, 1).done


@pytest.mark.parametrize(
    "lie",
    ["other_batch", "other_position", "unknown_challenge", "twice", "done_too_soon", "too_many"],
)
def test_a_reply_that_does_not_answer_the_batch_is_malformed(lie: str) -> None:
    batch, other = _batch(), _batch()
    answers = [_refused(batch.items[0])]
    reply = {
        "other_batch": _reply(batch, answers, batch_id=other.batch_id),
        "other_position": _reply(batch, answers, seen=1),
        "unknown_challenge": _reply(batch, [_refused(other.items[0])]),
        "twice": _reply(batch, answers * 2),
        "done_too_soon": _reply(batch, answers, done=True),
        "too_many": _reply(batch, [_refused(i) for i in batch.items], seen=1),
    }[lie]
    with pytest.raises(MinerCallError) as err:
        _checked(reply, batch, 0 if lie != "too_many" else 1)
    assert err.value.reason == "malformed"


def test_a_batch_names_each_worker_once_and_is_bounded() -> None:
    batch = _batch(2)
    twice = [batch.items[0], batch.items[0].model_copy(update={"spec": batch.items[1].spec})]
    with pytest.raises(ValidationError):
        ChallengeBatch(batch_id=batch.batch_id, items=twice)
    with pytest.raises(ValidationError):
        ChallengeBatch(batch_id=batch.batch_id, items=[])
    with pytest.raises(ValidationError):  # neither a commitment nor an error
        BatchItemResult.model_validate({"worker_id": "w-" + "0" * 16, "challenge_id": "c"})
