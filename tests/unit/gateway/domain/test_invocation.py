"""Validation of Invoke's headers, client context and payload."""

from __future__ import annotations

import base64
import json

import pytest

from gateway.domain import invocation
from gateway.domain.invocation import InvocationType
from kubelambda import errors


def _b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, InvocationType.REQUEST_RESPONSE),
        ("", InvocationType.REQUEST_RESPONSE),
        ("RequestResponse", InvocationType.REQUEST_RESPONSE),
        ("DryRun", InvocationType.DRY_RUN),
    ],
)
def test_invocation_type_accepted(header: str | None, expected: InvocationType) -> None:
    assert invocation.parse_invocation_type(header) is expected


def test_invocation_type_unknown_is_validation_error() -> None:
    with pytest.raises(errors.Validation, match="Value 'Later' at 'invocationType'"):
        invocation.parse_invocation_type("Later")


def test_invocation_type_event_is_accepted() -> None:
    assert invocation.parse_invocation_type("Event") is invocation.InvocationType.EVENT


@pytest.mark.parametrize(("header", "tail"), [(None, False), ("None", False), ("Tail", True)])
def test_log_type(header: str | None, tail: bool) -> None:
    assert invocation.parse_log_type(header) is tail


def test_log_type_unknown_is_validation_error() -> None:
    with pytest.raises(errors.Validation, match="at 'logType'"):
        invocation.parse_log_type("All")


def test_client_context_valid_is_decoded_once_into_compact_json() -> None:
    value = _b64({"custom": {"a": "b"}})
    assert invocation.check_client_context(value) == '{"custom":{"a":"b"}}'


def test_client_context_is_handed_on_as_one_line_of_ascii_json() -> None:
    pretty = json.dumps({"custom": {"greeting": "héllo\nthere"}}, indent=2, ensure_ascii=False)
    value = base64.b64encode(pretty.encode()).decode()
    decoded = invocation.check_client_context(value)
    assert decoded is not None
    assert decoded.isascii() and "\n" not in decoded
    assert json.loads(decoded) == {"custom": {"greeting": "héllo\nthere"}}


def test_client_context_absent_is_none() -> None:
    assert invocation.check_client_context(None) is None


@pytest.mark.parametrize(
    "value",
    [
        "not base64!",
        base64.b64encode(b"not json").decode(),
        _b64(["a", "list"]),
        base64.b64encode(b"\xff\xfe").decode(),
    ],
)
def test_client_context_invalid_is_request_content_error(value: str) -> None:
    with pytest.raises(errors.InvalidRequestContent, match="valid Base64-encoded JSON object"):
        invocation.check_client_context(value)


def test_client_context_at_limit_is_accepted_and_over_is_refused() -> None:
    # base64 of n bytes is 4*ceil(n/3) characters: pick JSON whose encoding hits the limit.
    at_limit = _b64({"k": "x" * (invocation.MAX_CLIENT_CONTEXT_BYTES // 4 * 3 - 10)})
    assert len(at_limit) <= invocation.MAX_CLIENT_CONTEXT_BYTES
    invocation.check_client_context(at_limit)
    over = _b64({"k": "x" * invocation.MAX_CLIENT_CONTEXT_BYTES})
    with pytest.raises(errors.InvalidParameterValue, match="3583"):
        invocation.check_client_context(over)


def test_options_from_headers_combines_the_checks() -> None:
    options = invocation.InvokeOptions.from_headers(
        invocation_type="DryRun", log_type="Tail", client_context=None
    )
    assert options == invocation.InvokeOptions(InvocationType.DRY_RUN, tail=True)


@pytest.mark.parametrize(
    ("body", "sent"),
    [(b"", b"{}"), (b'{"a": 1}', b'{"a": 1}'), (b"42", b"42"), (b'"s"', b'"s"')],
)
def test_payload_json_is_sent_and_empty_becomes_object(body: bytes, sent: bytes) -> None:
    assert invocation.check_payload(body) == sent


@pytest.mark.parametrize("body", [b"abc", b"{", b"\xff"])
def test_payload_not_json_is_request_content_error(body: bytes) -> None:
    with pytest.raises(errors.InvalidRequestContent, match=r"^Could not parse request body into"):
        invocation.check_payload(body)
