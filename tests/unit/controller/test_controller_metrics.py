"""Controller metrics: names, labels (namespace first), and forgetting a target's gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from controller.metrics import ControllerMetrics
from kubelambda.models import Target

TARGET = Target("shop", "orders", "3")
LABELS = {"namespace": "shop", "function": "orders", "version": "3"}


def test_a_decision_sets_desired_and_counts_a_change_by_direction() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)

    metrics.decided(TARGET, previous=0, replicas=2)
    metrics.decided(TARGET, previous=2, replicas=2)
    metrics.decided(TARGET, previous=2, replicas=1)

    assert registry.get_sample_value("kubelambda_instances_desired", LABELS) == 1
    assert [
        registry.get_sample_value("kubelambda_scale_decisions_total", LABELS | {"direction": d})
        for d in ("up", "down")
    ] == [1, 1]


def test_starts_are_counted_by_initialization_type_and_timed() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)

    metrics.started(TARGET, initialization_type="on-demand")
    metrics.became_ready(TARGET, seconds=0.3)

    assert (
        registry.get_sample_value(
            "kubelambda_instance_starts_total", LABELS | {"initialization_type": "on-demand"}
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "kubelambda_instance_start_duration_seconds_bucket", LABELS | {"le": "0.5"}
        )
        == 1
    )


def test_forget_drops_the_gauges_of_a_target() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    metrics.decided(TARGET, previous=0, replicas=1)
    metrics.ready_count(TARGET, 1)

    metrics.forget(TARGET)

    assert registry.get_sample_value("kubelambda_instances_desired", LABELS) is None
    assert registry.get_sample_value("kubelambda_instances_ready", LABELS) is None


def test_targets_of_one_name_in_two_namespaces_are_separate_series() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)

    metrics.decided(TARGET, previous=0, replicas=2)
    metrics.decided(Target("other", "orders", "3"), previous=0, replicas=5)

    assert registry.get_sample_value("kubelambda_instances_desired", LABELS) == 2
