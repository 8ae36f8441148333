"""Several execution environments of a function in one agent (the embedded default),
with real processes: a scale-up places environments in a running agent before it starts
another (as many as its runtimes fit, whatever their concurrency), a scale-down gives
them up (whole agents first, newest first), the endpoint's concurrency is what the
environments placed take at once, provisioned environments keep an agent each, the agent
is told how many it hosts (it stops the runtimes of those it gave up at once, and takes
no more invocations than they do), and an agent killed takes all its environments, which
the next scale call brings back."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import Awaitable, Callable

import pytest
from controller_testkit import Invoke, agent_pid, agents, runtimes
from prometheus_client import CollectorRegistry

from controller.backends.local import LocalProcessBackend
from controller.metrics import ControllerMetrics
from kubelambda.models import FunctionVersion

PidsOf = Callable[[str], list[int]]
Until = Callable[[Callable[[], bool]], Awaitable[None]]
MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]


async def scaled(
    backend: LocalProcessBackend,
    version: FunctionVersion,
    replicas: int,
    until: Until,
    *,
    provisioned: int = 0,
    concurrency: int = 1,
) -> None:
    """Scale ``version`` to ``replicas`` environments, all of them ready."""
    await backend.scale(
        version, replicas=replicas, concurrency=concurrency, provisioned=provisioned
    )
    await until(lambda: backend.ready_instances(version.target) == replicas)


async def test_a_scale_up_fills_the_running_agent_before_it_starts_another(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    backend = new_backend(environments_per_agent=3, spare_agents=0)
    version = make_version()
    target = version.target
    await scaled(backend, version, 1, until)
    [first] = backend.endpoints(target)

    await backend.scale(version, replicas=3, concurrency=1)
    grown_at_once = backend.endpoints(target)
    answers = await asyncio.gather(*(invoke(first, {"sleep": 0.3}) for _ in range(3)))
    await scaled(backend, version, 5, until)

    assert grown_at_once == (dataclasses.replace(first, concurrency=3),)
    # Three environments, three runtimes, one agent.
    assert [a.status_code for a in answers] == [200] * 3
    assert len({a.json()["pid"] for a in answers}) == 3
    assert sorted(e.concurrency for e in backend.endpoints(target)) == [2, 3]
    assert agents(pids_of(version.function_name)) == 2


async def test_environments_of_concurrency_2_fill_an_agent_by_its_runtimes(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    # Four runtimes an agent: two environments of concurrency 2.
    backend = new_backend(environments_per_agent=4, spare_agents=0)
    version = make_version()
    target = version.target

    await scaled(backend, version, 2, until, concurrency=2)
    [endpoint] = backend.endpoints(target)
    answers = await asyncio.gather(*(invoke(endpoint, {"sleep": 0.3}) for _ in range(4)))
    await scaled(backend, version, 3, until, concurrency=2)

    assert endpoint.concurrency == 4
    assert [a.status_code for a in answers] == [200] * 4
    assert len({a.json()["pid"] for a in answers}) == 4
    assert sorted(e.concurrency for e in backend.endpoints(target)) == [2, 4]
    assert agents(pids_of(version.function_name)) == 2


async def test_a_scale_down_stops_the_newest_agent_then_shrinks_the_next(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    backend = new_backend(environments_per_agent=3, spare_agents=0)
    version = make_version()
    target = version.target
    await scaled(backend, version, 3, until)
    [oldest] = backend.endpoints(target)
    await scaled(backend, version, 5, until)

    await backend.scale(version, replicas=2, concurrency=1)
    left = backend.endpoints(target)
    await until(lambda: agents(pids_of(version.function_name)) == 1)
    answer = await invoke(left[0], {})
    await backend.scale(version, replicas=0, concurrency=1)
    await until(lambda: not pids_of(version.function_name))

    assert left == (dataclasses.replace(oldest, concurrency=2),)
    assert answer.status_code == 200
    assert backend.endpoints(target) == ()


async def test_provisioned_environments_keep_an_agent_each(
    new_backend: NewBackend, make_version: MakeVersion, until: Until, invoke: Invoke
) -> None:
    backend = new_backend(environments_per_agent=4, spare_agents=0)
    version = make_version()
    target = version.target

    await scaled(backend, version, 4, until, provisioned=2)
    endpoints = sorted(backend.endpoints(target), key=lambda e: e.concurrency)
    kinds = [(await invoke(e, {})).json()["initialization_type"] for e in endpoints[:2]]

    assert [e.concurrency for e in endpoints] == [1, 1, 2]
    assert kinds == ["provisioned-concurrency"] * 2


async def test_a_shrink_stops_the_idle_runtimes_it_gave_up_and_frees_their_budget(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    registry = CollectorRegistry()
    backend = new_backend(
        environments_per_agent=4, spare_agents=0, metrics=ControllerMetrics(registry)
    )
    version = make_version()
    target = version.target

    def in_use() -> list[float | None]:
        return [
            registry.get_sample_value("kubelambda_capacity_in_use", {"resource": r})
            for r in ("processes", "memory_megabytes")
        ]

    await scaled(backend, version, 3, until)
    [endpoint] = backend.endpoints(target)
    await asyncio.gather(*(invoke(endpoint, {"sleep": 0.3}) for _ in range(3)))
    grown = (in_use(), runtimes(pids_of(version.function_name)))
    await backend.scale(version, replicas=1, concurrency=1)
    shrunk = in_use()
    # Not after the idle timeout (300 s): the agent is told, and stops them at once.
    await until(lambda: runtimes(pids_of(version.function_name)) == 1)
    [left] = backend.endpoints(target)
    refused = await asyncio.gather(*(invoke(left, {"sleep": 0.3}) for _ in range(2)))

    memory = version.memory_size
    assert grown == ([1 + 3, 3 * memory], 3)
    assert shrunk == [1 + 1, memory]
    # The agent takes no more than the one environment left, whoever asks.
    assert sorted(r.status_code for r in refused) == [200, 503]


@pytest.mark.parametrize(("concurrency", "environments"), [(1, 3), (2, 2)])
async def test_an_agent_killed_takes_every_environment_it_hosts_and_they_come_back(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
    concurrency: int,
    environments: int,
) -> None:
    backend = new_backend(environments_per_agent=4, spare_agents=0)
    version = make_version()
    target = version.target
    slots = concurrency * environments
    await scaled(backend, version, environments, until, concurrency=concurrency)
    [endpoint] = backend.endpoints(target)
    await asyncio.gather(*(invoke(endpoint, {"sleep": 0.3}) for _ in range(slots)))
    killed = agent_pid(pids_of(version.function_name))

    os.kill(killed, signal.SIGKILL)
    await until(lambda: backend.endpoints(target) == ())
    # Its runtimes die with it: nothing of the function is left running.
    await until(lambda: not pids_of(version.function_name))
    await scaled(backend, version, environments, until, concurrency=concurrency)
    [again] = backend.endpoints(target)
    answers = await asyncio.gather(*(invoke(again, {"sleep": 0.3}) for _ in range(slots)))

    assert again.instance_id != endpoint.instance_id
    assert again.concurrency == slots
    assert [a.status_code for a in answers] == [200] * slots
    assert agent_pid(pids_of(version.function_name)) != killed
