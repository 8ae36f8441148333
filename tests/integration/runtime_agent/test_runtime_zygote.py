"""The agent's runtime zygote (``kubelambda_agent.runtime_zygote``), against a real agent.

A runtime the zygote forks must be what a spawned one is (the agent's child, a session
of its own, its own environment and output, Lambda's file quota, batch scheduling, death
with the agent, its exit status reported) and carry nothing of the zygote's; a zygote that
fails must cost nothing but the time it saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from agent_harness import (
    AGENT_SOURCE,
    Agent,
    StartAgent,
    async_client,
    bootstrap_children,
    invoke_async,
)
from kubelambda_agent.config import CHANNEL_FD_VARIABLE
from kubelambda_agent.runtime_zygote import CONTROL_FD_VARIABLE, PROCESS_NAME

from tests.process_table import is_runtime_zygote

# Reports what a runtime process is; sleeps, prints or exits as asked.
PROBE_FUNCTION = {
    "app.py": """
        import os
        import resource
        import sys
        import time


        def handler(event, context):
            time.sleep(event.get("seconds", 0))
            if "exit" in event:
                os._exit(event["exit"])
            print(f"probe output of {os.getpid()}")
            with open("/proc/self/environ", "rb") as shown:
                environ = dict(
                    entry.decode().split("=", 1) for entry in shown.read().split(b"\\0") if entry
                )
            with open("/proc/self/comm") as comm:
                name = comm.read().strip()
            return {
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "sid": os.getsid(0),
                "pgid": os.getpgid(0),
                "seed_probe": hash("kubelambda zygote"),
                "cwd": os.getcwd(),
                "api": os.environ["AWS_LAMBDA_RUNTIME_API"],
                "shown_api": environ.get("AWS_LAMBDA_RUNTIME_API"),
                "shown_names": sorted(environ),
                "names": sorted(os.environ),
                "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
                "batch": os.sched_getscheduler(0) == os.SCHED_BATCH,
                "comm": name,
                "fds": len(os.listdir("/proc/self/fd")),
                "large": len(os.environ.get("LARGE", "")),
                "shown_large": len(environ.get("LARGE", "")),
                "path": sys.path,
            }
    """
}


async def test_runtimes_after_the_first_are_forked_and_look_spawned(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(PROBE_FUNCTION, concurrency=4, timeout=10)
    async with async_client(agent) as client:
        spawned = await _invoke_together(client, 1, seconds=0)
        # The three other runtimes wait for the zygote the first of them starts.
        everyone = await _invoke_together(client, 4, seconds=0.5)
        zygote = await _zygote_ready(agent)

    reference = spawned[0]
    forked = [r for r in everyone if r["pid"] != reference["pid"]]
    assert len(forked) == 3
    # Forks of one zygote share its string-hash seed; a spawned interpreter draws its own.
    assert {r["seed_probe"] for r in forked} == {forked[0]["seed_probe"]}
    assert reference["seed_probe"] != forked[0]["seed_probe"]
    for runtime in forked:
        assert runtime["ppid"] == agent.process.pid
        assert runtime["sid"] == runtime["pgid"] == runtime["pid"]
        assert runtime["cwd"] == reference["cwd"]
        assert runtime["shown_api"] == runtime["api"]
        # A spawned runtime was started with its channel's variable, which python pops.
        assert runtime["shown_names"] == [
            name for name in reference["shown_names"] if name != CHANNEL_FD_VARIABLE
        ]
        assert runtime["names"] == reference["names"]
        assert CONTROL_FD_VARIABLE not in runtime["names"]
        assert runtime["nofile"] == reference["nofile"] == [1024, 1024]
        assert runtime["batch"] and reference["batch"]
        assert runtime["comm"] == reference["comm"]
        assert runtime["fds"] == reference["fds"]
        assert runtime["path"] == reference["path"]
    assert len({r["api"] for r in everyone}) == 4
    assert all(f"probe output of {r['pid']}" in agent.log() for r in forked)
    # The zygote serves no function and holds no secret of the agent's.
    assert agent.token.encode() not in _environ_of(zygote)


async def test_forked_runtimes_and_the_zygote_die_with_the_agent(
    start_agent: StartAgent,
) -> None:
    agent, zygote, runtimes = await _grown_agent(start_agent)

    agent.process.kill()
    agent.process.wait()
    pids = [zygote, *(r["pid"] for r in runtimes)]
    for _ in range(500):
        if not any(_alive(pid) for pid in pids):
            break
        await asyncio.sleep(0.02)
    assert [pid for pid in pids if _alive(pid)] == []


async def test_a_forked_runtimes_exit_is_reported_with_its_status(
    start_agent: StartAgent,
) -> None:
    agent, _, _ = await _grown_agent(start_agent)
    async with async_client(agent) as client:
        exits = await asyncio.gather(
            *(invoke_async(client, f"exit{i}", {"seconds": 0.3, "exit": 7}) for i in range(3))
        )
        await asyncio.to_thread(agent.wait_idle, 3)
        again = await _invoke_together(client, 3, seconds=0.3)

    for response in exits:
        assert response.headers["Kubelambda-Function-Error"] == "Unhandled"
        assert response.json()["errorType"] == "Runtime.ExitError"
        assert "exit status 7" in response.json()["errorMessage"]
    # Their replacements serve.
    assert len({r["pid"] for r in again}) == 3


async def test_a_killed_zygote_costs_only_the_time_it_saved(start_agent: StartAgent) -> None:
    agent = start_agent(PROBE_FUNCTION, concurrency=4, timeout=10)
    async with async_client(agent) as client:
        await _invoke_together(client, 2, seconds=0.3)
        zygote = await _zygote_ready(agent)
        os.kill(zygote, signal.SIGKILL)
        # The runtimes it would have forked are spawned: every invocation is served.
        served = await _invoke_together(client, 4, seconds=0.3)

    assert len({r["pid"] for r in served}) == 4
    assert not _alive(zygote)  # reaped, not left a zombie


async def test_a_large_environment_reaches_forked_runtimes_whole(
    start_agent: StartAgent,
) -> None:
    # Far above Lambda's 4 KiB for a function's variables, which the agent does not check.
    large = "x" * 40_000
    agent = start_agent(PROBE_FUNCTION, concurrency=3, timeout=10, env={"LARGE": large})
    async with async_client(agent) as client:
        await _invoke_together(client, 1, seconds=0)
        runtimes = await _invoke_together(client, 3, seconds=0.3)
        await _zygote_ready(agent)

    assert [(r["large"], r["shown_large"]) for r in runtimes] == [(len(large), len(large))] * 3
    assert len({r["seed_probe"] for r in runtimes}) == 2  # the first spawned, two forked


async def _grown_agent(start_agent: StartAgent) -> tuple[Agent, int, list[dict[str, object]]]:
    """An agent of three runtimes, the two after its first forked, its zygote, and what
    the three runtimes reported."""
    agent = start_agent(PROBE_FUNCTION, concurrency=3, timeout=10)
    async with async_client(agent) as client:
        await _invoke_together(client, 2, seconds=0.3)
        zygote = await _zygote_ready(agent)
        runtimes = await _invoke_together(client, 3, seconds=0.3)
    return agent, zygote, runtimes


async def _invoke_together(
    client: httpx.AsyncClient, count: int, *, seconds: float
) -> list[dict[str, object]]:
    responses = await asyncio.gather(
        *(invoke_async(client, f"r{i}", {"seconds": seconds}) for i in range(count))
    )
    assert [r.status_code for r in responses] == [200] * count
    assert all("Kubelambda-Function-Error" not in r.headers for r in responses)
    return [r.json() for r in responses]


async def _zygote_ready(agent: Agent) -> int:
    """The agent's zygote, once it has renamed itself (just before it says it is ready)."""
    for _ in range(1000):
        for child in bootstrap_children(agent.process.pid):
            if is_runtime_zygote(child) and _name(child) == PROCESS_NAME:
                # Its ready message goes out right after the rename.
                await asyncio.sleep(0.05)
                return child
        await asyncio.sleep(0.01)
    raise AssertionError("the agent never had a ready runtime zygote")


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _environ_of(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def _alive(pid: int) -> bool:
    """Running, or a zombie nobody reaped (both hold the pid)."""
    return Path(f"/proc/{pid}").exists()


async def test_runtimes_waiting_for_a_zygote_that_dies_are_spawned(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    async with _warm_agent_with_slow_pythons(start_agent, tmp_path) as (agent, client):
        burst = asyncio.ensure_future(_invoke_together(client, 4, seconds=0.3))
        # Every interpreter takes a second to start: the zygote is killed before it is ready.
        zygote = await _zygote_started(agent)
        os.kill(zygote, signal.SIGKILL)
        served = await burst

    assert len({r["pid"] for r in served}) == 4
    # Spawned, not forked: each drew its own hash seed.
    assert len({r["seed_probe"] for r in served}) == 4
    assert not _alive(zygote)


async def test_an_agent_stopped_while_runtimes_wait_for_the_zygote_leaves_nothing(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    async with _warm_agent_with_slow_pythons(start_agent, tmp_path) as (agent, client):
        burst = asyncio.gather(
            *(invoke_async(client, f"w{i}", {"seconds": 0.3}) for i in range(4)),
            return_exceptions=True,
        )
        zygote = await _zygote_started(agent)
        agent.process.send_signal(signal.SIGTERM)
        await burst
    assert await asyncio.to_thread(agent.process.wait, 20) == 0
    assert not _alive(zygote)


@contextlib.asynccontextmanager
async def _warm_agent_with_slow_pythons(
    start_agent: StartAgent, directory: Path
) -> AsyncIterator[tuple[Agent, httpx.AsyncClient]]:
    """An agent of four runtimes, one of them warm, and its client. A sitecustomize on
    the function's PYTHONPATH makes every python start (its runtimes' and its zygote's)
    take a second."""
    (directory / "sitecustomize.py").write_text("import time\ntime.sleep(1)\n")
    environ = {"PYTHONPATH": f"{directory}:{AGENT_SOURCE}"}
    agent = start_agent(PROBE_FUNCTION, concurrency=4, timeout=10, env=environ)
    async with async_client(agent) as client:
        await _invoke_together(client, 1, seconds=0)
        yield agent, client


async def _zygote_started(agent: Agent) -> int:
    for _ in range(1000):
        for child in bootstrap_children(agent.process.pid):
            if is_runtime_zygote(child):
                return child
        await asyncio.sleep(0.01)
    raise AssertionError("the agent never started a runtime zygote")


async def test_the_zygote_stops_after_the_idle_timeout_and_comes_back(
    start_agent: StartAgent,
) -> None:
    agent = start_agent(
        PROBE_FUNCTION,
        concurrency=3,
        timeout=10,
        env={"KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS": "0.5"},
    )
    async with async_client(agent) as client:
        await _invoke_together(client, 1, seconds=0)
        await _invoke_together(client, 3, seconds=0.3)
        first = await _zygote_ready(agent)
        for _ in range(500):
            if not _alive(first):
                break
            await asyncio.sleep(0.02)
        gone = not _alive(first)
        again = await _invoke_together(client, 3, seconds=0.3)
        second = await _zygote_ready(agent)

    assert gone
    assert second != first
    assert len({r["pid"] for r in again}) == 3
