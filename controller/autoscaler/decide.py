"""The autoscaler's decision: how many instances one target should run, as a pure function.

``controller.autoscaler.loop`` calls ``decide(stats, spec, now)`` once per tick for every
target, and at once for a target the invoke path pokes. Nothing here reads a clock or
does I/O, so every rule below is tested with explicit ``now`` values and no sleeping.

The rules are Knative's KPA, with Lambda's idle timeout for scale to zero:

- Demand is in-flight plus waiting (held by the activator) requests. Each instance is
  aimed at ``instance_concurrency x target_utilization`` of it, never below one request.
- The *stable* desire averages demand over ``stable_window`` (60 s); it alone scales down.
- The *panic* desire averages over ``panic_window`` (6 s). When it reaches
  ``panic_threshold`` (2x) the ready instances, the target panics: it follows the larger
  desire at once and never scales down until a whole stable window has passed without
  another burst, by which time the burst is part of the stable average.
- Bounds: at most ``ceil(reserved_concurrency / instance_concurrency)`` and
  ``max_instances``; at least ``min_instances`` (provisioned concurrency).
- Zero only after ``idle_timeout`` seconds in which no sample saw anything in flight or
  waiting; before that a target that was busy keeps at least one instance.
- Under ``pressure`` (the backend defers starts for want of capacity), a target whose
  latest sample saw nothing in flight or waiting, or that has had nothing in flight or
  waiting for ``RECLAIM_IDLE_SECONDS`` (a burst that ended since the last sample), goes
  down to ``min_instances`` at once, as Lambda reclaims idle execution environments:
  idle instances do not hold capacity that requests of another function wait for. It
  then counts as idle past its timeout, so it stays there until demand returns.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Reason", "Sample", "ScaleDecision", "ScaleSpec", "ScaleStats", "decide"]

# Float arithmetic makes 7 / 0.7 come out as 10.000000000000002; without the slack,
# ceil would ask for an 11th instance nobody needs.
_EPSILON = 1e-9


class Reason(StrEnum):
    """Which rule settled the decision, for logs and tests."""

    STABLE = "stable"
    PANIC = "panic"
    HOLD = "hold"
    IDLE = "idle"
    MIN = "provisioned-minimum"
    MAX = "capped"
    RECLAIMED = "reclaimed-under-pressure"


#: Under pressure, how long a target must have had nothing in flight or waiting for its
#: instances to be reclaimed although its latest sample saw demand. Waiting for the next
#: sample instead held another function's requests up to a tick and a half: two
#: functions taking turns at 64 callers stalled 1-2 s at every turn. Long enough that a
#: function invoked back to back, idle only between a response and its next request,
#: keeps its instances.
RECLAIM_IDLE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class Sample:
    """What the invoke path saw for a target at ``at`` (seconds on the loop's clock):
    the most in flight and waiting since the previous sample, and for how long nothing
    has been in flight or waiting (0 while something is)."""

    at: float
    in_flight: int
    waiting: int
    ready: int
    idle_for: float = 0.0

    @property
    def demand(self) -> int:
        return self.in_flight + self.waiting


@dataclass(frozen=True, slots=True)
class ScaleSpec:
    """Configuration of one target, built from the catalog by ``autoscaler.specs``."""

    instance_concurrency: int = 1
    target_utilization: float = 0.7
    idle_timeout: float = 300.0
    min_instances: int = 0
    reserved_concurrency: int | None = None
    max_instances: int = 100
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0

    @property
    def target_per_instance(self) -> float:
        # Aiming below one request per instance would keep idle spares around for
        # concurrency-1 functions (Lambda's default): 1 x 0.7 is treated as 1.
        return max(1.0, self.instance_concurrency * self.target_utilization)

    @property
    def max_replicas(self) -> int:
        if self.reserved_concurrency is None:
            return self.max_instances
        # Reserved 5 with 2 per instance: ceil(5 / 2) = 3 instances, the last half used.
        reserved = math.ceil(self.reserved_concurrency / self.instance_concurrency)
        return min(self.max_instances, reserved)


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    replicas: int
    reason: Reason
    stable_desired: int
    panic_desired: int
    panic_until: float | None = None
    panic_peak: int = 0


@dataclass(frozen=True, slots=True)
class ScaleStats:
    """A target's recent samples plus the decider's own memory (last decision, panic).

    Samples older than ``window`` are dropped as new ones arrive; ``last_busy_at``
    outlives them because the idle timeout is usually longer than the window.
    """

    window: float = 60.0
    samples: tuple[Sample, ...] = ()
    last_busy_at: float | None = None
    replicas: int = 0
    panic_until: float | None = None
    panic_peak: int = 0

    def with_sample(self, sample: Sample) -> ScaleStats:
        kept = tuple(s for s in self.samples if s.at > sample.at - self.window)
        busy_at = sample.at if sample.demand > 0 else self.last_busy_at
        return dataclasses.replace(self, samples=(*kept, sample), last_busy_at=busy_at)

    def with_decision(self, decision: ScaleDecision) -> ScaleStats:
        # Reclaimed: forget the busy spell, or the next calm pass would hold an instance
        # again for the rest of the idle timeout, undoing the reclaim.
        busy_at = None if decision.reason is Reason.RECLAIMED else self.last_busy_at
        return dataclasses.replace(
            self,
            replicas=decision.replicas,
            panic_until=decision.panic_until,
            panic_peak=decision.panic_peak,
            last_busy_at=busy_at,
        )

    def average_demand(self, now: float, span: float) -> float:
        """Mean demand of the samples in ``(now - span, now]``, from the first busy one.

        The silence before a burst is left out, as Knative's windows start at the first
        data point after an idle spell: a burst of 10 after a quiet minute averages 10,
        not 10 / 60, so scaling from zero is not diluted. Silence after demand counts.
        """
        recent = [s.demand for s in self.samples if now - span < s.at <= now]
        first_busy = next((i for i, d in enumerate(recent) if d > 0), len(recent))
        busy_onwards = recent[first_busy:]
        return sum(busy_onwards) / len(busy_onwards) if busy_onwards else 0.0


def _instances_for(demand: float, per_instance: float) -> int:
    return max(0, math.ceil(demand / per_instance - _EPSILON))


def decide(
    stats: ScaleStats, spec: ScaleSpec, now: float, *, pressure: bool = False
) -> ScaleDecision:
    """The number of instances ``spec``'s target should run at ``now`` (``pressure``:
    starts of some target wait for capacity).

    Worked example, instance concurrency 10, utilization 0.7 (7 requests per instance),
    2 ready instances: the last minute averaged 12 requests, the last 6 s 40.
    stable = ceil(12 / 7) = 2; panic = ceil(40 / 7) = 6 ≥ 2 x 2 ready, so the target
    panics and runs max(2, 6) = 6, and keeps at least 6 until 60 s pass with the panic
    desire below 2x the ready count. Reserved concurrency 35 caps it at ceil(35 / 10) = 4.
    """
    cap = spec.max_replicas
    floor = min(spec.min_instances, cap)
    stable = _instances_for(stats.average_demand(now, spec.stable_window), spec.target_per_instance)
    panic = _instances_for(stats.average_demand(now, spec.panic_window), spec.target_per_instance)
    latest = stats.samples[-1] if stats.samples else None
    busy_now = latest is not None and latest.demand > 0
    idle_for = math.inf if stats.last_busy_at is None else now - stats.last_busy_at

    reclaimable = not busy_now or (latest is not None and latest.idle_for >= RECLAIM_IDLE_SECONDS)
    if pressure and reclaimable and stats.replicas > floor:
        return ScaleDecision(
            replicas=floor, reason=Reason.RECLAIMED, stable_desired=stable, panic_desired=panic
        )
    if not busy_now and idle_for >= spec.idle_timeout:
        # Idle long enough: down to the provisioned floor, even out of a panic, since a
        # target that saw nothing for the whole timeout is not in a burst any more.
        reason = Reason.MIN if floor > 0 else Reason.IDLE
        return ScaleDecision(
            replicas=floor, reason=reason, stable_desired=stable, panic_desired=panic
        )

    ready = latest.ready if latest is not None else 0
    was_panicking = stats.panic_until is not None and now < stats.panic_until
    panic_until = stats.panic_until if was_panicking else None
    if panic >= spec.panic_threshold * max(ready, 1):
        panic_until = now + spec.stable_window

    if panic_until is not None:
        # Entering panic starts the peak at the current decision: never below it.
        peak = stats.panic_peak if was_panicking else stats.replicas
        peak = max(peak, stable, panic)
        desired, reason, panic_peak = peak, Reason.PANIC, peak
    else:
        desired, reason, panic_peak = stable, Reason.STABLE, 0

    if desired == 0:
        # Busy within the idle timeout (or poked from zero): keep or start one instance.
        desired, reason = 1, Reason.HOLD
    if desired > cap:
        desired, reason = cap, Reason.MAX
    if desired < floor:
        desired, reason = floor, Reason.MIN
    return ScaleDecision(
        replicas=desired,
        reason=reason,
        stable_desired=stable,
        panic_desired=panic,
        panic_until=panic_until,
        panic_peak=panic_peak,
    )
