"""Per-instance concurrency: N runtimes each serving one invocation, the N+1th refused.

An instance starts one runtime and the others as invocations need them (all of them at
once for provisioned concurrency), so its cold start is one runtime's.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from pathlib import Path

import httpx
from agent_harness import (
    Agent,
    StartAgent,
    async_client,
    bootstrap_children,
    invoke_async,
)

from tests.process_table import is_runtime_zygote

RUNTIME_IDLE_VARIABLE = "KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS"
ENVIRONMENT_CONCURRENCY_VARIABLE = "KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY"
INSTANCE_STREAM = "2026/12/02/[$LATEST]" + "0" * 32

# Leaves a file named after its process in $TMPDIR and tells what it finds there.
TMPDIR_FUNCTION = {
    "app.py": """
        import os
        import time


        def handler(event, context):
            time.sleep(event.get("seconds", 0))
            tmp = os.environ["TMPDIR"]
            open(os.path.join(tmp, str(os.getpid())), "w").close()
            return {
                "pid": os.getpid(),
                "tmpdir": tmp,
                "home": os.environ.get("HOME"),
                "stream": context.log_stream_name,
                "files": sorted(os.listdir(tmp)),
            }
    """
}

# Its import sleeps while a file "slow" exists in $INIT_MARKERS, and fails while "broken" does.
MARKED_INIT_FUNCTION = {
    "app.py": """
        import os
        import time

        MARKERS = os.environ["INIT_MARKERS"]
        if os.path.exists(os.path.join(MARKERS, "slow")):
            time.sleep(1.5)
        if os.path.exists(os.path.join(MARKERS, "broken")):
            raise RuntimeError("init broke")


        def handler(event, context):
            time.sleep(event.get("seconds", 0))
            return {"pid": os.getpid()}
    """
}


async def test_four_runtimes_serve_four_invocations_at_once(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=4, timeout=10)
    sleep = {"action": "sleep", "seconds": 1.5}

    async with async_client(agent) as client:
        began = time.monotonic()
        responses = await asyncio.gather(*(invoke_async(client, f"r{i}", sleep) for i in range(4)))
        elapsed = time.monotonic() - began

    assert [r.status_code for r in responses] == [200] * 4
    assert elapsed < 2 * 1.5
    assert len({r.json()["pid"] for r in responses}) == 4


async def test_fifth_concurrent_invocation_is_refused_as_busy(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=4, timeout=10)
    sleep = {"action": "sleep", "seconds": 1.5}

    async with async_client(agent) as client:
        running = [asyncio.create_task(invoke_async(client, f"r{i}", sleep)) for i in range(4)]
        # The agent is another process: poll its readiness until all four are taken.
        for _ in range(500):
            if (await client.get("/ready")).json()["idle"] == 0:
                break
            await asyncio.sleep(0.01)
        fifth = await invoke_async(client, "r5", {})
        done = await asyncio.gather(*running)

    assert fifth.status_code == 503
    assert fifth.headers["Kubelambda-Agent-Busy"] == "1"
    assert [r.status_code for r in done] == [200] * 4


def test_ready_reports_concurrency_and_idle_runtimes(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=3)

    response = agent.ready()

    assert response.status_code == 200
    assert response.json() == {"concurrency": 3, "idle": 3, "started": 1}


def test_ready_without_the_token_tells_only_its_status(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    # The kubelet's readiness probe carries no token; other pods must not learn how busy
    # the function is from it.
    agent = start_agent(echo_function, concurrency=3)

    response = httpx.get(f"{agent.url}/ready")

    assert response.status_code == 200
    assert response.content == b"{}"


async def test_an_instance_is_ready_with_one_runtime_and_starts_more_as_invocations_need_them(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=3, timeout=10)
    assert agent.ready().json() == {"concurrency": 3, "idle": 3, "started": 1}
    assert len(_runtime_processes(agent)) == 1
    sleep = {"action": "sleep", "seconds": 0.5}

    async with async_client(agent) as client:
        together = await asyncio.gather(*(invoke_async(client, f"r{i}", sleep) for i in range(2)))
        alone = await invoke_async(client, "r2", sleep)

    assert [r.status_code for r in together] == [200, 200]
    pids = {r.json()["pid"] for r in together}
    assert len(pids) == 2
    assert alone.json()["pid"] in pids
    assert agent.ready().json() == {"concurrency": 3, "idle": 3, "started": 2}
    assert _runtime_processes(agent) == pids


def test_a_provisioned_instance_starts_every_runtime_before_it_is_ready(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(
        echo_function,
        concurrency=3,
        env={"AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency"},
    )

    assert agent.ready().json() == {"concurrency": 3, "idle": 3, "started": 3}
    assert len(_runtime_processes(agent)) == 3


async def test_an_invocation_waits_for_the_runtime_it_starts_and_init_is_not_in_its_timeout(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = _start_marked_agent(start_agent, tmp_path, timeout=1)
    (tmp_path / "slow").touch()

    async with async_client(agent) as client:
        busy = await _occupy_first_runtime(client)
        started = await invoke_async(client, "started", {})
        await busy

    # Init takes 1.5 s of the runtime's own 10; the 1 s timeout is the handler's.
    assert started.status_code == 200
    assert "Kubelambda-Function-Error" not in started.headers
    init_ms = float(started.headers["Kubelambda-Init-Duration-Ms"])
    assert init_ms >= 1500
    assert re.search(r"REPORT RequestId: started\t.*\tInit Duration: ", agent.log())


async def test_an_invocation_that_starts_a_runtime_gets_its_init_failure(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = _start_marked_agent(start_agent, tmp_path, timeout=10)
    (tmp_path / "broken").touch()

    async with async_client(agent) as client:
        busy = await _occupy_first_runtime(client)
        failed = await invoke_async(client, "failed", {})
        served = await busy

    assert served.status_code == 200
    assert failed.status_code == 200
    assert failed.headers["Kubelambda-Function-Error"] == "Unhandled"
    assert "init broke" in failed.json()["errorMessage"]


async def test_sigterm_lets_an_invocation_waiting_for_its_runtime_run_first(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = _start_marked_agent(start_agent, tmp_path, timeout=10)
    (tmp_path / "slow").touch()

    async with async_client(agent) as client:
        busy = await _occupy_first_runtime(client)
        waiting = asyncio.create_task(invoke_async(client, "waiting", {}))
        while (await client.get("/ready")).json()["started"] < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        agent.process.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(busy, waiting)

    assert [a.status_code for a in answers] == [200, 200]
    assert "Kubelambda-Function-Error" not in answers[1].headers
    assert float(answers[1].headers["Kubelambda-Init-Duration-Ms"]) >= 1500
    assert agent.process.wait(timeout=10) == 0


async def test_an_invocation_takes_the_runtime_that_finished_last(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=3, timeout=10)

    async with async_client(agent) as client:
        burst = await _staggered_burst(client, [0.3, 0.8, 1.4])
        quick = {"action": "sleep", "seconds": 0}
        after = [await invoke_async(client, f"n{i}", quick) for i in range(2)]

    pids = [r.json()["pid"] for r in burst]
    assert len(set(pids)) == 3
    # Not the first slot's runtime, which finished first: the last one's, warm.
    assert [r.json()["pid"] for r in after] == [pids[-1]] * 2


async def test_the_warmest_runtime_killed_while_it_waits_loses_no_invocation(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=3, timeout=10)

    async with async_client(agent) as client:
        burst = await _staggered_burst(client, [0.3, 0.8, 1.4])
        warmest = burst[-1].json()["pid"]
        os.kill(warmest, signal.SIGKILL)
        await _runtime_processes_replaced(agent, warmest, count=3)
        # Until its replacement asks for an event the slot refuses as busy (the gateway
        # then tries another instance): wait for it, so that all three must be served.
        await _wait_for_idle(client, 3)
        quick = {"action": "sleep", "seconds": 0}
        after = await asyncio.gather(*(invoke_async(client, f"k{i}", quick) for i in range(3)))

    assert [r.status_code for r in after] == [200] * 3
    assert not any("Kubelambda-Function-Error" in r.headers for r in after)
    assert warmest not in {r.json()["pid"] for r in after}


async def test_runtimes_idle_past_the_timeout_stop_but_the_last_one_and_start_again(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(
        echo_function, concurrency=3, timeout=10, env={RUNTIME_IDLE_VARIABLE: "0.5"}
    )
    sleep = {"action": "sleep", "seconds": 0.3}

    async with async_client(agent) as client:
        burst = await _staggered_burst(client, [0.3, 0.5, 0.8])
        last = burst[-1].json()["pid"]
        assert len({r.json()["pid"] for r in burst}) == 3
        await _wait_for_started(client, 1)
        kept = await _runtime_processes_settled(agent, 1)
        again = await asyncio.gather(*(invoke_async(client, f"s{i}", sleep) for i in range(2)))

    assert kept == {last}
    by_pid = {r.json()["pid"]: r for r in again}
    assert last in by_pid
    (fresh,) = set(by_pid) - {last}
    # The retired slot starts a new runtime: a cold start, reported as one.
    assert "Kubelambda-Init-Duration-Ms" in by_pid[fresh].headers
    assert "Kubelambda-Init-Duration-Ms" not in by_pid[last].headers


async def test_a_busy_runtime_is_not_stopped_however_long_its_invocation_runs(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(
        echo_function, concurrency=2, timeout=10, env={RUNTIME_IDLE_VARIABLE: "0.2"}
    )
    sleep = {"action": "sleep", "seconds": 1.5}

    async with async_client(agent) as client:
        answers = await asyncio.gather(*(invoke_async(client, f"r{i}", sleep) for i in range(2)))

    assert [r.status_code for r in answers] == [200, 200]
    assert "Kubelambda-Function-Error" not in answers[1].headers
    assert len({r.json()["pid"] for r in answers}) == 2


def test_a_provisioned_instance_keeps_every_runtime_however_long_it_idles(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(
        echo_function,
        concurrency=3,
        env={
            "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency",
            RUNTIME_IDLE_VARIABLE: "0.2",
        },
    )

    time.sleep(1.0)

    assert agent.ready().json()["started"] == 3
    assert len(_runtime_processes(agent)) == 3


async def test_separate_environments_have_a_directory_each(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    private = _private_directory(tmp_path)
    agent = start_agent(
        TMPDIR_FUNCTION,
        concurrency=3,
        timeout=10,
        env={
            ENVIRONMENT_CONCURRENCY_VARIABLE: "1",
            "TMPDIR": str(private),
            "AWS_LAMBDA_LOG_STREAM_NAME": INSTANCE_STREAM,
        },
    )

    async with async_client(agent) as client:
        answers = [
            r.json()
            for r in await asyncio.gather(
                *(invoke_async(client, f"r{i}", {"seconds": 0.5}) for i in range(3))
            )
        ]

    assert sorted(a["tmpdir"] for a in answers) == [
        str(private / f"environment-{i}") for i in range(3)
    ]
    assert all(a["home"] == a["tmpdir"] for a in answers)
    # Each sees only what it wrote itself.
    assert all(a["files"] == [str(a["pid"])] for a in answers)
    assert {a["stream"] for a in answers} == {INSTANCE_STREAM}


async def test_a_retired_environment_comes_back_with_an_empty_directory(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    private = _private_directory(tmp_path)
    agent = start_agent(
        TMPDIR_FUNCTION,
        concurrency=2,
        timeout=10,
        env={
            ENVIRONMENT_CONCURRENCY_VARIABLE: "1",
            "TMPDIR": str(private),
            RUNTIME_IDLE_VARIABLE: "0.5",
        },
    )

    async with async_client(agent) as client:
        burst = await asyncio.gather(
            *(invoke_async(client, f"r{i}", {"seconds": 0.3}) for i in range(2))
        )
        await _wait_for_started(client, 1)
        again = await asyncio.gather(
            *(invoke_async(client, f"s{i}", {"seconds": 0.3}) for i in range(2))
        )

    retired_pid = {r.json()["pid"] for r in burst} - {r.json()["pid"] for r in again}
    assert len(retired_pid) == 1
    (retired,) = (r.json() for r in burst if r.json()["pid"] in retired_pid)
    fresh = next(r.json() for r in again if "Kubelambda-Init-Duration-Ms" in r.headers)
    # The retired runtime's environment, emptied: the other one ran last and stayed.
    assert fresh["tmpdir"] == retired["tmpdir"]
    assert fresh["tmpdir"] in {str(private / "environment-0"), str(private / "environment-1")}
    assert fresh["files"] == [str(fresh["pid"])]


async def test_without_separate_environments_the_runtimes_share_the_instances_directory(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    private = _private_directory(tmp_path)
    agent = start_agent(TMPDIR_FUNCTION, concurrency=2, timeout=10, env={"TMPDIR": str(private)})

    async with async_client(agent) as client:
        answers = await asyncio.gather(
            *(invoke_async(client, f"r{i}", {"seconds": 0.3}) for i in range(2))
        )

    assert {r.json()["tmpdir"] for r in answers} == {str(private)}
    assert sorted(os.listdir(private)) == sorted(str(r.json()["pid"]) for r in answers)


async def test_the_agent_takes_no_more_invocations_than_the_environments_placed(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=4, timeout=10, control=True)
    sleep = {"action": "sleep", "seconds": 1.0}

    async with async_client(agent) as client:
        agent.send_control(b'{"environments": 2}\n')
        await _wait_for_concurrency(client, 2)
        running = [asyncio.create_task(invoke_async(client, f"r{i}", sleep)) for i in range(2)]
        await _wait_for_idle(client, 0)
        third = await invoke_async(client, "r3", {})
        done = await asyncio.gather(*running)
        agent.send_control(b'{"environments": 3}\n')
        await _wait_for_concurrency(client, 3)
        again = await asyncio.gather(*(invoke_async(client, f"s{i}", sleep) for i in range(3)))

    assert (third.status_code, third.headers["Kubelambda-Agent-Busy"]) == (503, "1")
    assert [r.status_code for r in done + again] == [200] * 5
    assert len({r.json()["pid"] for r in again}) == 3


async def test_runtimes_beyond_the_environments_placed_stop_once_idle(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=3, timeout=10, control=True)
    async with async_client(agent) as client:
        burst = await asyncio.gather(
            *(invoke_async(client, f"r{i}", {"action": "sleep", "seconds": 0.3}) for i in range(3))
        )
        assert len(_runtime_processes(agent)) == 3
        # One still busy when the launcher gives two environments up.
        busy = asyncio.create_task(invoke_async(client, "b", {"action": "sleep", "seconds": 0.5}))
        await _wait_for_idle(client, 2)
        agent.send_control(b'{"environments": 1}\n')
        await _wait_for_started(client, 1)
        answer = await busy

    assert [r.status_code for r in burst] == [200] * 3
    assert answer.status_code == 200
    # The one left is the busy one: idle ones went at once, not after an idle timeout.
    assert await _runtime_processes_settled(agent, 1) == {answer.json()["pid"]}


async def test_a_busy_runtime_beyond_the_environments_placed_stops_when_its_invocation_ends(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=2, timeout=10, control=True)
    sleep = {"action": "sleep", "seconds": 0.5}
    async with async_client(agent) as client:
        running = [asyncio.create_task(invoke_async(client, f"r{i}", sleep)) for i in range(2)]
        await _wait_for_idle(client, 0)
        agent.send_control(b'{"environments": 1}\n')
        await _wait_for_concurrency(client, 1)
        # The second runtime may still be on its way (forked once the zygote is ready).
        both_busy = len(await _runtime_processes_settled(agent, 2))
        answers = await asyncio.gather(*running)
        await _wait_for_started(client, 1)

    assert both_busy == 2
    assert [r.status_code for r in answers] == [200, 200]
    assert len(await _runtime_processes_settled(agent, 1)) == 1


async def test_environments_of_two_slots_take_two_invocations_each_and_share_a_directory(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    private = _private_directory(tmp_path)
    agent = start_agent(
        TMPDIR_FUNCTION,
        concurrency=4,
        timeout=10,
        control=True,
        environment_concurrency=2,
        env={"TMPDIR": str(private)},
    )
    sleep = {"seconds": 1.0}
    async with async_client(agent) as client:
        agent.send_control(b'{"environments": 1}\n')
        await _wait_for_concurrency(client, 2)
        running = [asyncio.create_task(invoke_async(client, f"r{i}", sleep)) for i in range(2)]
        await _wait_for_idle(client, 0)
        third = await invoke_async(client, "r3", {"seconds": 0})
        await asyncio.gather(*running)
        agent.send_control(b'{"environments": 2}\n')
        await _wait_for_concurrency(client, 4)
        four = await asyncio.gather(*(invoke_async(client, f"s{i}", sleep) for i in range(4)))

    assert third.status_code == 503
    assert [r.status_code for r in four] == [200] * 4
    assert len({r.json()["pid"] for r in four}) == 4
    assert {r.json()["tmpdir"] for r in four} == {str(private)}


async def test_control_lines_it_cannot_use_leave_the_agent_serving(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=3, control=True)
    for line in (
        b"nonsense\n",
        b'{"environments": 0}\n',
        b'{"environments": 4}\n',
        b'{"environments": "2"}\n',
        b'{"environments": true}\n',
        b"[1]\n",
        b"x" * 5000 + b"\n",
    ):
        agent.send_control(line)
    async with async_client(agent) as client:
        agent.send_control(b'{"environments": 2}\n')
        await _wait_for_concurrency(client, 2)
        answer = await invoke_async(client, "r", {})

    assert answer.status_code == 200
    assert agent.process.poll() is None


def _private_directory(tmp_path: Path) -> Path:
    """An instance's private directory, as the launcher makes it (its ``TMPDIR``)."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    return private


