"""The Invoke use case's vocabulary, and the checks of what a request says about itself.

``InvokeRequest``/``InvokeResult`` are what the transport-free invoker takes and gives
(the HTTP edge builds one from headers, the async dispatcher from a queued event). The
checks run before anything is resolved or queued, so a malformed request is answered
with Lambda's 400 without holding capacity. Messages follow AWS's wording where known.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from enum import StrEnum

from kubelambda import errors
from kubelambda.names import FunctionRef

__all__ = [
    "MAX_ASYNC_PAYLOAD_BYTES",
    "MAX_CLIENT_CONTEXT_BYTES",
    "InvocationType",
    "InvokeOptions",
    "InvokeRequest",
    "InvokeResult",
    "check_client_context",
    "check_payload",
    "parse_invocation_type",
    "parse_log_type",
]

MAX_CLIENT_CONTEXT_BYTES = 3583
# Lambda's limit on an asynchronous invocation's payload (1 MB).
MAX_ASYNC_PAYLOAD_BYTES = 1_048_576


class InvocationType(StrEnum):
    REQUEST_RESPONSE = "RequestResponse"
    EVENT = "Event"
    DRY_RUN = "DryRun"


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    """One invocation to run. ``payload`` is JSON (``check_payload``); ``client_context``
    the decoded JSON object (``check_client_context``); ``tail`` asks for the log tail."""

    ref: FunctionRef
    payload: bytes
    request_id: str
    client_context: str | None = None
    trace_id: str | None = None
    tail: bool = False


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """How an invocation that ran ended: the result or error payload and its report.

    ``function_error`` is Lambda's ``X-Amz-Function-Error`` value (``Unhandled``) when
    the function failed; ``None`` on success. ``log_result`` is the base64 log tail when
    asked for. Durations are in seconds, as the instance measured them.
    """

    request_id: str
    executed_version: str
    payload: bytes
    function_error: str | None = None
    log_result: str | None = None
    duration_seconds: float | None = None
    init_duration_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class InvokeOptions:
    """The parsed invocation headers of one request."""

    invocation_type: InvocationType = InvocationType.REQUEST_RESPONSE
    tail: bool = False
    client_context: str | None = None

    @classmethod
    def from_headers(
        cls, *, invocation_type: str | None, log_type: str | None, client_context: str | None
    ) -> InvokeOptions:
        return cls(
            invocation_type=parse_invocation_type(invocation_type),
            tail=parse_log_type(log_type),
            client_context=check_client_context(client_context),
        )


def _enum_error(value: str, member: str, allowed: str) -> errors.Validation:
    # AWS answers a value outside the service model's enum with ValidationException.
    return errors.Validation(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{allowed}]"
    )


def parse_invocation_type(value: str | None) -> InvocationType:
    """``X-Amz-Invocation-Type``: absent means RequestResponse."""
    if not value:
        return InvocationType.REQUEST_RESPONSE
    try:
        return InvocationType(value)
    except ValueError:
        raise _enum_error(value, "invocationType", "Event, RequestResponse, DryRun") from None


def parse_log_type(value: str | None) -> bool:
    """``X-Amz-Log-Type``: whether the caller asked for the log tail."""
    if not value or value == "None":
        return False
    if value == "Tail":
        return True
    raise _enum_error(value, "logType", "None, Tail")


def check_client_context(value: str | None) -> str | None:
    """``X-Amz-Client-Context`` must be base64 of a JSON object, at most 3,583 bytes.

    Returns the decoded object as one line of ASCII JSON: what the Runtime API hands the
    function (``Lambda-Runtime-Client-Context``), so nothing downstream decodes it again.
    """
    if not value:
        return None
    if len(value) > MAX_CLIENT_CONTEXT_BYTES:
        raise errors.InvalidParameterValue(
            f"Client context must be no longer than {MAX_CLIENT_CONTEXT_BYTES} bytes "
            "of base64-encoded data"
        )
    try:
        decoded = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        decoded = None
    if not isinstance(decoded, dict):
        raise errors.InvalidRequestContent(
            "Client context must be a valid Base64-encoded JSON object."
        )
    return json.dumps(decoded, separators=(",", ":"))


def check_payload(body: bytes) -> bytes:
    """The event to send: the body when it is JSON, ``{}`` when empty (as Lambda does)."""
    if not body:
        return b"{}"
    try:
        json.loads(body)
    except ValueError as exc:
        raise errors.InvalidRequestContent(
            f"Could not parse request body into json: Could not parse payload into json: {exc}"
        ) from None
    return body
