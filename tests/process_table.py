"""Reading other processes' entries in /proc from tests."""

from __future__ import annotations

from pathlib import Path

__all__ = ["command_line"]


def command_line(pid: int) -> bytes:
    """Process ``pid``'s NUL-separated command line; empty once it has gone (a process
    listed a moment ago may exit before it is read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
