"""The validator's scoring side of lease receipts: accepted receipts become the revenue
records the lease score reads (``byteleap.scoring``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from byteleap.net.receipts import MICRO, LeaseReceipt, ReceiptError
from byteleap.scoring import LeaseRevenue
from byteleap.store import LeaseKey

_NO_STARTS: Mapping[LeaseKey, int] = {}


def lease_revenue(
    verified: Iterable[LeaseReceipt], lease_starts: Mapping[LeaseKey, int] = _NO_STARTS
) -> list[LeaseRevenue]:
    """Scoring records from receipts :func:`verify_receipt` accepted, each id counted once.

    ``at`` is the period's end and ``worker_id`` the receipt's worker, whose passed challenges
    decide whether the revenue counts. ``lease_start`` is when the lease began on that worker:
    ``lease_starts[(lease_id, miner_hotkey, worker_id)]`` (``store.lease_starts``), or the
    period's own start when unknown or later. All receipts must share one currency: lease
    scores compare miners' revenue, and there is no exchange rate here to compare it across
    currencies.
    """
    revenue: list[LeaseRevenue] = []
    counted: set[str] = set()
    currencies: set[str] = set()
    for receipt in verified:
        if receipt.receipt_id in counted:
            continue
        counted.add(receipt.receipt_id)
        currencies.add(receipt.currency)
        key = (receipt.lease_id, receipt.miner_hotkey, receipt.worker_id)
        start = min(lease_starts.get(key, receipt.period_start), receipt.period_start)
        revenue.append(
            LeaseRevenue(
                miner_hotkey=receipt.miner_hotkey,
                amount=receipt.amount_micro / MICRO,
                at=float(receipt.period_end),
                worker_id=receipt.worker_id,
                lease_start=float(start),
            )
        )
    if len(currencies) > 1:
        raise ReceiptError(
            f"receipts in several currencies: {sorted(currencies)}", reason="mixed_currency"
        )
    return revenue
