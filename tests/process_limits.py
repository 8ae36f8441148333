"""Resource limits for the processes tests start (as ``preexec_fn``)."""

from __future__ import annotations

import resource
from collections.abc import Callable

__all__ = ["lower_open_files_to"]


def lower_open_files_to(soft: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that starts the child with ``soft`` open files (its hard limit
    unchanged), as most sessions and services start with 1,024; None leaves it alone."""
    if soft is None:
        return None

    def lower() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return lower
