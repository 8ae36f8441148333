"""Waiting in tests for something a real component does in its own time.

Tests against the apiserver, the kubelet, Kafka or a running platform poll for an
outcome rather than sleep a fixed time: ``eventually`` is the one way they do it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


def eventually(
    what: str, probe: Callable[[], T | None], *, timeout: float = 90.0, interval: float = 0.5
) -> T:
    """``probe()`` once it is truthy, polled every ``interval`` seconds; fails naming
    ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
