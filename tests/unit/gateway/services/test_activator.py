"""The activator: immediate slots, the bounded FIFO, wake-ups and what it reports."""

from __future__ import annotations

import asyncio

import pytest
from gateway_fakes import RecordingSignals, Report, StaticEndpoints, endpoint
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from gateway.services.activator import Activator
from kubelambda import errors
from tests import factories

T = factories.target("f", "1")
REPORTER = "gateway-1"


def report(in_flight: int, waiting: int) -> Report:
    return Report(REPORTER, T, in_flight, waiting)


@pytest.fixture
def activator(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> Activator:
    return Activator(
        endpoints=endpoints,
        signals=signals,
        reporter=REPORTER,
        metrics=GatewayMetrics(registry),
        max_waiting=2,
    )


def _later(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def _until_waiting(activator: Activator, count: int) -> None:
    # The activator exposes counts, not events: let the waiters run until they queue.
    while activator.waiting(T) < count:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_free_slot_is_given_at_once_and_reported(
    activator: Activator, endpoints: StaticEndpoints, signals: RecordingSignals
) -> None:
    endpoints.ready[T] = [endpoint("a")]
    assert (await activator.acquire(T, deadline=_later())).instance_id == "a"
    assert signals.reports == [report(1, 0)]
    assert signals.pokes == []


async def test_waiter_pokes_and_is_woken_when_endpoint_appears(
    activator: Activator, endpoints: StaticEndpoints, signals: RecordingSignals
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    assert signals.pokes == [T]
    assert signals.reports[-1] == report(0, 1)
    endpoints.set_endpoints(T, [endpoint("a")])
    assert (await task).instance_id == "a"
    assert signals.reports[-1] == report(1, 0)


async def test_waiters_are_served_first_in_first_out_on_release(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    endpoints.ready[T] = [endpoint("a")]
    held = await activator.acquire(T, deadline=_later())
    order: list[str] = []

    async def waiter(name: str) -> None:
        got = await activator.acquire(T, deadline=_later())
        order.append(name)
        activator.release(got)

    tasks = [asyncio.create_task(waiter("first"))]
    await _until_waiting(activator, 1)
    tasks.append(asyncio.create_task(waiter("second")))
    await _until_waiting(activator, 2)
    activator.release(held)
    await asyncio.gather(*tasks)
    assert order == ["first", "second"]
    assert activator.in_flight(T) == 0


async def test_newcomer_does_not_overtake_waiters(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    endpoints.ready[T] = [endpoint("a")]
    held = await activator.acquire(T, deadline=_later())
    first = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    activator.release(held)
    newcomer = asyncio.create_task(activator.acquire(T, deadline=_later(0.05)))
    assert (await first).instance_id == "a"
    with pytest.raises(errors.TooManyRequests):
        await newcomer


async def test_full_queue_is_throttled_with_reason_and_retry_after(
    activator: Activator,
) -> None:
    tasks = [asyncio.create_task(activator.acquire(T, deadline=_later())) for _ in range(2)]
    await _until_waiting(activator, 2)
    with pytest.raises(errors.TooManyRequests) as caught:
        await activator.acquire(T, deadline=_later())
    assert caught.value.reason == "ConcurrentInvocationLimitExceeded"
    assert caught.value.to_wire()[1]["Retry-After"] == "1"
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_deadline_throttles_and_leaves_the_queue(
    activator: Activator, signals: RecordingSignals
) -> None:
    with pytest.raises(errors.TooManyRequests):
        await activator.acquire(T, deadline=_later(0.02))
    assert activator.waiting(T) == 0
    assert signals.reports[-1] == report(0, 0)


async def test_each_waiter_times_out_at_its_own_deadline_whatever_its_place(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    # A retry after a busy instance rejoins behind newer requests with its first,
    # earlier deadline; it must not wait for theirs.
    patient = asyncio.create_task(activator.acquire(T, deadline=_later(30)))
    await _until_waiting(activator, 1)
    started = asyncio.get_running_loop().time()
    with pytest.raises(errors.TooManyRequests):
        await activator.acquire(T, deadline=_later(0.05))
    assert asyncio.get_running_loop().time() - started < 5
    assert activator.waiting(T) == 1
    endpoints.set_endpoints(T, [endpoint("a")])
    assert (await patient).instance_id == "a"


async def test_a_later_waiter_outlives_the_deadline_of_one_served_before_it(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    first = asyncio.create_task(activator.acquire(T, deadline=_later(0.05)))
    await _until_waiting(activator, 1)
    second = asyncio.create_task(activator.acquire(T, deadline=_later(0.3)))
    await _until_waiting(activator, 2)
    endpoints.set_endpoints(T, [endpoint("a")])
    assert (await first).instance_id == "a"
    # The first waiter's deadline passes with the second still queued behind it.
    await asyncio.sleep(0.15)
    assert not second.done()
    assert activator.waiting(T) == 1
    with pytest.raises(errors.TooManyRequests):
        await second


async def test_cancelled_waiter_leaves_the_queue_without_leaking_a_slot(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert activator.waiting(T) == 0
    endpoints.set_endpoints(T, [endpoint("a")])
    assert activator.in_flight(T) == 0


async def test_waiter_cancelled_after_handoff_gives_the_slot_back(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    endpoints.set_endpoints(T, [endpoint("a")])  # hands the slot over...
    task.cancel()  # ...but the caller goes away before it resumes
    await asyncio.gather(task, return_exceptions=True)
    assert activator.in_flight(T) == 0


async def test_excluded_endpoint_is_not_given_and_does_not_block_others(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    endpoints.ready[T] = [endpoint("a"), endpoint("b")]
    held = await activator.acquire(T, deadline=_later(), exclude={"a"})
    assert held.instance_id == "b"
    excluding = asyncio.create_task(activator.acquire(T, deadline=_later(0.05), exclude={"a"}))
    await _until_waiting(activator, 1)
    assert (await activator.acquire(T, deadline=_later())).instance_id == "a"
    with pytest.raises(errors.TooManyRequests):
        await excluding


async def test_wait_time_is_observed(
    activator: Activator, endpoints: StaticEndpoints, registry: CollectorRegistry
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    endpoints.set_endpoints(T, [endpoint("a")])
    await task
    labels = {"namespace": "default", "function": "f", "version": "1"}
    assert registry.get_sample_value("kubelambda_activator_wait_seconds_count", labels) == 1
    assert registry.get_sample_value("kubelambda_activator_waiting_requests", labels) == 0


async def test_waiter_passed_over_for_an_excluded_endpoint_keeps_its_place(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    endpoints.ready[T] = [endpoint("a"), endpoint("b")]
    held_a = await activator.acquire(T, deadline=_later())
    held_b = await activator.acquire(T, deadline=_later())
    excluding = asyncio.create_task(activator.acquire(T, deadline=_later(), exclude={"a"}))
    await _until_waiting(activator, 1)
    plain = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 2)
    activator.release(held_a)
    assert (await plain).instance_id == "a"
    assert activator.waiting(T) == 1
    activator.release(held_b)
    assert (await excluding).instance_id == "b"


async def test_reports_carry_each_gateways_reporter_id(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    metrics = GatewayMetrics(registry)
    first, second = (
        Activator(
            endpoints=endpoints, signals=signals, reporter=name, metrics=metrics, max_waiting=2
        )
        for name in ("gateway-a", "gateway-b")
    )
    endpoints.ready[T] = [endpoint("a", concurrency=2)]
    held = await first.acquire(T, deadline=_later())
    await second.acquire(T, deadline=_later())
    first.release(held)
    assert signals.reports == [
        Report("gateway-a", T, 1, 0),
        Report("gateway-b", T, 1, 0),
        Report("gateway-a", T, 0, 0),
    ]


async def test_concurrency_gauge_follows_slots_taken_and_given_back(
    activator: Activator, endpoints: StaticEndpoints, registry: CollectorRegistry
) -> None:
    endpoints.ready[T] = [endpoint("a", concurrency=2)]
    labels = {"namespace": "default", "function": "f", "version": "1"}
    held = [await activator.acquire(T, deadline=_later()) for _ in range(2)]
    assert registry.get_sample_value("kubelambda_concurrent_executions", labels) == 2
    activator.release(held[0])
    assert registry.get_sample_value("kubelambda_concurrent_executions", labels) == 1


async def test_close_stops_listening_and_cancels_waiters(
    activator: Activator, endpoints: StaticEndpoints
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    activator.close()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert endpoints.listeners == 0
