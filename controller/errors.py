"""Errors of the controller, raised by instance backends and read by the autoscaler loop.

    ControllerError
    └── InstanceStartError        an instance did not become ready (retriable, with backoff)
        ├── RuntimeUnavailable    this host has no interpreter for the runtime (permanent)
        ├── CodeUnavailable       the version's package cannot be unpacked (permanent)
        ├── CapacityExceeded      one instance needs more than the host's budget (permanent)
        ├── InstanceExited        the agent exited before it was ready
        └── InstanceNotReady      the agent was not ready within the bound and was killed

``retriable`` tells the backend whether starting again can help; the message is what
a provisioned-concurrency config's ``StatusReason`` shows.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "CapacityExceeded",
    "CodeUnavailable",
    "ControllerError",
    "InstanceExited",
    "InstanceNotReady",
    "InstanceStartError",
    "RuntimeUnavailable",
]


class ControllerError(Exception):
    retriable: ClassVar[bool] = False


class InstanceStartError(ControllerError):
    retriable = True
    #: The metrics label for this failure.
    reason: ClassVar[str] = "start-failed"


class RuntimeUnavailable(InstanceStartError):
    retriable = False
    reason = "runtime-unavailable"

    def __init__(self, runtime: str) -> None:
        super().__init__(f"runtime {runtime} has no interpreter on this host")
        self.runtime = runtime


class CodeUnavailable(InstanceStartError):
    retriable = False
    reason = "code-unavailable"


class CapacityExceeded(InstanceStartError):
    """Not a wait: no amount of stopping other instances would make room for one."""

    retriable = False
    reason = "exceeds-host-capacity"

    def __init__(self, memory_mb: int, budget_mb: int) -> None:
        super().__init__(
            f"MemorySize {memory_mb} MB is more than this host's whole budget for "
            f"instances ({budget_mb} MB)"
        )
        self.memory_mb = memory_mb
        self.budget_mb = budget_mb


class InstanceExited(InstanceStartError):
    reason = "exited-during-init"

    def __init__(self, returncode: int | None, log_tail: str) -> None:
        super().__init__(f"instance exited with code {returncode} before it was ready")
        self.returncode = returncode
        self.log_tail = log_tail


class InstanceNotReady(InstanceStartError):
    reason = "not-ready-in-time"

    def __init__(self, seconds: float, log_tail: str) -> None:
        super().__init__(f"instance was not ready within {seconds:g} s")
        self.seconds = seconds
        self.log_tail = log_tail
