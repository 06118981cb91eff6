"""A key or GPU uuid reported by two workers, under one hotkey or two, flags all of them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from byteleap.protocol.identity import WorkerIdentity, duplicated_workers


def test_distinct_workers_are_not_flagged() -> None:
    fleet = [WorkerIdentity("m1", f"w{i}", f"key{i}", (f"GPU-{i}",)) for i in range(4)]
    assert duplicated_workers(fleet) == {}


def test_one_box_under_two_hotkeys_flags_both() -> None:
    a = WorkerIdentity("m1", "w1", "key", ("GPU-1",))
    b = WorkerIdentity("m2", "w1", "key", ("GPU-1",))
    assert duplicated_workers([a, b]) == {("m1", "w1"): "shared_gpu", ("m2", "w1"): "shared_gpu"}


def test_one_gpu_behind_two_workers_of_one_miner_flags_both() -> None:
    a = WorkerIdentity("m1", "w1", "key1", ("GPU-1",))
    b = WorkerIdentity("m1", "w2", "key2", ("gpu-1 ",))  # case and spaces do not hide it
    c = WorkerIdentity("m1", "w3", "key3", ("GPU-3",))
    assert set(duplicated_workers([a, b, c])) == {("m1", "w1"), ("m1", "w2")}


def test_a_shared_key_flags_workers_without_gpus() -> None:
    a = WorkerIdentity("m1", "w1", "KEY")
    b = WorkerIdentity("m2", "w9", "key")
    assert duplicated_workers([a, b]) == {("m1", "w1"): "shared_key", ("m2", "w9"): "shared_key"}


def test_a_listing_read_twice_is_not_its_own_duplicate() -> None:
    a = WorkerIdentity("m1", "w1", "key", ("GPU-1",))
    assert duplicated_workers([a, a]) == {}


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 6)), max_size=30))
def test_flagged_exactly_when_something_is_shared(rows: list[tuple[int, int, int]]) -> None:
    fleet = [WorkerIdentity(f"m{m}", f"w{w}", f"key{g}", (f"GPU-{g}",)) for m, w, g in rows]
    flagged = duplicated_workers(fleet)
    holders: dict[str, set[tuple[str, str]]] = {}
    for worker in fleet:
        holders.setdefault(worker.public_key, set()).add(worker.ref)
    for worker in fleet:
        shares = any(len(holders[x.public_key]) > 1 for x in fleet if x.ref == worker.ref)
        assert (worker.ref in flagged) == shares
