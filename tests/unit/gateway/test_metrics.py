"""Metric names and labels of the invoke path: bounded, with units, no request ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics, Outcome
from kubelambda.models import FunctionKey, Target
from tests import factories


def test_invocation_outcomes_are_labelled_by_namespace_function_and_version(
    registry: CollectorRegistry,
) -> None:
    metrics = GatewayMetrics(registry)
    metrics.target(Target("team-a", "f", "2")).invoked(Outcome.FUNCTION_ERROR)
    labels = {"namespace": "team-a", "function": "f", "version": "2", "outcome": "function_error"}
    assert registry.get_sample_value("kubelambda_invocations_total", labels) == 1


def test_error_type_and_throttle_reason_labels(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.target(factories.target("f")).function_error("Sandbox.Timedout")
    metrics.throttled(
        FunctionKey("default", "f"), "ReservedFunctionConcurrentInvocationLimitExceeded"
    )
    assert (
        registry.get_sample_value(
            "kubelambda_invocation_errors_total",
            {
                "namespace": "default",
                "function": "f",
                "version": "$LATEST",
                "error_type": "Sandbox.Timedout",
            },
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "kubelambda_throttles_total",
            {
                "namespace": "default",
                "function": "f",
                "reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
            },
        )
        == 1
    )


def test_same_name_in_two_namespaces_is_counted_apart(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.target(Target("team-a", "f", "1")).invoked(Outcome.SUCCESS)
    metrics.target(Target("team-b", "f", "1")).invoked(Outcome.SUCCESS)
    metrics.target(Target("team-b", "f", "1")).invoked(Outcome.SUCCESS)
    counts = {
        namespace: registry.get_sample_value(
            "kubelambda_invocations_total",
            {"namespace": namespace, "function": "f", "version": "1", "outcome": "success"},
        )
        for namespace in ("team-a", "team-b")
    }
    assert counts == {"team-a": 1, "team-b": 2}


def test_label_names_are_bounded(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    bound = metrics.target(factories.target("f", "1"))
    bound.duration_seconds.observe(0.01)
    bound.init_duration_seconds.observe(0.2)
    bound.wait_seconds.observe(0.1)
    allowed = {"namespace", "function", "version", "outcome", "error_type", "reason", "le"}
    names = set()
    for family in registry.collect():
        assert family.name.startswith("kubelambda_")
        for sample in family.samples:
            names.add(sample.name)
            assert set(sample.labels) <= allowed
    assert {
        "kubelambda_invocation_duration_seconds_bucket",
        "kubelambda_init_duration_seconds_sum",
        "kubelambda_concurrent_executions",
        "kubelambda_activator_wait_seconds_count",
        "kubelambda_activator_waiting_requests",
    } <= names


def test_bound_children_are_cached_per_target(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    assert metrics.target(factories.target("f", "1")) is metrics.target(factories.target("f", "1"))


class _Counted:
    """A load source with fixed counts (what an activator reports)."""

    def __init__(self, loads: dict[Target, tuple[int, int]]) -> None:
        self.loads = loads

    def loaded_targets(self) -> list[Target]:
        return list(self.loads)

    def load(self, target: Target) -> tuple[int, int]:
        return self.loads.get(target, (0, 0))


def test_load_gauges_sum_the_sources_when_scraped(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    busy, idle, unbound = (factories.target(name, "1") for name in ("busy", "idle", "unbound"))
    metrics.target(busy)
    metrics.target(idle)
    first = _Counted({busy: (2, 1)})
    metrics.count_load_of(first)
    stop_second = metrics.count_load_of(_Counted({busy: (3, 0), unbound: (1, 4)}))

    def sample(name: str, target: Target) -> float | None:
        labels = {"namespace": target.namespace, "function": target.function_name, "version": "1"}
        return registry.get_sample_value(name, labels)

    assert sample("kubelambda_concurrent_executions", busy) == 5
    assert sample("kubelambda_activator_waiting_requests", busy) == 1
    # A bound target keeps its series at zero; an unbound one shows while it has load.
    assert sample("kubelambda_concurrent_executions", idle) == 0
    assert sample("kubelambda_activator_waiting_requests", unbound) == 4
    stop_second()
    first.loads[busy] = (1, 0)
    assert sample("kubelambda_concurrent_executions", busy) == 1
    assert sample("kubelambda_activator_waiting_requests", unbound) is None


def test_versions_that_left_the_catalog_lose_their_gauges_and_keep_their_totals(
    registry: CollectorRegistry,
) -> None:
    metrics = GatewayMetrics(registry)
    kept, deleted = factories.target("f", "1"), factories.target("f", "2")
    for target in (kept, deleted):
        metrics.target(target).invoked(Outcome.SUCCESS)

    metrics.retain({kept})

    def sample(name: str, version: str, **extra: str) -> float | None:
        labels = {"namespace": "default", "function": "f", "version": version, **extra}
        return registry.get_sample_value(name, labels)

    assert sample("kubelambda_concurrent_executions", "1") == 0
    assert sample("kubelambda_activator_waiting_requests", "1") == 0
    assert sample("kubelambda_concurrent_executions", "2") is None
    assert sample("kubelambda_activator_waiting_requests", "2") is None
    assert sample("kubelambda_invocations_total", "2", outcome="success") == 1
