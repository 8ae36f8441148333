"""A python runtime that forks the agent's next runtimes instead of the agent starting
them (a zygote).

A python runtime's start is mostly the interpreter's and the bootstrap's imports: 33-45
ms of CPU on a 2-core host, which an agent that starts tens of runtimes for a burst pays
tens of times over while the runtimes already started serve (issue 11). A fork of a
process that has paid it takes about a millisecond.

The agent's first runtimes start as before (spawned, or the spare's pre-started one).
The first runtime the agent needs after those starts the zygote, with that runtime's
command and environment, and waits for it (``when_ready``), as does every runtime needed
while it starts: a burst of them then costs one interpreter's start and a fork each,
instead of one start each competing for the CPU. From then on ``fork`` asks the zygote
for every runtime it can stand in for: one started with the same command whose environment
starts python alike (the same ``PYTHON*`` and locale variables, no user site-packages),
and small enough to show in the zygote's environment block (``python_bootstrap``'s
``show_environ``). The zygote forks twice so that the runtime becomes the agent's child
(the agent is its descendants' subreaper), and the runtime then has what a spawned one
has: a session of its own, the agent's parent-death signal, its output pipe, its
channel, Lambda's open-file quota and batch scheduling (both inherited), its
environment and directory. Its Init Duration counts from the request.

The zygote runs as the function's user (the agent's, after the spare became it) with
the function's environment and nothing but the bootstrap's imports: it holds nothing a
runtime of the function could not read itself. Its forks share its address-space layout
and string-hash seed, as an Android zygote's do; they are all the same function's. When
it cannot stand in, or when it fails (it is then let go, and runtimes are spawned for
``_RETRY_SECONDS`` before another is started), the runtime is spawned as before.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from kubelambda_agent import prestarted
from kubelambda_agent.process import RuntimeProcess, runtime_setup, watch

__all__ = ["CONTROL_FD_VARIABLE", "PROCESS_NAME", "RuntimeZygote"]

# python_bootstrap.ZYGOTE_FD_VARIABLE, the zygote's name (/proc/<pid>/comm; its forks
# keep the interpreter's), its ready message and its answers' format.
CONTROL_FD_VARIABLE = "_KUBELAMBDA_RUNTIME_ZYGOTE_FD"
PROCESS_NAME = "runtime-zygote"
_READY = b"z"
_PID_BYTES = 4
# What a fork may take before the zygote counts as failed: it forks twice and answers.
_ANSWER_SECONDS = 2.0
# What its start may take (a runtime's start, on a busy host) before it counts as failed,
# and how long after a failure runtimes are spawned without trying another.
_READY_SECONDS = 5.0
_RETRY_SECONDS = 5.0
# The variables that change how python starts, besides every PYTHON* one and HOME (which
# only places the user site-packages: checked for itself).
_STARTUP = ("LANG", "LC_ALL", "LC_CTYPE")


class RuntimeZygote:
    """The agent's zygote: started with ``start``, forking runtimes once ready."""

    def __init__(self, command: Sequence[str], *, version: str) -> None:
        self._command = list(command)
        self._version = version
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._started_with: dict[str, str] = {}
        self._room = 0
        self._ready = False
        self._waiters: list[Callable[[], None]] = []
        self._ready_timer: asyncio.TimerHandle | None = None
        self._failed_at = -math.inf
        # When it was started or last forked (``time.monotonic``).
        self.used_at = 0.0

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def starting(self) -> bool:
        """Started and not ready yet: a runtime needed now is forked sooner, and for a
        fraction of the CPU, by waiting for it (``when_ready``) than spawned."""
        return self._control is not None and not self._ready

    def start(self, environ: Mapping[str, str], cwd: str) -> None:
        """Start the zygote for runtimes like one started with ``environ`` in ``cwd``,
        unless it runs, failed a moment ago, or its forks could not stand in for those."""
        if self._control is not None or time.monotonic() - self._failed_at < _RETRY_SECONDS:
            return
        if prestarted.user_site_exists(environ, self._version):
            return  # its forks would keep it on sys.path, whatever their HOME
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Room in its environment block for a fork's own (``show_environ``).
        env = {**environ, prestarted.ROOM_VARIABLE: " " * prestarted.ROOM_BYTES}
        env[CONTROL_FD_VARIABLE] = str(theirs.fileno())
        try:
            self._process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=runtime_setup(os.getpid()),
                pass_fds=(theirs.fileno(),),
            )
        except OSError:
            ours.close()
            self._failed_at = time.monotonic()
            return
        finally:
            theirs.close()
        ours.settimeout(_ANSWER_SECONDS)
        self._control = ours
        self.used_at = time.monotonic()
        self._started_with = dict(environ)
        self._room = prestarted.environ_size(env)

    def when_ready(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from the running loop) once the zygote is ready or has
        failed to be; only while ``starting``."""
        assert self._control is not None and not self._ready
        if not self._waiters:
            loop = asyncio.get_running_loop()
            loop.add_reader(self._control.fileno(), self._on_ready_message)
            self._ready_timer = loop.call_later(_READY_SECONDS, self._fail)
        self._waiters.append(callback)

    def fork(self, environ: Mapping[str, str], cwd: str) -> RuntimeProcess | None:
        """A runtime forked for ``environ`` in ``cwd``; None when the caller must spawn
        one: the zygote is not ready, cannot stand in for such a runtime, or failed."""
        if not self._ready or not self._fits(environ):
            return None
        assert self._control is not None
        read_fd, write_fd = os.pipe()
        ours, theirs = socket.socketpair()
        request = json.dumps({"environ": dict(environ), "cwd": cwd}).encode()
        started_at = time.monotonic()
        try:
            socket.send_fds(self._control, [request], [theirs.fileno(), write_fd])
            answer = self._control.recv(_PID_BYTES)
        except OSError:
            answer = b""
        finally:
            os.close(write_fd)
            theirs.close()
        pid = int.from_bytes(answer, "big", signed=True) if len(answer) == _PID_BYTES else 0
        if pid <= 0:
            os.close(read_fd)
            ours.close()
            if len(answer) != _PID_BYTES:
                self._fail()  # gone or stuck
            return None
        os.set_blocking(read_fd, False)
        self.used_at = started_at
        return watch(pid, _waiter(pid), output_fd=read_fd, started_at=started_at, channel=ours)

    def close(self) -> None:
        """Stop the zygote (its forks run on); whoever waits for it is called."""
        control, process = self._control, self._process
        self._control, self._process, self._ready = None, None, False
        if control is not None:
            if self._waiters:
                asyncio.get_running_loop().remove_reader(control.fileno())
            control.close()
        if process is not None:
            process.kill()
            process.wait()
        self._release_waiters()

    def _on_ready_message(self) -> None:
        assert self._control is not None
        asyncio.get_running_loop().remove_reader(self._control.fileno())
        try:
            self._ready = self._control.recv(len(_READY)) == _READY
        except OSError:
            self._ready = False
        if self._ready:
            self._release_waiters()
        else:
            self._fail()

    def _fail(self) -> None:
        self._failed_at = time.monotonic()
        self.close()

    def _release_waiters(self) -> None:
        if self._ready_timer is not None:
            self._ready_timer.cancel()
            self._ready_timer = None
        waiters, self._waiters = self._waiters, []
        for callback in waiters:
            callback()

    def _fits(self, environ: Mapping[str, str]) -> bool:
        started = self._started_with
        names = {*_STARTUP, *(n for n in (*environ, *started) if n.startswith("PYTHON"))}
        return (
            all(environ.get(name) == started.get(name) for name in names)
            and prestarted.environ_size(environ) <= self._room
            and not prestarted.user_site_exists(environ, self._version)
        )


def _waiter(pid: int) -> Callable[[], int]:
    def wait() -> int:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

    return wait
