"""Spare agents forked by the zygote (``agent_zygote`` / ``local_zygote``), through a real
LocalProcessBackend: where they come from, what the backend learns of their end, and
what happens when the zygote itself dies."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
from controller_testkit import Invoke, Until, agent_pid, agent_pids, parent_of, zygote_pids

from controller.backends.local import LocalProcessBackend
from kubelambda.models import FunctionVersion

MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]
PidsOf = Callable[[str], list[int]]


async def test_spares_are_forked_by_the_zygote_and_serve_as_instances(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    backend = new_backend(spare_agents=2)
    backend.start_spares()
    await until(lambda: len(agent_pids()) == 2)
    (zygote,) = zygote_pids()
    spares = set(agent_pids())

    version = make_version()
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    answer = await invoke(backend.endpoints(version.target)[0], {})

    assert answer.status_code == 200
    assert {parent_of(spare) for spare in spares} == {zygote}
    assert agent_pid(pids_of(version.function_name)) in spares


async def test_an_agent_killed_outright_is_reported_with_its_signal(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    pids_of: PidsOf,
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = new_backend(spare_agents=1)
    version = make_version()
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    agent = agent_pid(pids_of(version.function_name))
    assert parent_of(agent) in zygote_pids()

    os.kill(agent, signal.SIGKILL)

    await until(lambda: not backend.endpoints(version.target))
    assert "instance exited unexpectedly" in caplog.text
    assert "returncode=-9" in caplog.text


async def test_when_the_zygote_dies_its_agents_go_and_spares_are_spawned_again(
    new_backend: NewBackend,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
    pids_of: PidsOf,
) -> None:
    backend = new_backend(spare_agents=1)
    version = make_version()
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    (zygote,) = zygote_pids()

    os.kill(zygote, signal.SIGKILL)

    # Its agents die with it (parent-death signal), runtimes and all.
    await until(lambda: not backend.endpoints(version.target))
    await until(lambda: not pids_of(version.function_name))
    await backend.scale(version, replicas=1, concurrency=1)
    await until(lambda: bool(backend.endpoints(version.target)))
    answer = await invoke(backend.endpoints(version.target)[0], {})

    assert answer.status_code == 200
    # Spawned by the backend itself: a zygote that just died is not restarted at once.
    assert parent_of(agent_pid(pids_of(version.function_name))) == os.getpid()