def _start_marked_agent(start_agent: StartAgent, tmp_path: Path, *, timeout: float) -> Agent:
    """Two slots of ``MARKED_INIT_FUNCTION``, its markers in ``tmp_path``, one runtime started."""
    return start_agent(
        MARKED_INIT_FUNCTION,
        concurrency=2,
        timeout=timeout,
        env={"INIT_MARKERS": str(tmp_path)},
    )


async def _occupy_first_runtime(client: httpx.AsyncClient) -> asyncio.Task[httpx.Response]:
    """Keep the started runtime busy for half a second: the next invocation starts another."""
    busy = asyncio.create_task(invoke_async(client, "busy", {"seconds": 0.5}))
    await _wait_for_idle(client, 1)
    return busy


async def _staggered_burst(client: httpx.AsyncClient, seconds: list[float]) -> list[httpx.Response]:
    """Invocations sleeping ``seconds``, sent 50 ms apart so that they take the slots in
    that order (each after the first starts a runtime: the first sleeps past the last
    send) and end in that order."""
    sent = []
    for index, duration in enumerate(seconds):
        event = {"action": "sleep", "seconds": duration}
        sent.append(asyncio.create_task(invoke_async(client, f"b{index}", event)))
        await asyncio.sleep(0.05)
    return list(await asyncio.gather(*sent))


