"""Only the holder of an instance's invoke token can run its function.

The token is what stands between every other process on the host (or in the cluster)
and the function's invoke port: the gateway presents it, the function must not see it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from agent_harness import INVOKE_TOKEN_HEADER, Agent, StartAgent

MARKING_FUNCTION = {
    "app.py": """
        import os


        def handler(event, context):
            with open(os.environ["MARK_FILE"], "a") as mark:
                mark.write(context.aws_request_id + "\\n")
            return "ran"
    """
}

SNOOPING_FUNCTION = {
    "app.py": """
        import os


        def _readable_environs():
            found = {}
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                try:
                    with open(f"/proc/{name}/environ", "rb") as f:
                        found[name] = f.read().decode("latin-1")
                except OSError:
                    pass
            return found


        def handler(event, context):
            with open("/proc/self/environ", "rb") as f:
                own = f.read().decode("latin-1")
            return {
                "os_environ": dict(os.environ),
                "proc_self_environ": own,
                "other_environs": _readable_environs(),
                "agent_pid": os.getppid(),
            }
    """
}


def _post(agent: Agent, headers: dict[str, str]) -> int:
    response = agent.client.post(
        "/invoke",
        content=b"{}",
        headers={
            "Kubelambda-Request-Id": "hostile",
            "Kubelambda-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:1:function:echo",
            **headers,
        },
    )
    return response.status_code


@pytest.mark.parametrize(
    "headers",
    [{}, {INVOKE_TOKEN_HEADER: "wrong"}, {INVOKE_TOKEN_HEADER: ""}],
    ids=["no-token", "wrong-token", "empty-token"],
)
def test_invoke_without_the_right_token_is_refused_and_runs_nothing(
    start_agent: StartAgent, tmp_path: Path, headers: dict[str, str]
) -> None:
    mark = tmp_path / "ran.txt"
    agent = start_agent(MARKING_FUNCTION, env={"MARK_FILE": str(mark)})
    assert _post(agent, headers) == 403
    assert not mark.exists()
    # The right token still works, and only that invocation ran.
    assert _post(agent, {INVOKE_TOKEN_HEADER: agent.token}) == 200
    assert mark.read_text() == "hostile\n"


def test_ready_needs_no_token(start_agent: StartAgent, echo_function: dict[str, str]) -> None:
    agent = start_agent(echo_function)
    assert agent.ready().status_code == 200


def test_agent_without_a_token_refuses_to_start(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    with pytest.raises(AssertionError, match=r"did not announce readiness|ready fd closed"):
        start_agent(echo_function, token=" ")


def test_function_cannot_read_its_own_token(start_agent: StartAgent) -> None:
    agent = start_agent(SNOOPING_FUNCTION)
    result = agent.invoke({})
    assert result.status == 200
    seen = result.json
    assert isinstance(seen, dict)
    assert agent.token not in json.dumps(seen["os_environ"])
    assert agent.token not in seen["proc_self_environ"]
    assert "KUBELAMBDA_AGENT_INVOKE_TOKEN" not in json.dumps(seen["os_environ"])


@pytest.mark.skipif(
    os.geteuid() == 0, reason="root reads every process's environment; run as a user to check"
)
def test_function_cannot_read_the_token_from_its_agent(start_agent: StartAgent) -> None:
    agent = start_agent(SNOOPING_FUNCTION)
    seen = agent.invoke({}).json
    assert isinstance(seen, dict)
    assert str(seen["agent_pid"]) not in seen["other_environs"]
    assert agent.token not in json.dumps(seen["other_environs"])
