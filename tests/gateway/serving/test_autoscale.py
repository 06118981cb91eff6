"""Autoscaling: proportional wishes, tolerance, cooldowns and the scale-in stabilisation."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from byteleap.gateway.serving.autoscale import Load, ScalerMemory, decide, wish
from byteleap.protocol.service_spec import AutoscaleSpec

POLICY = AutoscaleSpec(
    min_replicas=1, max_replicas=5, target_in_flight=2, scale_out_cooldown_s=5,
    scale_in_cooldown_s=30,
)  # fmt: skip


def test_in_flight_over_target_scales_out_proportionally() -> None:
    d = decide(POLICY, 1, Load(in_flight=6), ScalerMemory(), now=100)
    assert d.desired == 3 and d.reason == "scale out"


def test_scale_out_waits_for_its_cooldown() -> None:
    d = decide(POLICY, 3, Load(in_flight=10), ScalerMemory(last_change_at=98), now=100)
    assert d.desired == 3
    assert decide(POLICY, 3, Load(in_flight=10), d.memory, now=103).desired == 5


def test_within_tolerance_nothing_moves() -> None:
    policy = POLICY.model_copy(update={"tolerance": 0.2})
    assert wish(policy, 2, Load(in_flight=4.6)) == 2


def test_scale_in_needs_low_load_for_the_whole_cooldown_and_keeps_the_peak() -> None:
    memory = ScalerMemory()
    d = decide(POLICY, 4, Load(in_flight=0), memory, now=0)
    assert d.desired == 4 and d.memory.low_since == 0
    d = decide(POLICY, 4, Load(in_flight=5), d.memory, now=10)  # wish 3: still low
    assert d.desired == 4
    d = decide(POLICY, 4, Load(in_flight=0), d.memory, now=31)
    assert d.desired == 3 and d.reason == "scale in"


def test_a_load_spike_resets_the_scale_in_wait() -> None:
    d = decide(POLICY, 2, Load(in_flight=0), ScalerMemory(), now=0)
    d = decide(POLICY, 2, Load(in_flight=4), d.memory, now=20)  # at target
    assert d.memory.low_since is None
    d = decide(POLICY, 2, Load(in_flight=0), d.memory, now=35)
    assert d.desired == 2


def test_latency_over_target_scales_out() -> None:
    policy = AutoscaleSpec(max_replicas=4, target_in_flight=None, target_latency_ms=100)
    assert wish(policy, 2, Load(in_flight=0, latency_p90_ms=190)) == 4
    assert wish(policy, 2, Load(in_flight=0, latency_p90_ms=None)) == 1


@given(
    st.integers(1, 10), st.integers(1, 10), st.integers(1, 64), st.floats(0, 500),
    st.one_of(st.none(), st.floats(0, 10_000)), st.floats(0, 1000),
)  # fmt: skip
def test_the_decision_stays_within_the_bounds(
    lo: int, span: int, current: int, in_flight: float, latency: float | None, now: float
) -> None:
    policy = AutoscaleSpec(
        min_replicas=lo, max_replicas=min(64, lo + span), target_latency_ms=50,
        scale_out_cooldown_s=0, scale_in_cooldown_s=0,
    )  # fmt: skip
    d = decide(policy, current, Load(in_flight, latency), ScalerMemory(), now)
    assert policy.min_replicas <= d.desired <= policy.max_replicas
