"""The local backend within a host budget, with real agent processes: starts beyond it
wait, deferred starts go as capacity frees (oldest want first), fewer replicas cancel
them, and a function larger than the whole budget fails instead of waiting.

An agent each instance (``environments_per_agent=1``): the budget of agents hosting
several environments is ``test_local_backend_hosting``'s."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from controller_testkit import agent_pids, agents, runtimes
from prometheus_client import CollectorRegistry

from controller.backends.local import LocalProcessBackend
from controller.backends.local_capacity import Budget
from controller.metrics import ControllerMetrics
from kubelambda.models import FunctionVersion

PidsOf = Callable[[str], list[int]]
Until = Callable[[Callable[[], bool]], Awaitable[None]]
MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]

ROOMY_MEMORY = 100_000


@pytest.mark.parametrize(
    "concurrency",
    [1, 2],
    ids=["an agent and a runtime", "room for a runtime per unit of concurrency"],
)
async def test_instances_beyond_the_process_budget_are_not_started(
    concurrency: int,
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    pids_of: PidsOf,
) -> None:
    each = 1 + concurrency
    registry = CollectorRegistry()
    backend = new_backend(
        environments_per_agent=1,
        # Room for two instances and not quite three.
        budget=Budget(memory_mb=ROOMY_MEMORY, max_starting=4, max_processes=3 * each - 1),
        spare_agents=0,
        metrics=ControllerMetrics(registry),
    )
    version = make_version()
    labels = {"namespace": "default", "function": version.function_name, "version": "1"}

    await backend.scale(version, replicas=4, concurrency=concurrency)
    await until(lambda: backend.ready_instances(version.target) == 2)
    await asyncio.sleep(0.5)  # time enough for a third to show up, were it started
    pids = pids_of(version.function_name)

    # The budget keeps room for the runtimes an instance may start later.
    assert (agents(pids), runtimes(pids)) == (2, 2)
    assert set(backend.starts_deferred()) == {version.target}
    assert registry.get_sample_value("kubelambda_instance_starts_deferred", labels) == 2
    assert [
        registry.get_sample_value("kubelambda_capacity_in_use", {"resource": r})
        for r in ("processes", "memory_megabytes")
    ] == [2 * each, 2 * version.memory_size]


@pytest.mark.parametrize(
    ("max_processes", "spares_left"),
    [(20, 1), (18, 0)],
    ids=["the spare left fits beside it", "the spare left is stopped"],
)
async def test_spare_agents_give_way_to_an_instance_that_fits_the_budget_without_them(
    max_processes: int,
    spares_left: int,
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
) -> None:
    """Two spares (4 processes) and an instance of concurrency 16 (17) exceed the budget,
    the instance alone does not: it starts, taking a spare, the other stays only if it
    fits, and no top-up brings spares back past the budget (on a 1-core host's default
    of 20, such a function never started)."""
    registry = CollectorRegistry()
    backend = new_backend(
        budget=Budget(memory_mb=ROOMY_MEMORY, max_starting=2, max_processes=max_processes),
        spare_agents=2,
        metrics=ControllerMetrics(registry),
    )
    backend.start_spares()
    await until(lambda: len(agent_pids()) == 2)
    version = make_version()

    await backend.scale(version, replicas=1, concurrency=16)
    await until(lambda: backend.ready_instances(version.target) == 1)
    await until(lambda: len(agent_pids()) == 1 + spares_left)
    await asyncio.sleep(0.5)  # time enough for a top-up, were one made

    assert list(backend.starts_deferred()) == []
    assert len(agent_pids()) == 1 + spares_left
    in_use = registry.get_sample_value("kubelambda_capacity_in_use", {"resource": "processes"})
    assert in_use == 17 + 2 * spares_left


async def test_fewer_replicas_cancel_the_deferred_starts(
    new_backend: NewBackend, make_version: MakeVersion, until: Until, pids_of: PidsOf
) -> None:
    backend = new_backend(
        environments_per_agent=1,
        budget=Budget(memory_mb=ROOMY_MEMORY, max_starting=4, max_processes=4),
        spare_agents=0,
    )
    version = make_version()

    await backend.scale(version, replicas=4, concurrency=1)
    await backend.scale(version, replicas=2, concurrency=1)
    await until(lambda: backend.ready_instances(version.target) == 2)
    await asyncio.sleep(0.5)

    assert list(backend.starts_deferred()) == []
    assert agents(pids_of(version.function_name)) == 2


async def test_deferred_starts_go_as_starts_finish_without_another_scale_call(
    new_backend: NewBackend, make_version: MakeVersion, until: Until
) -> None:
    backend = new_backend(
        environments_per_agent=1,
        budget=Budget(memory_mb=ROOMY_MEMORY, max_starting=1, max_processes=10),
        spare_agents=0,
    )
    version = make_version()

    await backend.scale(version, replicas=3, concurrency=1)
    deferred_at_first = set(backend.starts_deferred())
    await until(lambda: backend.ready_instances(version.target) == 3)

    assert deferred_at_first == {version.target}
    assert list(backend.starts_deferred()) == []


async def test_memory_freed_by_a_stop_goes_to_the_oldest_deferred_start(
    new_backend: NewBackend, make_version: MakeVersion, until: Until, function_name: str
) -> None:
    backend = new_backend(
        environments_per_agent=1,
        budget=Budget(memory_mb=256, max_starting=4, max_processes=10),
        spare_agents=0,
    )
    first = make_version(memory_size=128)
    older = make_version(name=f"{function_name}-b", memory_size=128)
    newer = make_version(name=f"{function_name}-c", memory_size=128)

    await backend.scale(first, replicas=2, concurrency=1)
    await until(lambda: backend.ready_instances(first.target) == 2)
    await backend.scale(older, replicas=1, concurrency=1)
    await backend.scale(newer, replicas=1, concurrency=1)
    both_deferred = set(backend.starts_deferred())
    await backend.scale(first, replicas=1, concurrency=1)
    await until(lambda: backend.ready_instances(older.target) == 1)
    await asyncio.sleep(0.3)

    assert both_deferred == {older.target, newer.target}
    assert (backend.ready_instances(first.target), backend.ready_instances(newer.target)) == (1, 0)
    assert set(backend.starts_deferred()) == {newer.target}


async def test_a_function_larger_than_the_whole_budget_fails_instead_of_waiting(
    new_backend: NewBackend, make_version: MakeVersion, pids_of: PidsOf
) -> None:
    backend = new_backend(
        environments_per_agent=1, budget=Budget(memory_mb=256, max_starting=4, max_processes=10)
    )
    version = make_version(memory_size=512)

    await backend.scale(version, replicas=1, concurrency=1)
    failure = backend.start_failure(version.target)

    assert failure is not None
    assert not failure.retriable
    assert "MemorySize 512 MB" in failure.reason
    assert list(backend.starts_deferred()) == []
    assert pids_of(version.function_name) == []


async def test_closing_while_a_deferred_start_is_under_way_stops_it_too(
    new_backend: NewBackend, make_version: MakeVersion, pids_of: PidsOf
) -> None:
    """A stop signal while deferred starts are being admitted (a restart with queued
    events, say): the instance whose agent spawns after closing began is stopped with
    the others and nothing more starts; ``aclose`` does not wait on it for ever."""
    backend = new_backend(
        environments_per_agent=1,
        budget=Budget(memory_mb=ROOMY_MEMORY, max_starting=1, max_processes=8),
        spare_agents=0,
    )
    version = make_version()
    # The second start is held just before its agent spawns, until closing has begun.
    spawn = backend._spawn
    held, go_on = asyncio.Event(), asyncio.Event()
    spawns = 0

    async def spawn_second_late(*args: Any, **kwargs: Any) -> Any:
        nonlocal spawns
        spawns += 1
        if spawns == 2:
            held.set()
            await go_on.wait()
        return await spawn(*args, **kwargs)

    backend._spawn = spawn_second_late  # type: ignore[method-assign]
    await backend.scale(version, replicas=3, concurrency=1)
    await asyncio.wait_for(held.wait(), 20)  # admitted once the first was ready
    closing = asyncio.create_task(backend.aclose())
    await asyncio.sleep(0.1)
    go_on.set()

    await asyncio.wait_for(closing, 30)
    assert spawns == 2
    assert pids_of(version.function_name) == []
