"""A python runtime started ahead of need, by a spare agent, for its first slot.

A python runtime's start is mostly the interpreter's own start and the bootstrap's
imports, which know nothing of the function. ``controller.backends.agent_shim`` (a spare
agent, waiting for its assignment) calls ``start`` with the interpreter the platform
expects the next python function to use; ``process.spawn_runtime`` then offers the
runtime to its instance's first slot (``PrestartedRuntime.adopt``). If that slot's
runtime would have been started exactly so (same command, nothing in the function's
environment that changes how python starts), the runtime is assigned the function's
environment, task root and user on its channel (the ``s`` frame, see
``python_bootstrap``) and confirms with ``k``; its Init Duration counts from there.
Otherwise it is let go and the slot spawns one as usual. Other slots, and every respawn,
spawn as usual.

The runtime is started with ``ENVIRONMENT``'s names only, taken from the spare's own
(secret-free) environment: ``/proc/<pid>/environ`` shows what a process was started with,
and the function can read its own. Once assigned, the runtime writes its function's
environment over those strings (``python_bootstrap.show_environ``), so that the platform
finds it by its instance's marker as it finds any runtime (``local_process.sweep``): it
is started with room for that (``ROOM_BYTES``), and a function whose environment does
not fit gets a runtime started for it.
"""

from __future__ import annotations

import json
import os
import pwd
import select
import socket
import struct
import sys
import time
from collections.abc import Mapping, Sequence

from kubelambda_agent.config import CHANNEL_FD_VARIABLE, PRESTARTED_VARIABLE
from kubelambda_agent.process import RuntimeProcess, SpawnError, spawn

__all__ = [
    "ENVIRONMENT",
    "ROOM_BYTES",
    "ROOM_VARIABLE",
    "PrestartedRuntime",
    "environ_size",
    "start",
    "user_site_exists",
]

# What a pre-started runtime inherits from the spare: to find programs and decode text.
ENVIRONMENT = ("PATH", "LANG", "LC_ALL")
# How python's start reads the locale (also ``PYTHON*``, which no adopted runtime has).
_LOCALE = ("LANG", "LC_ALL", "LC_CTYPE")
# Room in a pre-started runtime's initial environment for its function's (Lambda's cap
# on a function's own variables is 4 KiB; the agent adds about 1 KiB more).
ROOM_BYTES = 16 * 1024
ROOM_VARIABLE = "_KUBELAMBDA_RUNTIME_ROOM"
_HEAD = struct.Struct(">cII")
# The runtime only changes user, directory and environment before it confirms.
_CONFIRM_SECONDS = 5.0
_EXIT_SECONDS = 1.0


class PrestartedRuntime:
    """A pre-started runtime waiting for its assignment, and what it was started with.

    (A plain class, not a dataclass, for the reason given on ``config.AgentConfig``.)
    """

    __slots__ = ("command", "environ", "room", "runtime", "started_as")

    def __init__(
        self,
        *,
        runtime: RuntimeProcess,
        command: Sequence[str],
        environ: Mapping[str, str],
        room: int,
    ) -> None:
        self.runtime = runtime
        self.command = list(command)
        self.environ = dict(environ)
        # The bytes of the environment it was started with (``show_environ``).
        self.room = room
        # Its user and group: the spare's then.
        self.started_as = (os.getuid(), os.getgid())

    def fits(self, command: Sequence[str], environ: Mapping[str, str], *, version: str) -> bool:
        """Whether a runtime started for ``command`` and ``environ`` (python ``version``,
        ``3.X``) would start as this one did, so that assigning it makes no difference."""
        if list(command) != self.command or any(name.startswith("PYTHON") for name in environ):
            return False
        if any(environ.get(name) != self.environ.get(name) for name in _LOCALE):
            return False
        if environ_size(environ) > self.room:
            return False
        # This one was started without the user site-packages directory (whose it is
        # depends on HOME and the user); one started for the function adds it if it exists.
        return not user_site_exists(environ, version)

    def adopt(
        self,
        *,
        command: Sequence[str],
        environ: Mapping[str, str],
        cwd: str,
        version: str,
    ) -> RuntimeProcess | None:
        """This runtime, now what one started with ``command`` and ``environ`` in ``cwd``
        by this process (as its user: the spare may have changed it since) would be;
        None if it does not fit or failed to take the assignment (it is let go)."""
        runtime = self.runtime
        channel = runtime.channel
        if channel is None or not self.fits(command, environ, version=version):
            self.discard()
            return None
        assignment: dict[str, object] = {"environ": dict(environ), "cwd": cwd}
        if (os.getuid(), os.getgid()) != self.started_as:
            assignment["user"] = {"uid": os.getuid(), "gid": os.getgid()}
        body = json.dumps(assignment).encode()
        # Init Duration counts from the assignment: what came before served no function.
        started_at = time.monotonic()
        try:
            channel.settimeout(_CONFIRM_SECONDS)
            channel.sendall(_HEAD.pack(b"s", 0, len(body)) + body)
            confirmed = channel.recv(_HEAD.size, socket.MSG_WAITALL)
            channel.settimeout(None)
        except OSError:
            confirmed = b""
        if confirmed != _HEAD.pack(b"k", 0, 0):
            self.discard()
            return None
        runtime.started_at = started_at
        return runtime

    def discard(self) -> None:
        """Let it go: it exits at the end of its channel. (It may still run as root,
        where the agent now is another user and could not kill it.)"""
        runtime = self.runtime
        if runtime.channel is not None:
            runtime.channel.close()
            runtime.channel = None
        ready, _, _ = select.select([runtime.exit_fd], [], [], _EXIT_SECONDS)
        if ready:
            runtime.reap()
        else:
            # Ours to collect at the agent's stop (``process.end_descendants``).
            os.close(runtime.exit_fd)
            os.close(runtime.status_fd)
        os.close(runtime.output_fd)


def start(command: Sequence[str], environ: Mapping[str, str]) -> PrestartedRuntime | None:
    """Start a runtime with ``command`` that waits for its function (Linux only: it
    relies on the parent-death signal, and on becoming its instance's user itself).
    ``environ`` is the spare's own; only ``ENVIRONMENT`` is passed on. None if it cannot
    start: the instance will start its runtimes as usual."""
    if not sys.platform.startswith("linux"):
        return None
    inherited = {name: environ[name] for name in ENVIRONMENT if name in environ}
    env = {
        **inherited,
        # The user site-packages would be the spare's user's (root's, say); see ``fits``.
        "PYTHONNOUSERSITE": "1",
        PRESTARTED_VARIABLE: "1",
        ROOM_VARIABLE: " " * ROOM_BYTES,
    }
    try:
        runtime = spawn(command, env=env, cwd="/", channel=True)
    except SpawnError:
        return None
    # spawn adds the channel's variable (its number counted as one digit, the least).
    room = environ_size(env) + len(f"{CHANNEL_FD_VARIABLE}=0\0")
    return PrestartedRuntime(runtime=runtime, command=command, environ=inherited, room=room)


def environ_size(environ: Mapping[str, str]) -> int:
    """The bytes of ``environ`` in a process's initial environment."""
    return sum(len(os.fsencode(f"{name}={value}")) + 1 for name, value in environ.items())


def user_site_exists(environ: Mapping[str, str], version: str) -> bool:
    """Whether python ``version`` (``3.X``) started with ``environ`` by this process's
    user would put a user site-packages directory on its path."""
    home = environ.get("HOME")
    if not home:
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            return False  # a user without a home has no user site-packages either
    return os.path.isdir(f"{home}/.local/lib/python{version}/site-packages")
