"""Runtimes other than the agent's own interpreter: python3.12, and provided with awslambdaric."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from agent_harness import StartAgent

PYENV_PYTHON_312 = Path("/root/.pyenv/versions/3.12.1/bin/python3.12")


def _python_312() -> str | None:
    found = shutil.which("python3.12")
    # pyenv's shims are on PATH for every version and fail for the inactive ones.
    if found and "/shims/" not in found:
        return found
    return str(PYENV_PYTHON_312) if os.access(PYENV_PYTHON_312, os.X_OK) else None


PYTHON_312 = _python_312()


@pytest.mark.skipif(PYTHON_312 is None, reason="no python3.12 interpreter on this host")
def test_python312_runtime_runs_the_handler_under_python312(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, runtime="python3.12", python=PYTHON_312)

    trace = {"Kubelambda-Trace-Id": "Root=1-c-312"}
    context = agent.invoke({"action": "context"}, headers=trace).json
    env = agent.invoke({"action": "env"}).json

    assert isinstance(context, dict) and isinstance(env, dict)
    assert context["python"] == [3, 12]
    assert context["trace"] == "Root=1-c-312"
    assert env["AWS_EXECUTION_ENV"] == "AWS_Lambda_python3.12"


@pytest.mark.skipif(PYTHON_312 is None, reason="no python3.12 interpreter on this host")
def test_python312_runtime_reports_handler_errors(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(echo_function, runtime="python3.12", python=PYTHON_312)

    result = agent.invoke({"action": "fail", "text": "under 3.12"})

    assert result.function_error == "Unhandled"
    assert result.json["errorMessage"] == "under 3.12"  # type: ignore[index]


def _awslambdaric_function(echo_function: dict[str, str]) -> dict[str, str]:
    # The official runtime interface client, unchanged, as a custom runtime's bootstrap.
    bootstrap = f'#!/bin/sh\nexec {sys.executable} -m awslambdaric "$_HANDLER"\n'
    return {**echo_function, "bootstrap": bootstrap}


def test_provided_runtime_runs_awslambdaric(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(_awslambdaric_function(echo_function), runtime="provided.al2023")

    result = agent.invoke({"hello": "ric"})
    context = agent.invoke({"action": "context"}, request_id="req-ric-ctx").json

    assert result.status == 200
    assert result.json == {"hello": "ric"}
    assert isinstance(context, dict)
    assert context["aws_request_id"] == "req-ric-ctx"
    assert context["memory_limit_in_mb"] == "256"
    assert 0 < context["remaining"] <= 3000


def test_provided_runtime_reports_awslambdaric_errors(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(_awslambdaric_function(echo_function), runtime="provided.al2023")

    result = agent.invoke(
        {"action": "fail", "text": "ric broke"}, request_id="req-ric-err", tail=True
    )

    assert result.function_error == "Unhandled"
    error = result.json
    assert isinstance(error, dict)
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "ric broke"
    assert error["requestId"] == "req-ric-err"
    assert "[ERROR] ValueError: ric broke" in result.log_tail


def test_provided_runtime_tail_log_has_the_handler_output(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(_awslambdaric_function(echo_function), runtime="provided.al2023")

    result = agent.invoke(
        {"action": "print", "text": "printed under ric"}, request_id="req-ric-log", tail=True
    )

    lines = result.log_tail.splitlines()
    assert lines[0] == "START RequestId: req-ric-log Version: $LATEST"
    assert "printed under ric" in lines
    assert lines[-2] == "END RequestId: req-ric-log"
    assert lines[-1].startswith("REPORT RequestId: req-ric-log\t")


def test_provided_runtime_init_error_from_awslambdaric(
    start_agent: StartAgent, echo_function: dict[str, str]
) -> None:
    agent = start_agent(
        _awslambdaric_function(echo_function), runtime="provided.al2023", handler="missing.handler"
    )

    result = agent.invoke({})

    assert result.function_error == "Unhandled"
    assert result.json["errorType"] == "Runtime.ImportModuleError"  # type: ignore[index]
