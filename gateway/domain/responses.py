"""Turn an agent's answer into Lambda's Invoke response, and classify function errors.

Called by the invoke app once the agent answered 200 (the invocation ran). The agent's
``Kubelambda-*`` headers become Lambda's ``X-Amz-*`` ones; the error type found in an
error body is reduced to a fixed set so metric labels stay bounded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "KNOWN_ERROR_TYPES",
    "UNHANDLED",
    "AgentResult",
    "error_type_label",
    "invoke_headers",
]

UNHANDLED = "Unhandled"

# Error types the platform itself produces; anything else is the function's own
# exception class, which is unbounded and so counted as ``Unhandled``.
KNOWN_ERROR_TYPES = frozenset(
    {
        "Sandbox.Timedout",
        "Runtime.ExitError",
        "Runtime.ImportModuleError",
        "Runtime.HandlerNotFound",
        "Runtime.UserCodeSyntaxError",
        "Runtime.MalformedHandlerName",
        "Runtime.UnmarshalError",
        "Runtime.MarshalError",
        "Runtime.InvalidResponse",
        "Function.ResponseSizeTooLarge",
        UNHANDLED,
    }
)


@dataclass(frozen=True, slots=True)
class AgentResult:
    """What an agent reported for an invocation that ran (agent status 200).

    ``headers`` keys are lower-case, as the connection pool delivers them.
    """

    body: bytes
    headers: Mapping[str, str]

    @property
    def function_error(self) -> str | None:
        return self.headers.get("kubelambda-function-error")

    @property
    def log_result(self) -> str | None:
        return self.headers.get("kubelambda-log-result")

    @property
    def duration_seconds(self) -> float | None:
        return _millis_to_seconds(self.headers.get("kubelambda-duration-ms"))

    @property
    def init_duration_seconds(self) -> float | None:
        return _millis_to_seconds(self.headers.get("kubelambda-init-duration-ms"))


def _millis_to_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value) / 1000.0
    except ValueError:
        return None


def invoke_headers(
    result: AgentResult, *, request_id: str, executed_version: str, tail: bool
) -> list[tuple[bytes, bytes]]:
    """The response headers of a synchronous invoke that ran, in ASGI's raw form."""
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-requestid", request_id.encode()),
        (b"x-amz-executed-version", executed_version.encode()),
    ]
    if result.function_error:
        headers.append((b"x-amz-function-error", result.function_error.encode()))
    if tail and result.log_result is not None:
        headers.append((b"x-amz-log-result", result.log_result.encode()))
    return headers


def error_type_label(body: bytes) -> str:
    """The bounded error type of a function error body, for metrics."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return UNHANDLED
    error_type = decoded.get("errorType") if isinstance(decoded, dict) else None
    return error_type if error_type in KNOWN_ERROR_TYPES else UNHANDLED
