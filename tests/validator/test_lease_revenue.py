"""Countersigned receipts become the revenue the lease score is computed from."""

from __future__ import annotations

import pytest

from byteleap.net.receipts import ReceiptError
from byteleap.scoring import ChallengeRecord, LeaseRevenue, Verdict, score_network
from byteleap.validator.lease_revenue import lease_revenue
from net.receipt_samples import LEASE, MINER, NOW, OTHER_MINER, signed


def test_lease_revenue_feeds_the_lease_score() -> None:
    big = [signed(worker_id=f"w-{i}") for i in range(3)]
    small = [signed(miner_hotkey=OTHER_MINER.ss58_address, miner_key=OTHER_MINER, gpu_count=1)]
    revenue = lease_revenue(big + small)
    assert {r.miner_hotkey for r in revenue} == {MINER.ss58_address, OTHER_MINER.ss58_address}
    assert revenue[0].amount == pytest.approx(300 * 2 * 550 / 1e6)
    assert revenue[0].at == float(big[0].period_end)
    assert [r.worker_id for r in revenue] == ["w-0", "w-1", "w-2", "w-0001"]
    # Every worker passed a challenge just before its period: all of the revenue counts, and
    # each miner's lease score is its part of the network's (no longer of the best miner's).
    passes = [
        ChallengeRecord(r.worker_id, r.miner_hotkey, NOW - 900, Verdict.OK, None, 1e12)
        for r in revenue
    ]
    board = score_network(passes, leases=revenue, now=NOW)
    lease = {m.hotkey: m.lease for m in board.miners}
    assert lease[MINER.ss58_address] == pytest.approx(6 / 7)
    assert lease[OTHER_MINER.ss58_address] == pytest.approx(1 / 7)
    assert board.lease_revenue == pytest.approx(7 * 300 * 550 / 1e6)


@pytest.mark.adversarial
def test_receipts_for_a_worker_that_never_passed_earn_nothing() -> None:
    revenue = lease_revenue([signed(worker_id="ghost")])
    board = score_network([], leases=revenue, now=NOW)
    assert board.lease_revenue == 0.0
    assert board.miner(MINER.ss58_address).lease_rejected == pytest.approx(revenue[0].amount)


def test_the_lease_start_is_the_stored_one_or_the_periods_own() -> None:
    receipt = signed()
    key = (LEASE, MINER.ss58_address, "w-0001")
    (unknown,) = lease_revenue([receipt])
    assert unknown.lease_start == float(receipt.period_start)
    (known,) = lease_revenue([receipt], {key: NOW - 7200})
    assert known.lease_start == float(NOW - 7200)
    (later,) = lease_revenue([receipt], {key: NOW})  # never later than the period itself
    assert later.lease_start == float(receipt.period_start)
    assert isinstance(known, LeaseRevenue) and known.anchor == known.lease_start


def test_lease_revenue_refuses_mixed_currencies() -> None:
    with pytest.raises(ReceiptError) as err:
        lease_revenue([signed(), signed(worker_id="w-2", currency="EUR")])
    assert err.value.reason == "mixed_currency"
    assert lease_revenue([]) == []
