"""Metric names and labels of the invoke path: bounded, with units, no request ids."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics, Outcome
from kubelambda.models import Target


def test_invocation_outcomes_are_labelled_by_function_and_version(
    registry: CollectorRegistry,
) -> None:
    metrics = GatewayMetrics(registry)
    metrics.target(Target("f", "2")).invoked(Outcome.FUNCTION_ERROR)
    labels = {"function": "f", "version": "2", "outcome": "function_error"}
    assert registry.get_sample_value("kubelambda_invocations_total", labels) == 1


def test_error_type_and_throttle_reason_labels(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    metrics.target(Target("f", "$LATEST")).function_error("Sandbox.Timedout")
    metrics.throttled("f", "ReservedFunctionConcurrentInvocationLimitExceeded")
    assert (
        registry.get_sample_value(
            "kubelambda_invocation_errors_total",
            {"function": "f", "version": "$LATEST", "error_type": "Sandbox.Timedout"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "kubelambda_throttles_total",
            {"function": "f", "reason": "ReservedFunctionConcurrentInvocationLimitExceeded"},
        )
        == 1
    )


def test_label_names_are_bounded(registry: CollectorRegistry) -> None:
    metrics = GatewayMetrics(registry)
    bound = metrics.target(Target("f", "1"))
    bound.duration_seconds.observe(0.01)
    bound.init_duration_seconds.observe(0.2)
    bound.concurrent.inc()
    bound.wait_seconds.observe(0.1)
    bound.waiting.set(1)
    allowed = {"function", "version", "outcome", "error_type", "reason", "le"}
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
    assert metrics.target(Target("f", "1")) is metrics.target(Target("f", "1"))
