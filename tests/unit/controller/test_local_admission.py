"""Deferred starts of the local backend: FIFO across targets, cancelled by a smaller
want, not confused with a failure's back-off, and shown in metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from controller.backends.local_admission import Admission, Running
from controller.backends.local_capacity import Budget, Usage
from controller.metrics import ControllerMetrics
from kubelambda.models import FunctionVersion, Target
from tests import factories

A = factories.function_version("a", "1")
B = factories.function_version("b", "1")
C = factories.function_version("c", "1")


def never(target: Target) -> bool:
    return False


def granted(admission: Admission, *, now: float, usage: Usage | None = None) -> dict[str, int]:
    grants = admission.grants(usage or Usage(), {}, now=now, backing_off=never)
    return {want.version.function_name: count for want, count in grants}


def one_at_a_time() -> Admission:
    return Admission(Budget(memory_mb=100_000, max_starting=1, max_processes=100))


def want(admission: Admission, version: FunctionVersion, replicas: int) -> None:
    admission.want(version, replicas=replicas, concurrency=1, provisioned=0)


def test_deferred_starts_go_oldest_want_first_across_targets() -> None:
    admission = one_at_a_time()
    for at, version in ((1.0, B), (2.0, A), (3.0, C)):
        want(admission, version, 1)
        # Each call finds the one start slot taken: everything stays deferred.
        admission.grants(Usage(starting=1, processes=2), {}, now=at, backing_off=never)

    order = []
    for now in (4.0, 5.0, 6.0):
        started = granted(admission, now=now)
        order += started
        for name in started:
            want(admission, {"a": A, "b": B, "c": C}[name], 0)

    assert order == ["b", "a", "c"]


def test_a_later_call_keeps_its_place_in_the_queue() -> None:
    admission = one_at_a_time()
    want(admission, A, 2)
    admission.grants(Usage(starting=1), {}, now=1.0, backing_off=never)
    want(admission, B, 1)
    admission.grants(Usage(starting=1), {}, now=2.0, backing_off=never)
    want(admission, A, 3)  # more of the same: still the oldest want

    assert granted(admission, now=3.0) == {"a": 1}


def test_fewer_replicas_cancel_deferred_starts() -> None:
    admission = one_at_a_time()
    want(admission, A, 3)
    admission.grants(Usage(starting=1), {}, now=1.0, backing_off=never)
    deferred_before = set(admission.deferred())
    want(admission, A, 1)
    grants = admission.grants(
        Usage(starting=1), {A.target: Running(1, 0)}, now=2.0, backing_off=never
    )

    assert (deferred_before, grants, set(admission.deferred())) == ({A.target}, [], set())


def test_a_target_backing_off_after_failures_is_not_deferred_nor_in_the_way() -> None:
    admission = one_at_a_time()
    want(admission, A, 1)
    want(admission, B, 1)
    grants = admission.grants(Usage(), {}, now=1.0, backing_off=lambda t: t == A.target)

    assert ([w.version.target for w, _ in grants], set(admission.deferred())) == ([B.target], set())


def test_an_instance_counts_its_agent_and_a_runtime_per_unit_of_concurrency() -> None:
    admission = Admission(Budget(memory_mb=100_000, max_starting=10, max_processes=18))
    admission.want(A, replicas=3, concurrency=8, provisioned=0)

    assert granted(admission, now=1.0) == {"a": 2}
    assert set(admission.deferred()) == {A.target}


def test_deferred_counts_and_the_budget_show_in_metrics() -> None:
    registry = CollectorRegistry()
    admission = Admission(
        Budget(memory_mb=1024, max_starting=2, max_processes=16),
        metrics=ControllerMetrics(registry),
    )
    want(admission, A, 5)  # 128 MB each
    usage = Usage(memory_mb=768, starting=0, processes=12)
    admission.grants(usage, {A.target: Running(1, 0)}, now=1.0, backing_off=never)
    admission.report(usage)
    labels = {"namespace": "default", "function": "a", "version": "1"}

    def value(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, extra or labels)

    assert value("kubelambda_instance_starts_deferred") == 2  # 4 missing, 2 fit in memory
    assert [
        (
            value("kubelambda_capacity_limit", resource=r),
            value("kubelambda_capacity_in_use", resource=r),
        )
        for r in ("memory_megabytes", "starting_instances", "processes")
    ] == [(1024, 768), (2, 0), (16, 12)]
