"""What an asynchronous invocation leaves behind: destination records and dead letters.

The dispatcher builds them when an event's processing ends; ``kubelambda dlq`` reads
dead letters back. Both formats are Lambda's, so consumers written for Lambda read them
unchanged:

- A **destination record** (OnSuccess / OnFailure) is JSON: ``version``, ``timestamp``,
  ``requestContext`` (``requestId``, ``functionArn`` with the qualifier,
  ``condition``, ``approximateInvokeCount``), ``requestPayload``, and, when the
  function ran, ``responseContext`` (``statusCode``, ``executedVersion``,
  ``functionError``) and ``responsePayload``.
- A **dead letter** is the original payload as the message value, with the SQS message
  attributes Lambda sets (``RequestID``, ``ErrorCode``, ``ErrorMessage``) as headers,
  plus ours: ``FunctionArn``, ``Condition``, ``Attempts``, ``AcceptedAt``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from kubelambda.ports.queue import TopicMessage, TopicRecord

__all__ = ["DeadLetter", "Outcome", "dead_letter", "destination_record"]

# Lambda truncates ErrorMessage to 1 KB in its dead-letter attributes.
_MAX_ERROR_MESSAGE = 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an event's last invocation went, when one ran (``None`` fields otherwise)."""

    status_code: int | None = None
    executed_version: str | None = None
    function_error: str | None = None
    response_payload: bytes | None = None


def destination_record(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    invoke_count: int,
    request_payload: bytes,
    outcome: Outcome,
    at: float,
) -> bytes:
    """Lambda's destination record, as JSON bytes."""
    record: dict[str, object] = {
        "version": "1.0",
        "timestamp": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "requestContext": {
            "requestId": request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": _json_or_text(request_payload),
    }
    if outcome.status_code is not None:
        response: dict[str, object] = {
            "statusCode": outcome.status_code,
            "executedVersion": outcome.executed_version,
        }
        if outcome.function_error:
            response["functionError"] = outcome.function_error
        record["responseContext"] = response
        if outcome.response_payload is not None:
            record["responsePayload"] = _json_or_text(outcome.response_payload)
    return json.dumps(record, separators=(",", ":")).encode()


def dead_letter(
    *,
    request_id: str,
    function_arn: str,
    condition: str,
    attempts: int,
    accepted_at: float,
    payload: bytes,
    error_code: str,
    error_message: str,
) -> TopicMessage:
    return TopicMessage(
        value=payload,
        key=request_id,
        headers={
            "RequestID": request_id,
            "ErrorCode": error_code,
            "ErrorMessage": error_message[:_MAX_ERROR_MESSAGE],
            "FunctionArn": function_arn,
            "Condition": condition,
            "Attempts": str(attempts),
            "AcceptedAt": f"{accepted_at:.3f}",
        },
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter read back from its topic (``kubelambda dlq list``)."""

    record: TopicRecord
    request_id: str
    function_arn: str
    condition: str
    error_code: str
    error_message: str
    attempts: int
    accepted_at: float

    @classmethod
    def from_record(cls, record: TopicRecord) -> DeadLetter:
        headers = record.message.headers
        return cls(
            record=record,
            request_id=headers.get("RequestID", ""),
            function_arn=headers.get("FunctionArn", ""),
            condition=headers.get("Condition", ""),
            error_code=headers.get("ErrorCode", ""),
            error_message=headers.get("ErrorMessage", ""),
            attempts=_int(headers.get("Attempts")),
            accepted_at=_float(headers.get("AcceptedAt"), default=record.timestamp),
        )

    @property
    def payload(self) -> bytes:
        return self.record.message.value


def _json_or_text(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _float(value: str | None, *, default: float) -> float:
    try:
        return float(value) if value else default
    except ValueError:
        return default
