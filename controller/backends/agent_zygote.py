"""A process that has imported the agent and forks spare agents on request (a zygote).

A spare agent's start is mostly the interpreter's start and the agent's imports (51 ms
p50 on a 2-core host), paid by every spare ``agent_shim`` starts; a fork of a process
that has paid them already takes about a millisecond. So after a burst of cold starts has
taken every spare, the backend gets the next one at once instead of waiting for an
interpreter (``controller.backends.local_zygote`` is the platform's side).

Run as ``python -m controller.backends.agent_shim --zygote`` (so that a forked agent's
command line, which is the zygote's, names the shim as a spawned agent's does) with one
end of a ``SOCK_SEQPACKET`` pair at the descriptor ``CONTROL_FD_VARIABLE`` names. Each
request is one JSON message carrying three descriptors: the spare's stdin (read end), its
ready pipe (write end) and its log; its ``environ`` is added to the spare's. The zygote
forks and answers ``{"pid": P, "ready_fd": N}`` (the ready pipe's number in the spare);
it reports every child's end as ``{"exit": P, "returncode": R}`` (negative: killed by that
signal), since only a parent can learn it. The end of the control socket (the platform
closed it or died) ends the zygote; it dies with the platform like any agent, and the
agents it forked die with it (each asks for the parent-death signal with the zygote as
parent).

The child starts a session of its own, takes the descriptors as stdin, stdout and
stderr, forgets the zygote's signal handling and sockets, and runs the shim's ``main``:
from there on it is a spare agent like any other. It keeps the zygote's environment
block, which is what ``/proc/<pid>/environ`` shows: the platform's home is in it, so
``local_process.reap_home`` finds forked agents as it finds spawned ones.

Only the standard library and the agent are imported: this runs in the agent's process
image, not the platform's.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable

from kubelambda_agent import process as agent_process

# Where the zygote finds its end of the control socket (local_zygote.CONTROL_FD_VARIABLE).
CONTROL_FD_VARIABLE = "KUBELAMBDA_ZYGOTE_CONTROL_FD"
# The spare's stdin, its ready pipe and its log, in this order.
DESCRIPTORS = 3
_MAX_MESSAGE = 64 * 1024


def main(spare_main: Callable[[], int]) -> int:
    """Fork spares that run ``spare_main`` until the control socket ends."""
    parent = os.environ.get("KUBELAMBDA_PLATFORM_PID")  # local_process.PARENT_PID_VARIABLE
    if parent is not None:
        agent_process.die_with_parent(int(parent))
    control = socket.socket(fileno=int(os.environ.pop(CONTROL_FD_VARIABLE)))
    # SIGCHLD only wakes the loop; the children are reaped there.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    while True:
        readable, _, _ = select.select([control, wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
            _report_exits(control)
        if control in readable:
            try:
                message, fds, _, _ = socket.recv_fds(control, _MAX_MESSAGE, DESCRIPTORS)
            except ConnectionError:
                return 0
            if not message:
                return 0
            request = json.loads(message)
            pid = os.fork()
            if pid == 0:
                control.close()
                os.close(wake_read)
                os.close(wake_write)
                os._exit(_become_spare(spare_main, fds, request.get("environ", {})))
            for fd in fds:
                os.close(fd)
            # The child has the ready pipe at the number the zygote received it as.
            control.send(json.dumps({"pid": pid, "ready_fd": fds[1]}).encode())


def _report_exits(control: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        returncode = os.waitstatus_to_exitcode(status)
        control.send(json.dumps({"exit": pid, "returncode": returncode}).encode())


def _become_spare(spare_main: Callable[[], int], fds: list[int], environ: dict[str, str]) -> int:
    """In the forked child: become a spare agent (``spare_main``) on ``fds``."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    stdin, _ready, log = fds
    os.dup2(stdin, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(stdin)
    os.close(log)
    os.environ.update(environ)
    # The agent dies with the zygote, which dies with the platform.
    os.environ["KUBELAMBDA_PLATFORM_PID"] = str(os.getppid())
    # A collection writes to every object's header: the pages the fork shares with the
    # zygote are copied now, while the spare waits, not on a cold start's path.
    gc.collect()
    try:
        status = spare_main()
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        # Never back into the zygote's loop: this process must end here, whatever happens.
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return status
