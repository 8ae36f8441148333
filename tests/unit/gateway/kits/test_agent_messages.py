"""Reading an agent's answer (``AgentOutcome``) and writing its request (``AgentCall``),
without a socket; the wire itself is covered against real servers in the integration
tests (``tests/integration/gateway/invoke/test_agent_client.py``)."""

from __future__ import annotations

import pytest
from kubelambda_agent import protocol

from gateway.kits.agent_client import AgentCall, AgentOutcome


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
    outcome = AgentOutcome.from_response(b"", headers)
    assert (outcome.duration_seconds, outcome.init_duration_seconds) == (duration, init)


def test_function_error_and_log_result_are_read_from_the_protocol_headers() -> None:
    outcome = AgentOutcome.from_response(
        b'{"errorType": "ValueError"}',
        {protocol.FUNCTION_ERROR.lower(): "Unhandled", protocol.LOG_RESULT.lower(): "bG9n"},
    )
    assert (outcome.function_error, outcome.log_result) == ("Unhandled", "bG9n")
    assert outcome.body == b'{"errorType": "ValueError"}'


def test_a_plain_success_has_no_error_and_no_log() -> None:
    outcome = AgentOutcome.from_response(b"1", {})
    assert (outcome.function_error, outcome.log_result) == (None, None)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            AgentCall(request_id="rid", invoked_function_arn="arn", payload=b"{}", read_timeout=1),
            {protocol.REQUEST_ID: "rid", protocol.INVOKED_FUNCTION_ARN: "arn"},
        ),
        (
            AgentCall(
                request_id="rid",
                invoked_function_arn="arn",
                payload=b"{}",
                read_timeout=1,
                client_context='{"custom":{"k":"v"}}',
                trace_id="Root=1",
                tail=True,
            ),
            {
                protocol.REQUEST_ID: "rid",
                protocol.INVOKED_FUNCTION_ARN: "arn",
                protocol.CLIENT_CONTEXT: '{"custom":{"k":"v"}}',
                protocol.TRACE_ID: "Root=1",
                protocol.LOG_TYPE: "Tail",
            },
        ),
    ],
    ids=["bare", "everything"],
)
def test_call_headers_carry_only_what_was_given(call: AgentCall, expected: dict[str, str]) -> None:
    assert dict(call.headers()) == expected
