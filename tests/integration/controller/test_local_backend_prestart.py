"""Spare agents' pre-started python runtimes (kubelambda_agent.prestarted) through a real
LocalProcessBackend: what a pre-started runtime holds before and after its assignment,
compared with a runtime the agent starts for the function, and as the function's user
when the platform runs as root."""

from __future__ import annotations

import os
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from controller_testkit import (
    Invoke,
    Until,
    agent_pids,
    alive,
    first_answer,
    live_children,
    make_zip,
)

from controller.backends import local_users
from controller.backends.local import LocalProcessBackend
from kubelambda.models import FunctionVersion, frozen_mapping
from kubelambda.ports.endpoints import Endpoint
from kubelambda.store import LocalCodeStore

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="runtimes are pre-started on Linux only"
)
as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root can run instances as other users; run as root"
)

HANDLER = r"""
import os
import re
import sys


def handler(event, context):
    if event.get("exit"):
        os._exit(3)
    if event.get("scan"):
        return {"found": scan(event["scan"].encode())}
    environ = dict(os.environ)
    environ.pop("_X_AMZN_TRACE_ID", None)  # the invocation's own
    with open("/proc/self/environ", "rb") as initial:
        # (Less the channel's number, which only a runtime spawned for it has there.)
        initial = sorted(entry.decode() for entry in initial.read().split(b"\0")
                         if entry and not entry.startswith(b"_KUBELAMBDA_RUNTIME_CHANNEL_FD="))
    regained = None
    if event.get("regain"):
        try:
            os.setuid(0)
            regained = True
        except PermissionError:
            regained = False
    return {"pid": os.getpid(), "environ": environ, "initial": initial,
            "cwd": os.getcwd(), "path": sys.path[0], "uid": os.getuid(), "gid": os.getgid(),
            "groups": os.getgroups(), "regained": regained}


def scan(prefix):
    # How often the prefix followed by 32 hex digits is in this process's memory.
    pattern = re.compile(re.escape(prefix) + rb"[0-9a-f]{32}")
    found = 0
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            addresses, permissions = line.split()[:2]
            if not permissions.startswith("r"):
                continue
            start, end = (int(address, 16) for address in addresses.split("-"))
            try:
                mem.seek(start)
                found += len(pattern.findall(mem.read(end - start)))
            except (OSError, OverflowError, ValueError):
                continue
    return found
"""
# The event every first invocation sends: the handler also tries to become root.
REGAIN: dict[str, object] = {"regain": True}
SECRET_PREFIX = "SECRET-A-"
# What a pre-started runtime starts with, besides the channel's variable.
PRESTART_NAMES = {
    "PATH",
    "LANG",
    "LC_ALL",
    "PYTHONNOUSERSITE",
    "_KUBELAMBDA_RUNTIME_PRESTARTED",
    "_KUBELAMBDA_RUNTIME_CHANNEL_FD",
    "_KUBELAMBDA_RUNTIME_ROOM",
}

MakeVersion = Callable[..., FunctionVersion]
NewBackend = Callable[..., LocalProcessBackend]


def prestarted_runtimes() -> dict[int, int]:
    """Each spare agent of this test process (by pid) and its pre-started runtime."""
    spares = {}
    for agent in agent_pids():
        below = live_children(agent)
        if len(below) == 1 and b"_KUBELAMBDA_RUNTIME_PRESTARTED=1" in environ_of(below[0]):
            spares[agent] = below[0]
    return spares


def owner(pid: int) -> int:
    return Path(f"/proc/{pid}").stat().st_uid


def make_directory(path: Path) -> None:
    path.mkdir(exist_ok=True)


def environ_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


@pytest.fixture
async def package(code_store: LocalCodeStore) -> Any:
    return await code_store.put(make_zip({"app.py": HANDLER}))


@pytest.fixture
def version_of(make_version: MakeVersion, package: Any) -> Callable[..., FunctionVersion]:
    def make(environment: dict[str, str] | None = None, **changes: object) -> FunctionVersion:
        return make_version(
            code_sha256=package.code_sha256,
            code_size=package.size,
            environment=frozen_mapping(environment or {}),
            **changes,
        )

    return make


WithSpares = Callable[..., Awaitable[tuple[LocalProcessBackend, dict[int, int]]]]


@pytest.fixture
def with_spares(new_backend: NewBackend, until: Until, tmp_path: Path) -> WithSpares:
    """A backend (``new_backend``'s options; 20 s to get ready unless said) whose two
    spare agents have each pre-started a runtime; with their pids, agent -> runtime."""

    async def make(**options: Any) -> tuple[LocalProcessBackend, dict[int, int]]:
        # One environment an agent: an instance's next runtime is then its first's
        # successor in the same slot, which the tests compare it with.
        defaults = {"ready_timeout": 20.0, "environments_per_agent": 1}
        backend = new_backend(**(defaults | options))
        make_directory(tmp_path / "home")  # as the platform's start makes it
        backend.start_spares()
        await until(lambda: len(prestarted_runtimes()) == 2)
        return backend, prestarted_runtimes()

    return make


async def respawned(endpoint: Endpoint, invoke: Invoke, until: Until) -> dict[str, Any]:
    """What the instance's next runtime (one the agent starts) sees."""
    assert (await invoke(endpoint, {"exit": True})).status_code == 200  # a function error
    answers: list[dict[str, Any]] = []

    async def served() -> None:
        answer = await invoke(endpoint, REGAIN)
        if answer.status_code == 200 and "pid" in answer.json():
            answers.append(answer.json())

    await served()
    while not answers:
        await until(lambda: True)
        await served()
    return answers[0]


