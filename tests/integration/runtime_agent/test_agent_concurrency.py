"""Per-instance concurrency: N runtimes each serving one invocation, the N+1th refused."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
from agent_harness import FUNCTION_ARN, INVOKE_TOKEN_HEADER, StartAgent


async def _invoke(client: httpx.AsyncClient, request_id: str, event: object) -> httpx.Response:
    return await client.post(
        "/invoke",
        content=json.dumps(event).encode(),
        headers={
            "Kubelambda-Request-Id": request_id,
            "Kubelambda-Invoked-Function-Arn": FUNCTION_ARN,
        },
    )


async def test_four_runtimes_serve_four_invocations_at_once(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=4, timeout=10)
    sleep = {"action": "sleep", "seconds": 1.5}

    async with httpx.AsyncClient(
        base_url=agent.url, timeout=30, headers={INVOKE_TOKEN_HEADER: agent.token}
    ) as client:
        began = time.monotonic()
        responses = await asyncio.gather(*(_invoke(client, f"r{i}", sleep) for i in range(4)))
        elapsed = time.monotonic() - began

    assert [r.status_code for r in responses] == [200] * 4
    assert elapsed < 2 * 1.5
    assert len({r.json()["pid"] for r in responses}) == 4


async def test_fifth_concurrent_invocation_is_refused_as_busy(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, concurrency=4, timeout=10)
    sleep = {"action": "sleep", "seconds": 1.5}

    async with httpx.AsyncClient(
        base_url=agent.url, timeout=30, headers={INVOKE_TOKEN_HEADER: agent.token}
    ) as client:
        running = [asyncio.create_task(_invoke(client, f"r{i}", sleep)) for i in range(4)]
        # The agent is another process: poll its readiness until all four are taken.
        for _ in range(500):
            if (await client.get("/ready")).json()["idle"] == 0:
                break
            await asyncio.sleep(0.01)
        fifth = await _invoke(client, "r5", {})
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
    assert response.json() == {"concurrency": 3, "idle": 3}


def test_ready_without_the_token_tells_only_its_status(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    # The kubelet's readiness probe carries no token; other pods must not learn how busy
    # the function is from it.
    agent = start_agent(echo_function, concurrency=3)

    response = httpx.get(f"{agent.url}/ready")

    assert response.status_code == 200
    assert response.content == b"{}"
