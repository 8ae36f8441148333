"""Lambda's per-invocation log lines (START, END, REPORT, the timeout notice) and the Tail.

The runtime slot (``slot``) prints these around each invocation's own output and keeps
them in the invocation's log, whose last 4 KiB ``tail`` encodes for ``LogType: Tail``.
Pure functions of their arguments; time is passed in.
"""

from __future__ import annotations

import base64
import math
import time

__all__ = [
    "TAIL_BYTES",
    "billed_duration_ms",
    "end_line",
    "report_line",
    "start_line",
    "tail",
    "timed_out_line",
]

# Lambda returns the last 4 KB of the invocation's log with LogType: Tail.
TAIL_BYTES = 4096


def start_line(request_id: str, version: str) -> bytes:
    return f"START RequestId: {request_id} Version: {version}\n".encode()


def end_line(request_id: str) -> bytes:
    return f"END RequestId: {request_id}\n".encode()


def billed_duration_ms(duration_ms: float) -> int:
    """Lambda bills whole milliseconds, rounded up, and never less than one."""
    return max(1, math.ceil(duration_ms))


def report_line(
    request_id: str,
    *,
    duration_ms: float,
    memory_size_mb: int,
    max_memory_used_mb: int,
    init_duration_ms: float | None,
) -> bytes:
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_duration_ms(duration_ms)} ms",
        f"Memory Size: {memory_size_mb} MB",
        f"Max Memory Used: {max_memory_used_mb} MB",
    ]
    if init_duration_ms is not None:
        fields.append(f"Init Duration: {init_duration_ms:.2f} ms")
    return ("\t".join(fields) + "\n").encode()


def timed_out_line(request_id: str, timeout_seconds: float, now: float) -> bytes:
    """The line Lambda logs before END when it stops a timed-out invocation.

    ``now`` is a Unix timestamp; the line starts with it in UTC, milliseconds, as Lambda's.
    """
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    millis = int(now * 1000) % 1000
    return (
        f"{stamp}.{millis:03d}Z {request_id} Task timed out after {timeout_seconds:.2f} seconds\n"
    ).encode()


def tail(log: bytes | bytearray) -> str:
    """Base64 of the last ``TAIL_BYTES`` bytes of an invocation's log."""
    return base64.b64encode(bytes(log[-TAIL_BYTES:])).decode("ascii")
