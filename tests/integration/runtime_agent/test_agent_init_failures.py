"""Init failures: the invocation that meets one gets the error, and the runtime restarts."""

from __future__ import annotations

import pytest
from agent_harness import StartAgent

BROKEN_FUNCTIONS = [
    pytest.param(
        {"app.py": "def handler(event, context):\n    return 1\n"},
        "nosuchmodule.handler",
        "Runtime.ImportModuleError",
        "Unable to import module 'nosuchmodule': No module named 'nosuchmodule'",
        id="missing-module",
    ),
    pytest.param(
        {"app.py": "def other(event, context):\n    return 1\n"},
        "app.handler",
        "Runtime.HandlerNotFound",
        "Handler 'handler' missing on module 'app'",
        id="missing-function",
    ),
    pytest.param(
        {"app.py": "raise KeyError('needed at import')\n"},
        "app.handler",
        "KeyError",
        "'needed at import'",
        id="exception-at-import",
    ),
    pytest.param(
        {"app.py": "def handler(event, context) return 1\n"},
        "app.handler",
        "Runtime.UserCodeSyntaxError",
        "Syntax error in module 'app'",
        id="syntax-error",
    ),
    pytest.param(
        {"app.py": "def handler(event, context):\n    return 1\n"},
        "nodot",
        "Runtime.MalformedHandlerName",
        "Bad handler 'nodot'",
        id="malformed-handler",
    ),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), BROKEN_FUNCTIONS)
def test_invocation_gets_the_init_error(
    start_agent: StartAgent, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    agent = start_agent(files, handler=handler)

    result = agent.invoke({}, tail=True)

    assert result.status == 200
    assert result.function_error == "Unhandled"
    error = result.json
    assert isinstance(error, dict)
    assert error["errorType"] == error_type
    assert error["errorMessage"].startswith(message)
    assert "Init Duration: " in result.log_tail


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), BROKEN_FUNCTIONS)
def test_init_error_output_is_in_the_tail_of_the_invocation_that_meets_it(
    start_agent: StartAgent, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    agent = start_agent(files, handler=handler)

    tail = agent.invoke({}, tail=True).log_tail

    assert f"[ERROR] {error_type}: {message}" in tail
    assert tail.index("START RequestId:") < tail.index("[ERROR]") < tail.index("END RequestId:")


def test_packages_resolve_dotted_handlers(start_agent: StartAgent) -> None:
    agent = start_agent(
        {"pkg/__init__.py": "", "pkg/mod.py": "def run(event, context):\n    return 'deep'\n"},
        handler="pkg.mod.run",
    )

    assert agent.invoke({}).json == "deep"


def test_runtime_restarts_after_an_init_failure(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": "raise RuntimeError('first init fails')\n"})
    first = agent.invoke({})

    agent.wait_idle()
    second = agent.invoke({}, tail=True)

    assert first.json == second.json
    # A fresh runtime process ran init again: the second meeting is a cold start too.
    assert "Kubelambda-Init-Duration-Ms" in second.headers


def test_runtime_that_exits_during_init_gives_exit_error(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": "import os\nos._exit(7)\n"})

    result = agent.invoke({}, request_id="req-init-exit")

    assert result.function_error == "Unhandled"
    assert result.json == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: req-init-exit Error: Runtime exited with error: exit status 7",
    }


def test_missing_bootstrap_is_an_invalid_entrypoint(start_agent: StartAgent) -> None:
    agent = start_agent({"README": "no bootstrap here"}, runtime="provided.al2023")

    result = agent.invoke({}, request_id="req-noboot")

    error = result.json
    assert isinstance(error, dict)
    assert error["errorType"] == "Runtime.InvalidEntrypoint"
    assert error["errorMessage"].startswith("RequestId: req-noboot Error: fork/exec ")
    assert error["errorMessage"].endswith("bootstrap: no such file or directory")
