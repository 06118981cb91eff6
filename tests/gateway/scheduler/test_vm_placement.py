"""VM leases go only to workers that host VMs: a ``no_vm`` refusal names the rest."""

from __future__ import annotations

from typing import Any

from byteleap.gateway.scheduler import (
    Fit,
    NoPlacement,
    PlacementPass,
    Rejection,
    RejectReason,
    Requirements,
    WorkerOffer,
    fit,
    place,
)


def offer(worker_id: str, *, vm: bool, **fields: Any) -> WorkerOffer:
    values: dict[str, Any] = {
        "miner_hotkey": "m",
        "worker_id": worker_id,
        "state": "idle",
        "cpu_cores": 8,
        "ram_mib": 32768,
        "region": "local",
        "price_per_cpu_s": 0.001,
        "vm_leases": vm,
    }
    return WorkerOffer(**(values | fields))


VM = Requirements(cpu_cores=2, ram_mib=4096, vm=True)


def test_a_vm_requirement_refuses_a_worker_without_vms_and_says_so() -> None:
    result = fit(VM, offer("plain", vm=False))
    assert isinstance(result, Rejection)
    assert result.reasons == (RejectReason.NO_VM,)


def test_a_vm_host_takes_vm_and_ordinary_work() -> None:
    host = offer("host", vm=True)
    assert isinstance(fit(VM, host), Fit)
    assert isinstance(fit(Requirements(cpu_cores=2), host), Fit)


def test_no_vm_is_listed_with_every_other_refusal() -> None:
    result = fit(VM, offer("plain", vm=False, state="busy", ram_mib=1024))
    assert isinstance(result, Rejection)
    reasons = set(result.reasons)
    assert {RejectReason.NO_VM, RejectReason.BUSY, RejectReason.NOT_ENOUGH_RAM} <= reasons


def test_placement_picks_the_vm_host_even_when_dearer() -> None:
    cheap = offer("plain", vm=False, price_per_cpu_s=0.0001)
    dear = offer("host", vm=True, price_per_cpu_s=0.01)
    chosen = place(VM, [cheap, dear])
    assert not isinstance(chosen, NoPlacement) and chosen.worker.worker_id == "host"
    batch = PlacementPass([cheap, dear]).place(VM)
    assert not isinstance(batch, NoPlacement) and batch.worker.worker_id == "host"


def test_no_vm_host_is_no_placement_that_will_not_fit_later() -> None:
    refused = place(VM, [offer("a", vm=False), offer("b", vm=False)])
    assert isinstance(refused, NoPlacement)
    assert refused.reason_counts() == {"no_vm": 2}
    assert not refused.would_fit_later
    assert "2 no_vm" in refused.message
