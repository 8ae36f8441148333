"""Classify function errors: the error type in an error body, reduced to a fixed set.

Called by the metered invoker when an invocation ended in a function error, so metric
labels stay bounded whatever exception class a function raises.
"""

from __future__ import annotations

import json

__all__ = ["KNOWN_ERROR_TYPES", "UNHANDLED", "error_type_label"]

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


def error_type_label(body: bytes) -> str:
    """The bounded error type of a function error body, for metrics."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return UNHANDLED
    error_type = decoded.get("errorType") if isinstance(decoded, dict) else None
    return error_type if error_type in KNOWN_ERROR_TYPES else UNHANDLED