async def test_a_spares_runtime_starts_with_nothing_of_the_platform(
    with_spares: WithSpares,
    until: Until,
) -> None:
    host = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "KUBELAMBDA_API_KEY": "platform-secret-key",
        "AWS_SECRET_ACCESS_KEY": "platform-secret-aws",
    }
    _, runtimes = await with_spares(host_environ=host)

    for runtime in runtimes.values():
        initial = environ_of(runtime)
        names = {entry.split(b"=", 1)[0].decode() for entry in initial.split(b"\0") if entry}
        assert names <= PRESTART_NAMES
        assert b"platform-secret" not in initial
        assert os.readlink(f"/proc/{runtime}/cwd") == "/"


async def test_the_first_runtime_is_the_spares_and_sees_what_one_started_for_it_sees(
    with_spares: WithSpares,
    version_of: Callable[..., FunctionVersion],
    until: Until,
    invoke: Invoke,
) -> None:
    backend, runtimes = await with_spares()
    version = version_of({"ONLY_MINE": "value"})

    endpoint, adopted = await first_answer(backend, version, until, invoke, REGAIN)
    started = await respawned(endpoint, invoke, until)

    assert adopted["pid"] in runtimes.values()
    assert started["pid"] not in runtimes.values()
    assert adopted["environ"]["ONLY_MINE"] == "value"
    # The same instance: the same environment, in the process and in /proc alike.
    for seen in ("environ", "initial", "cwd", "path", "uid", "gid", "groups"):
        assert adopted[seen] == started[seen], seen


async def test_a_function_whose_environment_changes_pythons_start_gets_a_runtime_of_its_own(
    with_spares: WithSpares,
    version_of: Callable[..., FunctionVersion],
    until: Until,
    invoke: Invoke,
) -> None:
    backend, runtimes = await with_spares()
    version = version_of({"PYTHONWARNINGS": "ignore"})

    _, seen = await first_answer(backend, version, until, invoke, REGAIN)

    assert seen["pid"] not in runtimes.values()
    assert seen["environ"]["PYTHONWARNINGS"] == "ignore"
    # The spare's own was let go.
    await until(lambda: sum(alive(pid) for pid in runtimes.values()) == 1)


async def test_an_agent_killed_takes_its_adopted_runtime_along(
    with_spares: WithSpares,
    version_of: Callable[..., FunctionVersion],
    until: Until,
    invoke: Invoke,
) -> None:
    backend, runtimes = await with_spares()
    _, seen = await first_answer(backend, version_of(), until, invoke, REGAIN)
    [agent] = [agent for agent, runtime in runtimes.items() if runtime == seen["pid"]]

    os.kill(agent, signal.SIGKILL)

    await until(lambda: not alive(seen["pid"]), within=5.0)


async def test_a_spare_killed_or_discarded_takes_its_runtime_along(
    with_spares: WithSpares,
    until: Until,
) -> None:
    backend, runtimes = await with_spares()
    (killed, killed_runtime), (_, discarded_runtime) = runtimes.items()

    os.kill(killed, signal.SIGKILL)
    await until(lambda: not alive(killed_runtime), within=5.0)
    await backend.aclose()

    await until(lambda: not alive(discarded_runtime), within=5.0)


@as_root
async def test_as_root_it_runs_as_the_functions_user_and_cannot_regain_root(
    with_spares: WithSpares,
    version_of: Callable[..., FunctionVersion],
    until: Until,
    invoke: Invoke,
) -> None:
    backend, runtimes = await with_spares(users=local_users.InstanceUsers(1_500_000_000))
    assert {owner(pid) for pid in runtimes.values()} == {0}

    endpoint, adopted = await first_answer(backend, version_of(), until, invoke, REGAIN)
    started = await respawned(endpoint, invoke, until)

    assert adopted["pid"] in runtimes.values()
    assert adopted["uid"] != 0 and adopted["gid"] != 0
    assert set(adopted["groups"]) <= {adopted["gid"]}
    assert adopted["regained"] is False
    for seen in ("environ", "initial", "cwd", "path", "uid", "gid", "groups", "regained"):
        assert adopted[seen] == started[seen], seen


@as_root
async def test_another_functions_secret_is_nowhere_in_a_prestarted_runtime(
    with_spares: WithSpares,
    version_of: Callable[..., FunctionVersion],
    function_name: str,
    until: Until,
    invoke: Invoke,
) -> None:
    backend, runtimes = await with_spares(users=local_users.InstanceUsers(1_500_000_000))
    secret = SECRET_PREFIX + secrets.token_hex(16)
    first = version_of({"SECRET": secret})
    second = version_of(function_name=f"{function_name}-b")

    first_endpoint, first_seen = await first_answer(backend, first, until, invoke, REGAIN)
    second_endpoint, second_seen = await first_answer(backend, second, until, invoke, REGAIN)
    scans = [
        (await invoke(endpoint, {"scan": SECRET_PREFIX})).json()["found"]
        for endpoint in (first_endpoint, second_endpoint)
    ]

    assert {first_seen["pid"], second_seen["pid"]} == set(runtimes.values())
    assert scans[0] > 0 and scans[1] == 0
