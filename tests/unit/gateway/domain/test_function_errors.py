"""Mapping of an agent's answer to Lambda's Invoke response headers and error labels."""

from __future__ import annotations

import json

import pytest

from gateway.domain import responses
from gateway.domain.responses import AgentResult


def _headers(result: AgentResult, *, tail: bool) -> dict[bytes, bytes]:
    return dict(responses.invoke_headers(result, request_id="rid", executed_version="3", tail=tail))


def test_success_headers() -> None:
    assert _headers(AgentResult(b"{}", {}), tail=False) == {
        b"content-type": b"application/json",
        b"x-amzn-requestid": b"rid",
        b"x-amz-executed-version": b"3",
    }


def test_function_error_is_reported() -> None:
    result = AgentResult(b"{}", {"kubelambda-function-error": "Unhandled"})
    assert _headers(result, tail=False)[b"x-amz-function-error"] == b"Unhandled"


@pytest.mark.parametrize(("tail", "present"), [(True, True), (False, False)])
def test_log_result_only_when_tail_asked(tail: bool, present: bool) -> None:
    result = AgentResult(b"{}", {"kubelambda-log-result": "bG9n"})
    assert (b"x-amz-log-result" in _headers(result, tail=tail)) is present


@pytest.mark.parametrize(
    ("headers", "duration", "init"),
    [
        ({"kubelambda-duration-ms": "12.5"}, 0.0125, None),
        ({"kubelambda-duration-ms": "1", "kubelambda-init-duration-ms": "250"}, 0.001, 0.25),
        ({"kubelambda-duration-ms": "junk"}, None, None),
        ({}, None, None),
    ],
)
def test_durations_are_read_in_seconds(
    headers: dict[str, str], duration: float | None, init: float | None
) -> None:
    result = AgentResult(b"", headers)
    assert result.duration_seconds == duration
    assert result.init_duration_seconds == init


@pytest.mark.parametrize(
    ("body", "label"),
    [
        (json.dumps({"errorType": "Sandbox.Timedout"}).encode(), "Sandbox.Timedout"),
        (json.dumps({"errorType": "Runtime.ExitError"}).encode(), "Runtime.ExitError"),
        (json.dumps({"errorType": "MyOwnError"}).encode(), "Unhandled"),
        (json.dumps({"errorMessage": "no type"}).encode(), "Unhandled"),
        (b"[1]", "Unhandled"),
        (b"not json", "Unhandled"),
    ],
)
def test_error_type_label_is_bounded(body: bytes, label: str) -> None:
    assert responses.error_type_label(body) == label
