"""What travels between the invoke endpoint and a runtime slot: an invocation and its outcome.

``invoke_endpoint`` builds an ``Invocation`` from the gateway's request and hands it to an
idle ``slot``; the slot fills in the timing and log, and calls ``complete`` exactly once
with the ``Outcome`` (success or function error) that becomes the invoke response.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kubelambda_agent import log_lines

__all__ = ["Invocation", "Outcome"]


@dataclass(frozen=True, slots=True)
class Outcome:
    body: bytes
    function_error: bool
    duration_ms: float
    init_duration_ms: float | None
    max_memory_used_mb: int
    log_tail: str | None


@dataclass(slots=True)
class Invocation:
    request_id: str
    function_arn: str
    event: bytes
    trace_id: str
    complete: Callable[[Outcome], None]
    client_context: str | None = None
    cognito_identity: str | None = None
    want_tail: bool = False
    deadline_ms: int = 0
    started_at: float = 0.0
    log: bytearray = field(default_factory=bytearray)

    def record_log(self, data: bytes) -> None:
        """Keep the invocation's log lines, but only as much as a Tail can return."""
        if not self.want_tail:
            return
        self.log += data
        if len(self.log) > 2 * log_lines.TAIL_BYTES:
            del self.log[: -log_lines.TAIL_BYTES]

    def runtime_headers(self) -> list[tuple[str, str]]:
        """The Runtime API headers of this invocation's ``/next`` answer."""
        headers = [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        if self.client_context is not None:
            headers.append(("Lambda-Runtime-Client-Context", self.client_context))
        if self.cognito_identity is not None:
            headers.append(("Lambda-Runtime-Cognito-Identity", self.cognito_identity))
        return headers
