"""Prometheus metrics of the controller: instances wanted and ready, starts, failures.

The autoscaler loop records decisions, desired counts and instances it reclaimed under
pressure; instance backends record starts (spawn to ready), readiness, failures and
starts deferred for want of capacity (the local backend: the host's budget; Kubernetes:
pods the scheduler cannot place). The local backend also shows its budget and what is
in use of it, by resource. Labels are namespace, function and
version only (plus a small fixed set of enum values), and ``forget`` removes a target's series when
it leaves the catalog, so the label space stays as small as the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubelambda.models import Target

__all__ = ["CAPACITY_RESOURCES", "ControllerMetrics"]

#: The ``resource`` label of the capacity gauges.
CAPACITY_RESOURCES = ("memory_megabytes", "starting_instances", "processes")

# Cold starts run from a few tens of milliseconds (python, no dependencies) to tens of
# seconds (large packages, slow init code).
_START_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("namespace", "function", "version")
        self.instances_desired = Gauge(
            "kubelambda_instances_desired",
            "Instances the autoscaler wants for a version.",
            labels,
            registry=registry,
        )
        self.instances_ready = Gauge(
            "kubelambda_instances_ready",
            "Instances of a version ready to take invocations.",
            labels,
            registry=registry,
        )
        self.scale_decisions = Counter(
            "kubelambda_scale_decisions_total",
            "Changes of a version's desired instances, by direction (up, down).",
            (*labels, "direction"),
            registry=registry,
        )
        self.instance_starts = Counter(
            "kubelambda_instance_starts_total",
            "Instances started (cold starts), by initialization type.",
            (*labels, "initialization_type"),
            registry=registry,
        )
        self.instance_start_seconds = Histogram(
            "kubelambda_instance_start_duration_seconds",
            "Time from spawning an instance to it being ready.",
            labels,
            buckets=_START_BUCKETS,
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "kubelambda_reconcile_errors_total",
            "Controller work that failed and will be retried, by reconciler "
            "(autoscaler, packages).",
            ("reconciler",),
            registry=registry,
        )
        self.instance_failures = Counter(
            "kubelambda_instance_failures_total",
            "Instances that failed to start or exited unexpectedly, by reason.",
            (*labels, "reason"),
            registry=registry,
        )

        self.instance_starts_deferred = Gauge(
            "kubelambda_instance_starts_deferred",
            "Instances a version should run that wait for capacity: the host's budget in "
            "embedded mode, pods Pending as Unschedulable in Kubernetes mode. Not failures.",
            labels,
            registry=registry,
        )
        self.instances_reclaimed = Counter(
            "kubelambda_instances_reclaimed_total",
            "Idle instances stopped before their idle timeout to make room for starts "
            "that were deferred.",
            labels,
            registry=registry,
        )
        self.capacity_limit = Gauge(
            "kubelambda_capacity_limit",
            "The embedded host's budget for instances, by resource (memory_megabytes, "
            "starting_instances, processes: agents and their runtimes).",
            ("resource",),
            registry=registry,
        )
        self.capacity_in_use = Gauge(
            "kubelambda_capacity_in_use",
            "What instances (and spare agents, for processes) take of the embedded "
            "host's budget, by resource.",
            ("resource",),
            registry=registry,
        )

    def decided(self, target: Target, *, previous: int, replicas: int) -> None:
        self.instances_desired.labels(*_labels(target)).set(replicas)
        if replicas != previous:
            direction = "up" if replicas > previous else "down"
            self.scale_decisions.labels(*_labels(target), direction).inc()

    def started(self, target: Target, *, initialization_type: str) -> None:
        self.instance_starts.labels(*_labels(target), initialization_type).inc()

    def became_ready(self, target: Target, *, seconds: float) -> None:
        self.instance_start_seconds.labels(*_labels(target)).observe(seconds)

    def ready_count(self, target: Target, count: int) -> None:
        self.instances_ready.labels(*_labels(target)).set(count)

    def failed(self, target: Target, *, reason: str) -> None:
        self.instance_failures.labels(*_labels(target), reason).inc()

    def deferred_count(self, target: Target, count: int) -> None:
        self.instance_starts_deferred.labels(*_labels(target)).set(count)

    def reclaimed(self, target: Target, *, count: int) -> None:
        self.instances_reclaimed.labels(*_labels(target)).inc(count)

    def capacity(self, *, limits: Mapping[str, int], in_use: Mapping[str, int]) -> None:
        """The budget and its use, keyed by the names in ``CAPACITY_RESOURCES``."""
        for resource in CAPACITY_RESOURCES:
            self.capacity_limit.labels(resource).set(limits[resource])
            self.capacity_in_use.labels(resource).set(in_use[resource])

    def reconcile_failed(self, reconciler: str) -> None:
        self.reconcile_errors.labels(reconciler).inc()

    def forget(self, target: Target) -> None:
        """Drop the gauges of a target that left the catalog; counters keep their totals."""
        for gauge in (
            self.instances_desired,
            self.instances_ready,
            self.instance_starts_deferred,
        ):
            try:
                gauge.remove(*_labels(target))
            except KeyError:
                continue


def _labels(target: Target) -> tuple[str, str, str]:
    return (target.namespace, target.function_name, target.version)
