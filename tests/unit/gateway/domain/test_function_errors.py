"""The bounded error type of a function error body, for metric labels."""

from __future__ import annotations

import json

import pytest

from gateway.domain import function_errors


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
    assert function_errors.error_type_label(body) == label
