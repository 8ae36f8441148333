"""The scale decider: one behaviour per case, explicit clocks, no sleeping."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from controller.autoscaler.decide import (
    RECLAIM_IDLE_SECONDS,
    Reason,
    Sample,
    ScaleSpec,
    ScaleStats,
    decide,
)


def history(*demands: int, start: float = 0.0, ready: int = 0, waiting: bool = False) -> ScaleStats:
    """One sample per second from ``start``: the n-th demand is at ``start + n``."""
    stats = ScaleStats(window=60.0)
    for i, demand in enumerate(demands):
        in_flight, held = (0, demand) if waiting else (demand, 0)
        stats = stats.with_sample(
            Sample(at=start + i, in_flight=in_flight, waiting=held, ready=ready)
        )
    return stats


@dataclass(frozen=True)
class Case:
    name: str
    stats: ScaleStats
    now: float
    replicas: int
    reason: Reason
    spec: ScaleSpec = field(default_factory=ScaleSpec)


CONC10 = ScaleSpec(instance_concurrency=10, target_utilization=0.7)

CASES = [
    Case(
        "nothing ever seen stays at zero", ScaleStats(), now=100.0, replicas=0, reason=Reason.IDLE
    ),
    Case(
        "poke from zero gives one at once",
        history(0, 0, 0, 1, waiting=True),
        now=3.0,
        replicas=1,
        reason=Reason.STABLE,
    ),
    Case(
        "a burst after silence is not diluted by it, and panics",
        history(*[0] * 50, 10),
        now=50.0,
        replicas=10,
        reason=Reason.PANIC,
    ),
    Case(
        "waiting requests count as demand",
        history(3, 3, 3, waiting=True, ready=3),
        now=2.0,
        replicas=3,
        reason=Reason.STABLE,
    ),
    Case(
        "stable: 12 requests at 7 per instance need 2",
        history(*[12] * 60, ready=2),
        now=59.0,
        replicas=2,
        reason=Reason.STABLE,
        spec=CONC10,
    ),
    Case(
        "utilization never aims below one request per instance",
        history(4, 4, 4, ready=4),
        now=2.0,
        replicas=4,
        reason=Reason.STABLE,
        spec=ScaleSpec(target_utilization=0.5),
    ),
    Case(
        "panic: 6 s at 40 against 2 ready jumps to 6",
        history(*[5] * 54, *[40] * 6, ready=2),
        now=59.0,
        replicas=6,
        reason=Reason.PANIC,
        spec=CONC10,
    ),
    Case(
        "below the panic threshold the stable desire rules",
        history(*[5] * 54, *[14] * 6, ready=2),
        now=59.0,
        replicas=1,
        reason=Reason.STABLE,
        spec=CONC10,
    ),
    Case(
        "reserved concurrency caps instances",
        history(*[40] * 10, ready=4),
        now=9.0,
        replicas=4,
        reason=Reason.MAX,
        spec=ScaleSpec(instance_concurrency=10, reserved_concurrency=35),
    ),
    Case(
        "reserved zero allows no instance even when poked",
        history(1, waiting=True),
        now=0.0,
        replicas=0,
        reason=Reason.MAX,
        spec=ScaleSpec(reserved_concurrency=0),
    ),
    Case(
        "max instances caps instances",
        history(*[50] * 10, ready=8),
        now=9.0,
        replicas=8,
        reason=Reason.MAX,
        spec=ScaleSpec(max_instances=8),
    ),
    Case(
        "provisioned minimum holds instances when idle",
        ScaleStats(),
        now=1000.0,
        replicas=3,
        reason=Reason.MIN,
        spec=ScaleSpec(min_instances=3),
    ),
    Case(
        "provisioned minimum raises a small desire",
        history(1, 1, ready=1),
        now=1.0,
        replicas=3,
        reason=Reason.MIN,
        spec=ScaleSpec(min_instances=3),
    ),
    Case(
        "provisioned minimum is capped by reserved concurrency",
        ScaleStats(),
        now=1000.0,
        replicas=2,
        reason=Reason.MIN,
        spec=ScaleSpec(min_instances=5, reserved_concurrency=2),
    ),
    Case(
        "idle within the timeout keeps one instance",
        history(2, 2, *[0] * 58, ready=2),
        now=200.0,
        replicas=1,
        reason=Reason.HOLD,
        spec=ScaleSpec(idle_timeout=300.0),
    ),
    Case(
        "idle past the timeout goes to zero",
        history(2, 2, *[0] * 58, ready=1),
        now=301.0,
        replicas=0,
        reason=Reason.IDLE,
        spec=ScaleSpec(idle_timeout=300.0),
    ),
    Case(
        "a short idle timeout wins over the stable window",
        history(2, 2, 0, 0, ready=1),
        now=3.5,
        replicas=0,
        reason=Reason.IDLE,
        spec=ScaleSpec(idle_timeout=2.0),
    ),
    Case(
        "in flight now is never idle, however long ago it started",
        history(*[1] * 60, start=1000.0, ready=1),
        now=1059.0,
        replicas=1,
        reason=Reason.STABLE,
        spec=ScaleSpec(idle_timeout=1.0),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decide(case: Case) -> None:
    decision = decide(case.stats, case.spec, case.now)

    assert (decision.replicas, decision.reason) == (case.replicas, case.reason)


def test_panic_never_scales_down_while_it_lasts() -> None:
    spec = CONC10
    stats = history(*[5] * 54, *[40] * 6, ready=2)
    stats = stats.with_decision(decide(stats, spec, 59.0))
    # The burst stops; 10 s later the panic window is quiet but the panic holds.
    for t in range(60, 70):
        stats = stats.with_sample(Sample(at=float(t), in_flight=5, waiting=0, ready=6))
        stats = stats.with_decision(decide(stats, spec, float(t)))

    assert (stats.replicas, decide(stats, spec, 69.0).reason) == (6, Reason.PANIC)


def test_panic_ends_a_stable_window_after_the_last_burst() -> None:
    spec = CONC10
    stats = history(*[5] * 54, *[40] * 6, ready=2)
    stats = stats.with_decision(decide(stats, spec, 59.0))
    for t in range(60, 120):
        stats = stats.with_sample(Sample(at=float(t), in_flight=5, waiting=0, ready=6))
        stats = stats.with_decision(decide(stats, spec, float(t)))

    decision = decide(stats, spec, 120.0)
    assert (decision.replicas, decision.reason) == (1, Reason.STABLE)


def test_panic_peak_grows_with_a_growing_burst() -> None:
    spec = CONC10
    stats = history(*[5] * 54, *[40] * 6, ready=2)
    stats = stats.with_decision(decide(stats, spec, 59.0))
    for t in range(60, 66):
        stats = stats.with_sample(Sample(at=float(t), in_flight=140, waiting=0, ready=6))

    assert decide(stats, spec, 65.0).replicas == 20


def test_idle_timeout_ends_a_panic() -> None:
    spec = ScaleSpec(idle_timeout=2.0)
    stats = history(0, 8, 8, ready=1)
    stats = stats.with_decision(decide(stats, spec, 2.0))
    for t in (3.0, 4.0, 5.0):
        stats = stats.with_sample(Sample(at=t, in_flight=0, waiting=0, ready=8))

    assert (stats.panic_until, decide(stats, spec, 5.0).replicas) == (62.0, 0)


def test_under_pressure_an_idle_target_goes_to_zero_before_its_idle_timeout() -> None:
    stats = history(3, 3, 0, ready=3)
    stats = stats.with_decision(decide(stats, ScaleSpec(), 1.0))

    decision = decide(stats, ScaleSpec(), 2.0, pressure=True)

    assert (decision.replicas, decision.reason) == (0, Reason.RECLAIMED)


def test_under_pressure_a_busy_target_keeps_its_instances() -> None:
    stats = history(3, 3, 1, ready=3)
    stats = stats.with_decision(decide(stats, ScaleSpec(), 1.0))

    assert decide(stats, ScaleSpec(), 2.0, pressure=True).reason is not Reason.RECLAIMED


def test_under_pressure_a_burst_over_for_long_enough_is_reclaimed_before_the_next_sample() -> None:
    stats = history(3, 3, ready=3)
    stats = stats.with_decision(decide(stats, ScaleSpec(), 1.0))
    # The burst ran into this sample's window, and has been over for the grace.
    stats = stats.with_sample(
        Sample(at=2.0, in_flight=3, waiting=0, ready=3, idle_for=RECLAIM_IDLE_SECONDS)
    )

    decision = decide(stats, ScaleSpec(), 2.0, pressure=True)

    assert (decision.replicas, decision.reason) == (0, Reason.RECLAIMED)


def test_under_pressure_a_target_idle_only_between_requests_keeps_its_instances() -> None:
    stats = history(3, 3, ready=3)
    stats = stats.with_decision(decide(stats, ScaleSpec(), 1.0))
    stats = stats.with_sample(
        Sample(at=2.0, in_flight=1, waiting=0, ready=3, idle_for=RECLAIM_IDLE_SECONDS / 10)
    )

    assert decide(stats, ScaleSpec(), 2.0, pressure=True).reason is not Reason.RECLAIMED


def test_reclaiming_never_goes_below_the_provisioned_floor() -> None:
    spec = ScaleSpec(min_instances=1)
    stats = history(3, 3, 0, ready=3)
    stats = stats.with_decision(decide(stats, spec, 1.0))

    decision = decide(stats, spec, 2.0, pressure=True)

    assert (decision.replicas, decision.reason) == (1, Reason.RECLAIMED)


def test_a_reclaimed_target_stays_down_once_the_pressure_is_gone() -> None:
    # Without forgetting its busy spell it would hold one instance for the idle timeout.
    stats = history(3, 3, 0, ready=3)
    stats = stats.with_decision(decide(stats, ScaleSpec(), 1.0))
    stats = stats.with_decision(decide(stats, ScaleSpec(), 2.0, pressure=True))
    stats = stats.with_sample(Sample(at=3.0, in_flight=0, waiting=0, ready=0))

    assert decide(stats, ScaleSpec(), 3.0).replicas == 0
