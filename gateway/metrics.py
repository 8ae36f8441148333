"""Prometheus metrics of the invoke path: invocations, errors, throttles, durations,
concurrency and the activator's queue.

Created once per process with the registry the gateway exposes, and handed to the
metered invoker and the activator. Labels are bounded: function and version come from the
catalog (never from a caller's unresolved input), error types are reduced to a fixed
set, and request ids never appear. Label children are cached per target, because
looking them up on every request costs more than the increment itself. The in-flight and
waiting gauges are read from the activators when Prometheus scrapes, not set on every
change: two sets per slot taken and two per slot given back were the largest metrics
cost of an invoke.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from enum import StrEnum
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from kubelambda.models import FunctionKey, Target

__all__ = ["AsyncMetrics", "GatewayMetrics", "LoadSource", "Outcome", "TargetMetrics"]

# Invocations run from a millisecond to 15 minutes; activator waits up to a minute.
_DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
)
_INIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
# Async events wait from milliseconds to the six-hour maximum event age.
_EVENT_AGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0)
_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Outcome(StrEnum):
    """How an invocation of a resolved target ended."""

    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"
    THROTTLED = "throttled"
    FAILED = "failed"  # the platform could not run it (instance unreachable, ...)


class LoadSource(Protocol):
    """What an activator counts, read by the gauges when Prometheus scrapes."""

    def loaded_targets(self) -> Collection[Target]:
        """The targets with requests in flight or waiting now."""
        ...

    def load(self, target: Target) -> tuple[int, int]:
        """``target``'s requests in flight and waiting."""
        ...


class TargetMetrics:
    """The label children of one function version, bound once."""

    def __init__(self, metrics: GatewayMetrics, target: Target) -> None:
        labels = (target.namespace, target.function_name, target.version)
        self._metrics = metrics
        self._labels = labels
        self.wait_seconds = metrics.activator_wait_seconds.labels(*labels)
        self.duration_seconds = metrics.duration_seconds.labels(*labels)
        self.init_duration_seconds = metrics.init_duration_seconds.labels(*labels)
        self._outcomes = {
            outcome: metrics.invocations.labels(*labels, outcome.value) for outcome in Outcome
        }

    def invoked(self, outcome: Outcome) -> None:
        self._outcomes[outcome].inc()

    def function_error(self, error_type: str) -> None:
        self._metrics.errors.labels(*self._labels, error_type).inc()


class GatewayMetrics:
    """All invoke-path metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        by_version = ("namespace", "function", "version")
        self.invocations = Counter(
            "kubelambda_invocations",
            "Invocations of a function version, by outcome.",
            (*by_version, "outcome"),
            registry=registry,
        )
        self.errors = Counter(
            "kubelambda_invocation_errors",
            "Function errors, by error type (platform types, else Unhandled).",
            (*by_version, "error_type"),
            registry=registry,
        )
        self.throttles = Counter(
            "kubelambda_throttles",
            "Invocations refused with 429, by reason.",
            ("namespace", "function", "reason"),
            registry=registry,
        )
        self.duration_seconds = Histogram(
            "kubelambda_invocation_duration_seconds",
            "Time the function ran, as its instance measured it.",
            by_version,
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.init_duration_seconds = Histogram(
            "kubelambda_init_duration_seconds",
            "Cold-start initialisation time reported by instances.",
            by_version,
            buckets=_INIT_BUCKETS,
            registry=registry,
        )
        self.activator_wait_seconds = Histogram(
            "kubelambda_activator_wait_seconds",
            "How long requests were held by the activator before they got capacity.",
            by_version,
            buckets=_WAIT_BUCKETS,
            registry=registry,
        )
        self._targets: dict[Target, TargetMetrics] = {}
        self._loads: list[LoadSource] = []
        registry.register(_LoadCollector(self))

    def count_load_of(self, source: LoadSource) -> Callable[[], None]:
        """Show ``source``'s counts in the concurrency and waiting gauges, summed with
        the other sources'. Returns a function that stops counting it."""
        self._loads.append(source)
        return lambda: self._loads.remove(source)

    def load(self) -> dict[Target, tuple[int, int]]:
        """In-flight and waiting requests of every target bound here or loaded now,
        summed over the sources. Called from a scrape, maybe on another thread: it
        copies what it walks."""
        sources = list(self._loads)
        targets = set(list(self._targets))
        for source in sources:
            targets.update(source.loaded_targets())
        loads: dict[Target, tuple[int, int]] = {}
        for target in targets:
            counts = [source.load(target) for source in sources]
            loads[target] = (sum(c[0] for c in counts), sum(c[1] for c in counts))
        return loads

    def target(self, target: Target) -> TargetMetrics:
        bound = self._targets.get(target)
        if bound is None:
            bound = self._targets[target] = TargetMetrics(self, target)
        return bound

    def retain(self, targets: Collection[Target]) -> None:
        """Only ``targets`` exist now (the catalog's versions): the others bound here lose
        their gauge series, as the controller's do, while their counters and histograms
        keep their totals. A deleted version's zeros would otherwise stay in every scrape,
        one more per version ever served."""
        for target in [t for t in self._targets if t not in targets]:
            del self._targets[target]

    def throttled(self, function: FunctionKey, reason: str) -> None:
        self.throttles.labels(function.namespace, function.name, reason).inc()