async def _wait_for_started(client: httpx.AsyncClient, started: int) -> None:
    for _ in range(500):
        if (await client.get("/ready")).json()["started"] == started:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the agent never had {started} runtimes started")


async def _wait_for_concurrency(client: httpx.AsyncClient, concurrency: int) -> None:
    for _ in range(500):
        if (await client.get("/ready")).json()["concurrency"] == concurrency:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the agent never served {concurrency} at once")


async def _wait_for_idle(client: httpx.AsyncClient, idle: int) -> None:
    for _ in range(500):
        if (await client.get("/ready")).json()["idle"] == idle:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the agent never had {idle} idle slots")


def _runtime_processes(agent: Agent) -> set[int]:
    """The agent's child processes running the python bootstrap, its zygote aside."""
    return {
        child for child in bootstrap_children(agent.process.pid) if not is_runtime_zygote(child)
    }


async def _runtime_processes_settled(agent: Agent, count: int) -> set[int]:
    """The runtime processes once ``count`` are left: the agent has stopped the others
    when its slots say so, but a killed process takes a moment to be gone."""
    for _ in range(500):
        if len(found := _runtime_processes(agent)) == count:
            return found
        await asyncio.sleep(0.01)
    return _runtime_processes(agent)


async def _runtime_processes_replaced(agent: Agent, gone: int, *, count: int) -> set[int]:
    """The ``count`` runtime processes once the agent has started one in place of
    ``gone``: it saw the exit (a killed process is out of the table before the agent has
    reaped it)."""
    for _ in range(500):
        found = _runtime_processes(agent)
        if gone not in found and len(found) == count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"the agent never replaced runtime {gone}")
