"""LocalProcessBackend with real runtime-agent processes, a real python handler, and its
code from a real LocalCodeStore."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
from controller_testkit import Published, agent_pid, runtimes
from prometheus_client import CollectorRegistry

from controller import errors
from controller.backends.local import LocalProcessBackend
from controller.metrics import ControllerMetrics
from kubelambda.models import (
    IDLE_TIMEOUT_TAG,
    FunctionSettings,
    FunctionVersion,
    Target,
    frozen_mapping,
)
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.endpoints import Endpoint

PidsOf = Callable[[str], list[int]]
Until = Callable[[Callable[[], bool]], Awaitable[None]]
Invoke = Callable[[Endpoint, dict[str, object]], Coroutine[Any, Any, httpx.Response]]
MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]


async def test_scales_zero_to_two_and_back_to_zero(
    backend: LocalProcessBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    version = make_version()
    target = version.target

    await backend.scale(version, replicas=2, concurrency=1)
    await until(lambda: backend.ready_instances(target) == 2)
    # Both environments are hosted by one agent: its endpoint takes two at once.
    [endpoint] = backend.endpoints(target)
    answers = await asyncio.gather(*(invoke(endpoint, {"sleep": 0.3}) for _ in range(2)))
    await backend.scale(version, replicas=0, concurrency=1)
    left_at_once = backend.endpoints(target)
    await until(lambda: not pids_of(version.function_name))

    assert endpoint.concurrency == 2
    assert [a.status_code for a in answers] == [200, 200]
    assert len({a.json()["pid"] for a in answers}) == 2
    assert left_at_once == ()


async def test_endpoint_appears_only_once_the_handler_is_initialised(
    backend: LocalProcessBackend, make_version: MakeVersion, until: Until, invoke: Invoke
) -> None:
    version = make_version(environment=frozen_mapping({"INIT_SLEEP": "1.0"}))
    target = version.target
    changes: list[int] = []
    backend.subscribe(lambda t: changes.append(len(backend.endpoints(t))))

    started = time.monotonic()
    await backend.scale(version, replicas=1, concurrency=1)
    right_after_scale = backend.endpoints(target)
    await until(lambda: bool(backend.endpoints(target)))
    waited = time.monotonic() - started
    answer = await invoke(backend.endpoints(target)[0], {})

    assert right_after_scale == ()
    assert waited >= 1.0
    assert (changes, answer.status_code) == ([1], 200)


async def test_scale_down_lets_an_in_flight_invocation_finish(
    backend: LocalProcessBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    version = make_version()
    target = version.target
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(target)))
    busy = asyncio.create_task(invoke(backend.endpoints(target)[0], {"sleep": 1.5}))
    await asyncio.sleep(0.3)  # let the invocation reach the handler

    await backend.scale(version, replicas=0, concurrency=1)
    endpoints_while_draining = backend.endpoints(target)
    alive_while_draining = bool(pids_of(version.function_name))
    answer = await busy
    await until(lambda: not pids_of(version.function_name))

    assert (endpoints_while_draining, alive_while_draining) == ((), True)
    assert (answer.status_code, answer.json()["function"]) == (200, version.function_name)


async def test_an_instance_that_dies_leaves_and_is_replaced_on_the_next_scale(
    new_backend: NewBackend, make_version: MakeVersion, until: Until, pids_of: PidsOf
) -> None:
    registry = CollectorRegistry()
    backend = new_backend(metrics=ControllerMetrics(registry))
    version = make_version()
    target = version.target
    notified: list[Target] = []
    backend.subscribe(notified.append)
    try:
        await backend.scale(version, replicas=1, concurrency=1)
        await until(lambda: bool(backend.endpoints(target)))
        first = backend.endpoints(target)[0]

        os.kill(agent_pid(pids_of(version.function_name)), signal.SIGKILL)
        await until(lambda: not backend.endpoints(target))
        await until(lambda: not pids_of(version.function_name))  # its runtime too
        await backend.scale(version, replicas=1, concurrency=1)
        await until(lambda: bool(backend.endpoints(target)))
        second = backend.endpoints(target)[0]
        changes = list(notified)
    finally:
        await backend.aclose()

    failures = registry.get_sample_value(
        "kubelambda_instance_failures_total",
        {
            "namespace": "default",
            "function": version.function_name,
            "version": "1",
            "reason": "exited",
        },
    )
    assert (failures, changes) == (1.0, [target, target, target])
    assert second.instance_id != first.instance_id


async def test_aclose_leaves_no_process_behind(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    pids_of: PidsOf,
    agents_of_this_process: Callable[[], list[int]],
    children_of_this_process: Callable[[], list[int]],
) -> None:
    # An agent each: three instances, not three environments of one agent.
    backend = new_backend(spare_agents=1, environments_per_agent=1)
    version = make_version(environment=frozen_mapping({"INIT_SLEEP": "0.5"}))
    await backend.scale(version, replicas=3, concurrency=2)
    await until(lambda: len(backend.endpoints(version.target)) >= 1)
    running = len(pids_of(version.function_name))

    await until(lambda: len(backend.endpoints(version.target)) == 3)
    await until(lambda: len(agents_of_this_process()) == 4)  # and a spare agent
    await backend.aclose()

    assert running >= 2
    assert pids_of(version.function_name) == []
    assert agents_of_this_process() == []
    assert children_of_this_process() == []  # the zygote too


async def test_an_instance_not_ready_in_time_is_killed_and_counted(
    new_backend: NewBackend, make_version: MakeVersion, until: Until, pids_of: PidsOf
) -> None:
    backend = new_backend(ready_timeout=1.0)
    version = make_version(environment=frozen_mapping({"INIT_SLEEP": "60"}))
    target = version.target
    try:
        await backend.scale(version, replicas=1, concurrency=1)
        await until(lambda: backend.start_failure(target) is not None)
        failure = backend.start_failure(target)
        left = pids_of(version.function_name)
    finally:
        await backend.aclose()

    assert failure is not None
    assert (failure.consecutive, failure.retriable) == (1, True)
    assert "not ready within 1 s" in failure.reason
    assert (backend.endpoints(target), left) == ((), [])


async def test_an_agent_exiting_during_init_is_a_start_failure(
    backend: LocalProcessBackend, make_version: MakeVersion, until: Until
) -> None:
    version = make_version(memory_size=0)  # the agent refuses this configuration and exits
    target = version.target

    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: backend.start_failure(target) is not None)
    failure = backend.start_failure(target)

    assert failure is not None
    assert "before it was ready" in failure.reason
    assert backend.endpoints(target) == ()


async def test_failing_starts_back_off_before_the_next_try(
    backend: LocalProcessBackend, make_version: MakeVersion, until: Until, pids_of: PidsOf
) -> None:
    version = make_version(memory_size=0)
    target = version.target
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: backend.start_failure(target) is not None)

    await backend.scale(version, replicas=1, concurrency=1)

    assert pids_of(version.function_name) == []


async def test_a_missing_interpreter_is_a_permanent_failure(
    new_backend: NewBackend, make_version: MakeVersion
) -> None:
    environ = dict(os.environ, KUBELAMBDA_PYTHON_3_13="/nonexistent/python3.13")
    backend = new_backend(host_environ=environ)
    version = make_version(runtime="python3.13")

    await backend.scale(version, replicas=1, concurrency=1)
    failure = backend.start_failure(version.target)
    await backend.aclose()

    assert failure is not None
    assert (failure.retriable, failure.reason) == (
        False,
        str(errors.RuntimeUnavailable("python3.13")),
    )


async def test_a_new_revision_replaces_the_old_instances(
    backend: LocalProcessBackend, make_version: MakeVersion, until: Until, invoke: Invoke
) -> None:
    old = make_version(version="$LATEST")
    target = old.target
    await backend.scale(old, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(target)))
    old_endpoint = backend.endpoints(target)[0]

    await backend.scale(old.with_changes(revision_id="rev-2"), replicas=1, concurrency=1)
    gone_at_once = old_endpoint not in backend.endpoints(target)
    await until(lambda: bool(backend.endpoints(target)))

    assert gone_at_once
    assert backend.endpoints(target)[0].instance_id != old_endpoint.instance_id
    assert (await invoke(backend.endpoints(target)[0], {})).status_code == 200


async def test_provisioned_instances_say_so_in_their_initialization_type(
    backend: LocalProcessBackend, make_version: MakeVersion, until: Until, invoke: Invoke
) -> None:
    version = make_version()
    target = version.target

    await backend.scale(version, replicas=2, concurrency=1, provisioned=1)
    await until(lambda: len(backend.endpoints(target)) == 2)
    answers = [await invoke(e, {}) for e in backend.endpoints(target)]

    assert sorted(a.json()["initialization_type"] for a in answers) == [
        "on-demand",
        "provisioned-concurrency",
    ]


async def test_a_spare_agent_is_kept_and_taken_by_the_next_start(
    backend: LocalProcessBackend,
    make_version: MakeVersion,
    until: Until,
    pids_of: PidsOf,
    agents_of_this_process: Callable[[], list[int]],
    invoke: Invoke,
) -> None:
    first = make_version()
    await backend.scale(first, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(first.target)))
    await until(lambda: len(agents_of_this_process()) == 3)  # the instance, two spares
    spares = set(agents_of_this_process()) - {agent_pid(pids_of(first.function_name))}

    second = make_version(function_name=f"{first.function_name}-b")
    await backend.scale(second, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(second.target)))
    answer = await invoke(backend.endpoints(second.target)[0], {})

    assert agent_pid(pids_of(second.function_name)) in spares
    assert answer.json()["function"] == second.function_name


async def test_an_instance_log_is_rotated_at_its_bound(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    tmp_path: Path,
) -> None:
    bound = 256 * 1024
    backend = new_backend(log_max_bytes=bound)
    version = make_version()
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: len(backend.endpoints(version.target)) == 1)
    [endpoint] = backend.endpoints(version.target)

    for _ in range(2):
        assert (await invoke(endpoint, {"print_mib": 10})).status_code == 200

    logs = sorted((tmp_path / "home" / "logs" / version.function_name).rglob("*"))
    files = [p for p in logs if p.is_file()]
    assert [p.name for p in files] == [
        f"{endpoint.instance_id}.log",
        f"{endpoint.instance_id}.log.1",
    ]
    assert all(p.stat().st_size <= bound for p in files)
    assert "REPORT RequestId:" in files[0].read_text()


async def test_an_instance_stops_its_surplus_runtimes_after_its_functions_idle_timeout(
    backend: LocalProcessBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    version = make_version()
    settings = FunctionSettings(
        version.namespace, version.function_name, tags={IDLE_TIMEOUT_TAG: "0.5"}
    )
    stop_following = backend.follow(
        Published(Catalog(versions={version.target: version}, settings={version.key: settings}))
    )
    await backend.scale(version, replicas=1, concurrency=2)
    await until(lambda: backend.ready_instances(version.target) == 1)
    (endpoint,) = backend.endpoints(version.target)

    burst = await asyncio.gather(*(invoke(endpoint, {"sleep": 0.3}) for _ in range(2)))
    assert len({r.json()["pid"] for r in burst}) == 2

    # The second runtime idles past the function's 0.5 s; the instance itself is the
    # autoscaler's to stop, and stays.
    await until(lambda: runtimes(pids_of(version.function_name)) == 1)
    assert backend.ready_instances(version.target) == 1
    stop_following()
