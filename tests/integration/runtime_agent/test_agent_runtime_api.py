"""The Runtime API's refusals, sent by the test straight to a real runtime's listener."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from agent_harness import Agent, StartAgent

API = "/2018-06-01/runtime"


@pytest.fixture
def runtime_api(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> Iterator[tuple[Agent, httpx.Client]]:
    agent = start_agent(echo_function)
    env = agent.invoke({"action": "env"}, request_id="req-done").json
    assert isinstance(env, dict)
    with httpx.Client(base_url=f"http://{env['AWS_LAMBDA_RUNTIME_API']}", timeout=10) as client:
        yield agent, client


@pytest.mark.parametrize(
    ("method", "path", "status", "error_type"),
    [
        ("POST", f"{API}/invocation/no-such-id/response", 400, "InvalidRequestID"),
        ("POST", f"{API}/invocation/no-such-id/error", 400, "InvalidRequestID"),
        ("POST", f"{API}/invocation/req-done/response", 403, "InvalidStateTransition"),
        ("POST", f"{API}/init/error", 403, "InvalidStateTransition"),
        ("GET", f"{API}/invocation/req-done/response", 405, "MethodNotAllowed"),
        ("POST", f"{API}/invocation/next", 405, "MethodNotAllowed"),
        ("GET", f"{API}/invocation/req-done/status", 404, "InvalidURL"),
        ("GET", "/2020-01-01/extension/register", 404, "InvalidURL"),
    ],
)
def test_runtime_api_refuses_requests_out_of_turn(
    runtime_api: tuple[Agent, httpx.Client], method: str, path: str, status: int, error_type: str
) -> None:
    _, client = runtime_api

    response = client.request(method, path, content=b"{}")

    assert response.status_code == status
    assert response.json()["errorType"] == error_type


def test_refused_requests_leave_the_runtime_serving(
    runtime_api: tuple[Agent, httpx.Client],
) -> None:
    agent, client = runtime_api

    client.post(f"{API}/invocation/no-such-id/response", content=b"{}")

    assert agent.invoke({"still": "fine"}).json == {"still": "fine"}
