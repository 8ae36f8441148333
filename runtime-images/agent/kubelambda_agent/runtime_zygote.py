"""A python runtime that forks the agent's next runtimes instead of the agent starting
them (a zygote).

A python runtime's start is mostly the interpreter's and the bootstrap's imports: 33-45
ms of CPU on a 2-core host, which an agent that starts tens of runtimes for a burst pays
tens of times over while the runtimes already started serve (issue 11). A fork of a
process that has paid it takes about a millisecond.

The agent's first runtimes start as before (spawned, or the spare's pre-started one);
the first runtime the agent starts after those also starts the zygote, with that
runtime's command and environment. From then on ``fork`` asks the zygote for every
runtime it can stand in for: one started with the same command whose environment
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
and string-hash seed, as an Android zygote's do; they are all the same function's. Until
the zygote is ready, when it cannot stand in, or when it fails (it is then let go and
started again on the next spawn), the runtime is spawned as before.
"""

from __future__ import annotations

import json
import os
import select
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
# The variables that change how python starts, besides every PYTHON* one and HOME (which
# only places the user site-packages: checked for itself).
_STARTUP = ("LANG", "LC_ALL", "LC_CTYPE")


class RuntimeZygote:
    """The agent's zygote: started on the first ``fork`` call, then forking runtimes."""

    def __init__(self, command: Sequence[str], *, version: str) -> None:
        self._command = list(command)
        self._version = version
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._started_with: dict[str, str] = {}
        self._room = 0
        self._ready = False

    def fork(self, environ: Mapping[str, str], cwd: str) -> RuntimeProcess | None:
        """A runtime forked for ``environ`` in ``cwd``; None when the caller must spawn
        one: the zygote is not ready (the first call starts it), cannot stand in for
        such a runtime, or failed."""
        if self._control is None:
            self._start(environ, cwd)
            return None
        if not self._is_ready() or not self._fits(environ):
            return None
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
                self.close()  # gone or stuck: the next spawn starts another
            return None
        os.set_blocking(read_fd, False)
        return watch(pid, _waiter(pid), output_fd=read_fd, started_at=started_at, channel=ours)

    def close(self) -> None:
        """Stop the zygote (its forks run on)."""
        control, process = self._control, self._process
        self._control, self._process, self._ready = None, None, False
        if control is not None:
            control.close()
        if process is not None:
            process.kill()
            process.wait()

    def _start(self, environ: Mapping[str, str], cwd: str) -> None:
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
            return
        finally:
            theirs.close()
        ours.settimeout(_ANSWER_SECONDS)
        self._control = ours
        self._started_with = dict(environ)
        self._room = prestarted.environ_size(env)

    def _is_ready(self) -> bool:
        """Whether the zygote has said it is ready (it takes a runtime's start)."""
        if not self._ready and self._control is not None:
            readable, _, _ = select.select([self._control], [], [], 0)
            if readable:
                try:
                    self._ready = self._control.recv(len(_READY)) == _READY
                except OSError:
                    self._ready = False
                if not self._ready:
                    self.close()
        return self._ready

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
