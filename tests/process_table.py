"""Reading other processes' entries in /proc from tests."""

from __future__ import annotations

from pathlib import Path

from kubelambda_agent.runtime_zygote import CONTROL_FD_VARIABLE

__all__ = ["command_line", "is_runtime_zygote"]


def command_line(pid: int) -> bytes:
    """Process ``pid``'s NUL-separated command line; empty once it has gone (a process
    listed a moment ago may exit before it is read)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def is_runtime_zygote(pid: int) -> bool:
    """Whether ``pid`` is an agent's runtime zygote (``kubelambda_agent.runtime_zygote``),
    from the moment it is started: by the variable it is started with (its forks write
    their own environment over it, ``python_bootstrap.show_environ``)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"\0{CONTROL_FD_VARIABLE}=".encode() in b"\0" + environ
