"""Lambda's error bodies for failures the agent itself detects, worded as Lambda words them.

The runtime slot (``slot``) calls these when an invocation times out, its runtime exits,
its response is too large, or its runtime never finished init; the Runtime API handler
uses ``runtime_api_error`` for its own 4xx answers. Errors the function raised are the
runtime's to describe: ``function_error`` only passes them through, repairing bodies that
are not a JSON object.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass

__all__ = [
    "MAX_RESPONSE_BYTES",
    "InitFailure",
    "exit_description",
    "function_error",
    "response_too_large",
    "runtime_api_error",
    "runtime_exit",
    "timed_out",
]

# Lambda's synchronous response limit: 6 MiB plus 100 bytes of slack.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100

# How Lambda's Go init process names the signal that ended a runtime ("signal: killed").
_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGTERM: "terminated",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGINT: "interrupt",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGILL: "illegal instruction",
    signal.SIGPIPE: "broken pipe",
    signal.SIGHUP: "hangup",
    signal.SIGQUIT: "quit",
}


def _body(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def timed_out(request_id: str, timeout_seconds: float) -> bytes:
    return _body(
        "Sandbox.Timedout",
        f"RequestId: {request_id} Error: Task timed out after {timeout_seconds:.2f} seconds",
    )


def out_of_memory(request_id: str) -> bytes:
    """The runtime used more than the function's MemorySize and was killed (Lambda's)."""
    return _body(
        "Runtime.OutOfMemory",
        f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
    )


def exit_description(returncode: int) -> str:
    """Lambda's wording of a process exit: ``exit status 1`` or ``signal: killed``."""
    if returncode >= 0:
        return f"exit status {returncode}"
    try:
        word = _SIGNAL_WORDS.get(signal.Signals(-returncode))
    except ValueError:
        word = None
    return f"signal: {word}" if word else f"signal {-returncode}"


def _exit_detail(returncode: int) -> str:
    if returncode == 0:
        return "Runtime exited without providing a reason"
    return f"Runtime exited with error: {exit_description(returncode)}"


def runtime_exit(request_id: str, returncode: int) -> bytes:
    return _body("Runtime.ExitError", f"RequestId: {request_id} Error: {_exit_detail(returncode)}")


def response_too_large() -> bytes:
    return _body(
        "Function.ResponseSizeTooLarge",
        "Response payload size exceeded maximum allowed payload size "
        f"({MAX_RESPONSE_BYTES} bytes).",
    )


def function_error(body: bytes, error_type_header: str | None) -> bytes:
    """The body a runtime posted to ``/invocation/{id}/error``, made a JSON error object.

    Runtimes normally post ``{"errorMessage", "errorType", ...}`` and it is returned as
    is; anything else is wrapped so the caller still gets Lambda's error shape.
    """
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return body
    return _body(error_type_header or "Unhandled", body.decode("utf-8", "replace"))


def runtime_api_error(error_type: str, message: str) -> bytes:
    return _body(error_type, message)


@dataclass(frozen=True, slots=True)
class InitFailure:
    """Why a runtime cannot take invocations (it failed init, or exited before it served
    any), kept until an invocation meets it.

    ``posted_body`` is what the runtime sent to ``/runtime/init/error`` (returned as is,
    as Lambda does); without one, the body is built from ``error_type`` and ``detail``,
    which needs the request id of the invocation that meets the failure.
    """

    error_type: str
    detail: str = ""
    posted_body: bytes | None = None

    def body(self, request_id: str) -> bytes:
        if self.posted_body is not None:
            return function_error(self.posted_body, self.error_type)
        return _body(self.error_type, f"RequestId: {request_id} Error: {self.detail}")

    @classmethod
    def from_exit(cls, returncode: int) -> InitFailure:
        return cls("Runtime.ExitError", _exit_detail(returncode))