class _LoadCollector(Collector):
    """The in-flight and waiting gauges, read at scrape time. A target bound in the
    metrics keeps its series (at zero), as a gauge child would, until ``retain`` drops it."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        by_version = ["namespace", "function", "version"]
        concurrent = GaugeMetricFamily(
            "kubelambda_concurrent_executions",
            "Invocations in flight to instances, per function version.",
            labels=by_version,
        )
        waiting = GaugeMetricFamily(
            "kubelambda_activator_waiting_requests",
            "Requests held by the activator until capacity frees up.",
            labels=by_version,
        )
        for target, (in_flight, held) in self._metrics.load().items():
            labels = [target.namespace, target.function_name, target.version]
            concurrent.add_metric(labels, in_flight)
            waiting.add_metric(labels, held)
        yield concurrent
        yield waiting


class AsyncMetrics:
    """Asynchronous invocation metrics (DESIGN.md §5), labelled by namespace and function.

    Received is counted by the gateway once the queue made an event durable; the rest by
    the dispatcher. ``event_age_seconds`` is Lambda's ``AsyncEventAge``: how old an event
    was when an attempt started; ``pending`` counts events the dispatcher holds
    (delivered and not yet completed).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        by_function = ("namespace", "function")
        self.received = Counter(
            "kubelambda_async_events_received",
            "Event invocations accepted (durable in the queue, answered 202).",
            by_function,
            registry=registry,
        )
        self.retried = Counter(
            "kubelambda_async_events_retried",
            "Attempts scheduled again after a function error, throttle or system error.",
            by_function,
            registry=registry,
        )
        self.dropped = Counter(
            "kubelambda_async_events_dropped",
            "Events whose processing ended without success, by reason.",
            (*by_function, "reason"),
            registry=registry,
        )
        self.dead_lettered = Counter(
            "kubelambda_async_events_dead_lettered",
            "Events written to a dead-letter topic.",
            by_function,
            registry=registry,
        )
        self.destination_failures = Counter(
            "kubelambda_async_destination_delivery_failures",
            "Destination records that could not be delivered, by destination kind.",
            (*by_function, "destination"),
            registry=registry,
        )
        self.event_age_seconds = Histogram(
            "kubelambda_async_event_age_seconds",
            "Time from acceptance to the start of an attempt (AsyncEventAge).",
            by_function,
            buckets=_EVENT_AGE_BUCKETS,
            registry=registry,
        )
        self.oldest_event_age_seconds = Gauge(
            "kubelambda_async_oldest_event_age_seconds",
            "Age of the oldest event the dispatcher holds for a function (0 when none).",
            by_function,
            registry=registry,
        )
        self.pending = Gauge(
            "kubelambda_async_events_pending",
            "Events delivered to the dispatcher and not yet completed.",
            by_function,
            registry=registry,
        )
        self.consume_failures = Counter(
            "kubelambda_async_consume_failures",
            "Times the dispatcher's consuming of the queue failed and started over (a "
            "rising count: accepted events are not being dispatched).",
            registry=registry,
        )
