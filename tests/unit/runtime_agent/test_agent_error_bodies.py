"""Error bodies the agent writes itself, worded as Lambda words them."""

from __future__ import annotations

import json
import signal

import pytest
from kubelambda_agent import error_bodies


def test_timeout_body() -> None:
    assert json.loads(error_bodies.timed_out("r1", 1)) == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": "RequestId: r1 Error: Task timed out after 1.00 seconds",
    }


@pytest.mark.parametrize(
    ("returncode", "words"),
    [
        (1, "exit status 1"),
        (3, "exit status 3"),
        (-signal.SIGKILL, "signal: killed"),
        (-signal.SIGSEGV, "signal: segmentation fault"),
        (-signal.SIGUSR1, "signal 10"),
    ],
)
def test_exit_description(returncode: int, words: str) -> None:
    assert error_bodies.exit_description(returncode) == words


def test_runtime_exit_body() -> None:
    assert json.loads(error_bodies.runtime_exit("r1", -signal.SIGKILL)) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: r1 Error: Runtime exited with error: signal: killed",
    }


def test_runtime_exit_with_status_zero_says_no_reason() -> None:
    body = json.loads(error_bodies.runtime_exit("r1", 0))

    assert body["errorMessage"] == "RequestId: r1 Error: Runtime exited without providing a reason"


def test_response_too_large_body() -> None:
    assert json.loads(error_bodies.response_too_large()) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size "
        "(6291556 bytes).",
    }


def test_function_error_passes_a_json_object_through() -> None:
    body = b'{"errorType": "ValueError", "errorMessage": "x", "stackTrace": []}'

    assert error_bodies.function_error(body, "ValueError") == body


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        (
            b"plain text",
            "Custom.Error",
            {"errorType": "Custom.Error", "errorMessage": "plain text"},
        ),
        (b"[1, 2]", None, {"errorType": "Unhandled", "errorMessage": "[1, 2]"}),
        (b"", None, {"errorType": "Unhandled", "errorMessage": ""}),
    ],
)
def test_function_error_wraps_anything_else(
    body: bytes, header: str | None, expected: dict[str, str]
) -> None:
    assert json.loads(error_bodies.function_error(body, header)) == expected


def test_init_failure_from_exit_names_the_request() -> None:
    failure = error_bodies.InitFailure.from_exit(2)

    assert json.loads(failure.body("r9")) == {
        "errorType": "Runtime.ExitError",
        "errorMessage": "RequestId: r9 Error: Runtime exited with error: exit status 2",
    }


def test_init_failure_returns_the_posted_body_as_is() -> None:
    posted = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "m", "requestId": ""}'
    failure = error_bodies.InitFailure("Runtime.ImportModuleError", posted_body=posted)

    assert failure.body("r9") == posted
