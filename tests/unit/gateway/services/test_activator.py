"""The activator: immediate slots, the bounded FIFO, wake-ups and what it reports."""

from __future__ import annotations

import asyncio

import pytest
from gateway_fakes import RecordingSignals, StaticBackend, endpoint
from prometheus_client import CollectorRegistry

from gateway.metrics import GatewayMetrics
from gateway.services.activator import Activator
from kubelambda import errors
from kubelambda.models import Target

T = Target("f", "1")


@pytest.fixture
def activator(
    backend: StaticBackend, signals: RecordingSignals, registry: CollectorRegistry
) -> Activator:
    return Activator(
        backend=backend, signals=signals, metrics=GatewayMetrics(registry), max_waiting=2
    )


def _later(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def _until_waiting(activator: Activator, count: int) -> None:
    # The activator exposes counts, not events: let the waiters run until they queue.
    while activator.waiting(T) < count:  # noqa: ASYNC110
        await asyncio.sleep(0)


async def test_free_slot_is_given_at_once_and_reported(
    activator: Activator, backend: StaticBackend, signals: RecordingSignals
) -> None:
    backend.ready[T] = [endpoint("a")]
    assert (await activator.acquire(T, deadline=_later())).instance_id == "a"
    assert signals.reports == [(T, 1, 0)]
    assert signals.pokes == []


async def test_waiter_pokes_and_is_woken_when_endpoint_appears(
    activator: Activator, backend: StaticBackend, signals: RecordingSignals
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    assert signals.pokes == [T]
    assert signals.reports[-1] == (T, 0, 1)
    backend.set_endpoints(T, [endpoint("a")])
    assert (await task).instance_id == "a"
    assert signals.reports[-1] == (T, 1, 0)


async def test_waiters_are_served_first_in_first_out_on_release(
    activator: Activator, backend: StaticBackend
) -> None:
    backend.ready[T] = [endpoint("a")]
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
    activator: Activator, backend: StaticBackend
) -> None:
    backend.ready[T] = [endpoint("a")]
    held = await activator.acquire(T, deadline=_later())
    first = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    activator.release(held)
    newcomer = asyncio.create_task(activator.acquire(T, deadline=_later(0.05)))
    assert (await first).instance_id == "a"
    with pytest.raises(errors.TooManyRequests):
        await newcomer


async def test_full_queue_is_throttled_with_reason(
    activator: Activator, registry: CollectorRegistry
) -> None:
    tasks = [asyncio.create_task(activator.acquire(T, deadline=_later())) for _ in range(2)]
    await _until_waiting(activator, 2)
    with pytest.raises(errors.TooManyRequests) as caught:
        await activator.acquire(T, deadline=_later())
    assert caught.value.reason == "ConcurrentInvocationLimitExceeded"
    assert (
        registry.get_sample_value(
            "kubelambda_throttles_total",
            {"function": "f", "reason": "ConcurrentInvocationLimitExceeded"},
        )
        == 1
    )
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_deadline_throttles_and_leaves_the_queue(
    activator: Activator, signals: RecordingSignals
) -> None:
    with pytest.raises(errors.TooManyRequests):
        await activator.acquire(T, deadline=_later(0.02))
    assert activator.waiting(T) == 0
    assert signals.reports[-1] == (T, 0, 0)


async def test_cancelled_waiter_leaves_the_queue_without_leaking_a_slot(
    activator: Activator, backend: StaticBackend
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert activator.waiting(T) == 0
    backend.set_endpoints(T, [endpoint("a")])
    assert activator.in_flight(T) == 0


async def test_waiter_cancelled_after_handoff_gives_the_slot_back(
    activator: Activator, backend: StaticBackend
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    backend.set_endpoints(T, [endpoint("a")])  # hands the slot over...
    task.cancel()  # ...but the caller goes away before it resumes
    await asyncio.gather(task, return_exceptions=True)
    assert activator.in_flight(T) == 0


async def test_excluded_endpoint_is_not_given_and_does_not_block_others(
    activator: Activator, backend: StaticBackend
) -> None:
    backend.ready[T] = [endpoint("a"), endpoint("b")]
    held = await activator.acquire(T, deadline=_later(), exclude={"a"})
    assert held.instance_id == "b"
    excluding = asyncio.create_task(activator.acquire(T, deadline=_later(0.05), exclude={"a"}))
    await _until_waiting(activator, 1)
    assert (await activator.acquire(T, deadline=_later())).instance_id == "a"
    with pytest.raises(errors.TooManyRequests):
        await excluding


async def test_wait_time_is_observed(
    activator: Activator, backend: StaticBackend, registry: CollectorRegistry
) -> None:
    task = asyncio.create_task(activator.acquire(T, deadline=_later()))
    await _until_waiting(activator, 1)
    backend.set_endpoints(T, [endpoint("a")])
    await task
    labels = {"function": "f", "version": "1"}
    assert registry.get_sample_value("kubelambda_activator_wait_seconds_count", labels) == 1
    assert registry.get_sample_value("kubelambda_activator_waiting_requests", labels) == 0


async def test_waiter_passed_over_for_an_excluded_endpoint_keeps_its_place(
    activator: Activator, backend: StaticBackend
) -> None:
    backend.ready[T] = [endpoint("a"), endpoint("b")]
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
