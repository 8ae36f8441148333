"""Start-up, configuration errors, the invoke contract's refusals, and SIGTERM drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from agent_harness import AGENT_SOURCE, FUNCTION_ARN, INVOKE_TOKEN_HEADER, InvokeResult, StartAgent


def test_ready_fd_announces_the_bound_port(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function)

    assert agent.port > 0
    assert agent.ready().status_code == 200


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KUBELAMBDA_AGENT_RUNTIME", "cobol", "KUBELAMBDA_AGENT_RUNTIME='cobol'"),
        ("KUBELAMBDA_AGENT_CONCURRENCY", "0", "KUBELAMBDA_AGENT_CONCURRENCY=0"),
        ("KUBELAMBDA_AGENT_TIMEOUT_SECONDS", "soon", "KUBELAMBDA_AGENT_TIMEOUT_SECONDS='soon'"),
        ("KUBELAMBDA_AGENT_LISTEN", "8080", "KUBELAMBDA_AGENT_LISTEN='8080'"),
        ("KUBELAMBDA_AGENT_READY_FD", "987", "KUBELAMBDA_AGENT_READY_FD=987"),
    ],
)
def test_invalid_configuration_exits_non_zero_with_a_message(
    variable: str, value: str, message: str
) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(AGENT_SOURCE),
        "KUBELAMBDA_AGENT_RUNTIME": "python3.11",
        "KUBELAMBDA_AGENT_LISTEN": "127.0.0.1:0",
        variable: value,
    }

    done = subprocess.run(
        [sys.executable, "-m", "kubelambda_agent"], env=env, capture_output=True, timeout=30
    )

    assert done.returncode != 0
    assert message in done.stderr.decode()


@pytest.mark.parametrize("missing", ["Kubelambda-Request-Id", "Kubelambda-Invoked-Function-Arn"])
def test_missing_required_header_is_a_bad_request(
    start_agent: StartAgent, echo_function: dict[str, str], missing: str
) -> None:
    agent = start_agent(echo_function)
    headers = {
        "Kubelambda-Request-Id": "r1",
        "Kubelambda-Invoked-Function-Arn": FUNCTION_ARN,
        INVOKE_TOKEN_HEADER: agent.token,
    }
    del headers[missing]

    response = agent.client.post("/invoke", content=b"{}", headers=headers)

    assert response.status_code == 400
    assert missing in response.json()["errorMessage"]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Kubelambda-Client-Context", "not json!"),
        ("Kubelambda-Client-Context", "[1, 2]"),
        ("Kubelambda-Client-Context", "{broken"),
        ("Kubelambda-Cognito-Identity", "{broken"),
    ],
)
def test_context_header_that_is_not_a_json_object_is_a_bad_request(
    start_agent: StartAgent, echo_function: dict[str, str], header: str, value: str
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({}, headers={header: value})

    assert result.status == 400
    assert header in result.json["errorMessage"]  # type: ignore[index]


def test_sigterm_finishes_in_flight_work_refuses_new_and_exits_zero(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    # Two runtimes: one stays idle, so a refusal below can only come from draining.
    agent = start_agent(echo_function, concurrency=2, timeout=10)
    results: list[InvokeResult] = []
    in_flight = threading.Thread(
        target=lambda: results.append(agent.invoke({"action": "sleep", "seconds": 1.5}))
    )
    in_flight.start()
    agent.wait_idle_exactly(1)

    agent.process.send_signal(signal.SIGTERM)
    with httpx.Client(
        base_url=agent.url, headers={INVOKE_TOKEN_HEADER: agent.token}
    ) as late_client:
        deadline = time.monotonic() + 5
        while late_client.get("/ready").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        readiness = late_client.get("/ready")
        refused = late_client.post(
            "/invoke",
            content=b"{}",
            headers={
                "Kubelambda-Request-Id": "late",
                "Kubelambda-Invoked-Function-Arn": FUNCTION_ARN,
                INVOKE_TOKEN_HEADER: agent.token,
            },
        )
    in_flight.join(timeout=10)

    assert readiness.status_code == 503
    assert readiness.json()["idle"] == 1
    assert refused.status_code == 503
    assert refused.headers["Kubelambda-Agent-Busy"] == "1"
    assert results[0].status == 200
    assert results[0].json == {"slept": 1.5, "pid": results[0].json["pid"]}  # type: ignore[index]
    assert agent.process.wait(timeout=10) == 0


def test_an_agent_told_unix_serves_on_an_abstract_unix_socket(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, env={"KUBELAMBDA_AGENT_LISTEN": "unix"})

    assert agent.port == 0
    assert agent.unix_address is not None and agent.unix_address.startswith("\0")
    answered = agent.invoke({"action": "print", "text": "over unix"}, tail=True)
    assert answered.status == 200
    assert "over unix" in answered.log_tail
    # The name is no secret (any local process may connect, as to a port): the token is.
    refused = agent.invoke({}, headers={INVOKE_TOKEN_HEADER: "x" * 43})
    assert refused.status == 403


def test_sigterm_stops_the_runtimes(start_agent: StartAgent, echo_function: dict[str, str]) -> None:
    agent = start_agent(echo_function, concurrency=2)
    pid = agent.invoke({"action": "pid"}).json

    assert agent.terminate() == 0
    assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.parametrize("request_id", ["has/slash", "has space", "tab\there"])
def test_request_id_that_cannot_be_a_runtime_api_path_is_a_bad_request(
    start_agent: StartAgent, echo_function: dict[str, str], request_id: str
) -> None:
    agent = start_agent(echo_function)

    result = agent.invoke({}, request_id=request_id)

    assert result.status == 400
