"""The invocation record: its bounded log and the Runtime API headers it becomes."""

from __future__ import annotations

from kubelambda_agent import log_lines
from kubelambda_agent.invocation import Invocation, Outcome


def _invocation(**changes: object) -> Invocation:
    def ignore(outcome: Outcome) -> None:
        return None

    fields: dict[str, object] = {
        "request_id": "r1",
        "function_arn": "arn:aws:lambda:us-east-1:123456789012:function:f:7",
        "event": b"{}",
        "trace_id": "Root=1-2-3",
        "complete": ignore,
        "deadline_ms": 1234,
    }
    fields.update(changes)
    return Invocation(**fields)  # type: ignore[arg-type]


def test_log_is_not_kept_without_tail() -> None:
    invocation = _invocation()

    invocation.record_log(b"line\n")

    assert invocation.log == b""


def test_log_keeps_at_least_the_tail() -> None:
    invocation = _invocation(want_tail=True)

    for i in range(5000):
        invocation.record_log(b"%d\n" % i)

    assert len(invocation.log) <= 2 * log_lines.TAIL_BYTES
    assert invocation.log.endswith(b"4998\n4999\n")
    assert len(invocation.log) >= log_lines.TAIL_BYTES


def test_runtime_headers_carry_the_invocation() -> None:
    headers = dict(_invocation().runtime_headers())

    assert headers == {
        "Content-Type": "application/json",
        "Lambda-Runtime-Aws-Request-Id": "r1",
        "Lambda-Runtime-Deadline-Ms": "1234",
        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:f:7",
        "Lambda-Runtime-Trace-Id": "Root=1-2-3",
    }


def test_runtime_headers_add_client_context_and_identity_when_given() -> None:
    headers = dict(
        _invocation(client_context='{"custom":{}}', cognito_identity='{"id":1}').runtime_headers()
    )

    assert headers["Lambda-Runtime-Client-Context"] == '{"custom":{}}'
    assert headers["Lambda-Runtime-Cognito-Identity"] == '{"id":1}'
