"""Starting, watching and killing one runtime process; no event loop needed.

``__main__`` spawns the first runtimes through ``spawn`` before it even imports asyncio
(the runtime's own start-up then overlaps the agent's); ``slot`` spawns replacements and
kills runtimes. Each runtime gets its own session and so its own process group, which
``kill`` ends as a whole, children included. Its stdout and stderr share one pipe, so the
agent sees its lines in the order they were written; ``exit_fd`` (a pidfd) becomes
readable when it exits, which lets the event loop watch it without a thread or SIGCHLD.
On Linux a runtime dies with the agent (a parent-death signal, ``die_with_parent``), so
an agent killed outright leaves no runtime behind.

Open files: the agent holds several descriptors per environment it hosts (a Runtime API
listener, the runtime's output pipe, pidfd, status file and channel) besides its
connections, so it raises its own soft limit to the hard one (``raise_open_file_limit``);
each runtime gets Lambda's quota for an execution environment, 1,024, as both limits,
so a function sees what it would on Lambda and cannot take more.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from kubelambda_agent.config import CHANNEL_FD_VARIABLE, PYTHON_RUNTIMES, AgentConfig
from kubelambda_agent.environment import runtime_environment

# Annotations only (prestarted imports this module): typing would cost every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from kubelambda_agent.prestarted import PrestartedRuntime
    from kubelambda_agent.runtime_zygote import RuntimeZygote

__all__ = [
    "RUNTIME_OPEN_FILES",
    "RuntimeProcess",
    "SpawnError",
    "die_with_parent",
    "raise_open_file_limit",
    "runtime_setup",
    "runtime_spawn_environment",
    "spawn",
    "spawn_runtime",
    "watch",
]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
# Lambda's quota: file descriptors per execution environment.
RUNTIME_OPEN_FILES = 1024


class SpawnError(Exception):
    """The runtime could not be started at all (no such file, not executable, ...)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"fork/exec {path}: {reason}")
        self.path = path
        self.reason = reason


class RuntimeProcess:
    """A started runtime and the descriptors the agent watches it through.

    (A plain class, not a dataclass, for the reason given on ``config.AgentConfig``.)
    """

    __slots__ = (
        "_peak_mb",
        "_peak_read_at",
        "_wait",
        "channel",
        "exit_fd",
        "output_fd",
        "pid",
        "returncode",
        "started_at",
        "status_fd",
    )

    def __init__(
        self,
        *,
        pid: int,
        wait: Callable[[], int],
        output_fd: int,
        exit_fd: int,
        status_fd: int,
        started_at: float,
        channel: socket.socket | None = None,
    ) -> None:
        self.pid = pid
        # Collects the exit status (negative: killed by that signal); the runtime is
        # this process's child, whether spawned or forked by the zygote (``runtime_zygote``).
        self._wait = wait
        # The agent's end of the python bootstrap's channel (``runtime_channel``), until
        # the slot serves it.
        self.channel = channel
        self.output_fd = output_fd
        self.exit_fd = exit_fd
        # /proc/<pid>/status, kept open: re-read with pread for every REPORT line.
        self.status_fd = status_fd
        self.started_at = started_at
        self.returncode: int | None = None
        self._peak_mb: int | None = None
        self._peak_read_at = -math.inf

    def max_memory_used_mb(self, *, reuse_within: float = 0.0) -> int | None:
        """Peak resident set (``VmHWM``) in MB; None once the process is gone.

        With ``reuse_within``, the peak a call with it read less than that many seconds
        ago is given again (the latest peak read since, if any): the kernel formats the
        whole of ``status`` for every read, about 8 us, a twelfth of the agent's CPU per
        invocation when every REPORT line read it. Reads without it (the memory check's)
        do not start that window, so an invocation lasting at least ``reuse_within``
        always gets a peak read at its end."""
        if self.returncode is not None:
            return None
        now = time.monotonic()
        if now - self._peak_read_at < reuse_within:
            return self._peak_mb
        try:
            status = os.pread(self.status_fd, 8192, 0)
        except OSError:
            return None
        start = status.find(b"VmHWM:")
        if start < 0:
            return None  # a zombie's status has no memory lines
        self._peak_mb = math.ceil(int(status[start + 6 : status.index(b"kB", start)]) / 1024)
        if reuse_within:
            self._peak_read_at = now
        return self._peak_mb

    def kill(self) -> None:
        """SIGKILL the runtime and everything it started: its process group, and every
        descendant that left the group (a child in a new session, say), found while the
        runtime is still their ancestor."""
        below = descendants(self.pid) if self.returncode is None else []
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        _kill_all(below)

    def reap(self) -> int:
        """Collect the exit status once ``exit_fd`` is readable, and release the pidfd.

        Leftover members of the group are killed first: while the runtime is a zombie its
        pid (= the group id) cannot be reused, so the kill cannot hit a stranger.
        """
        if self.returncode is None:
            self.kill()
            self.returncode = self._wait()
            os.close(self.exit_fd)
            os.close(self.status_fd)
        return self.returncode


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid``, by the parent links in /proc (empty elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                stat = stat_file.read()
        except OSError:
            continue  # gone meanwhile
        # The command name may hold spaces and parentheses: the fields follow the last ")".
        parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    pending = list(children.get(pid, ()))
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children.get(child, ()))
    return found


def adopt_orphans() -> None:
    """Become the reaper of orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``): a
    process a runtime started and then abandoned (a double fork) is re-parented to the
    agent instead of init, so ``end_descendants`` can still end it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def end_descendants() -> None:
    """SIGKILL every process below the agent and collect the agent's children: nothing an
    instance started outlives it. Called last, when the agent stops."""
    below = descendants(os.getpid())
    _kill_all(below)
    for pid in below:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # ours only if it was adopted; others are reaped elsewhere


def _kill_all(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def die_with_parent(parent_pid: int) -> None:
    """Have Linux SIGKILL this process when ``parent_pid`` (its parent) dies, and die at
    once if it is gone already (re-parented before it could ask). Elsewhere: nothing."""
    _parent_death_signal(parent_pid)()


def raise_open_file_limit() -> None:
    """Raise this process's soft limit on open files to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def runtime_setup(parent_pid: int) -> Callable[[], None]:
    """What a runtime's child process does before exec (a ``preexec_fn``): die with the
    agent, take Lambda's open-file quota (or the hard limit, if that is lower), and run
    under ``SCHED_BATCH``.

    Batch scheduling keeps a runtime's share of the CPU (its nice value is unchanged) but
    a runtime woken by the agent no longer preempts it: the agent hands out every
    invocation it has read before the runtimes take the CPU, so fewer context switches
    per invocation (issue 11, 2 cores: 1.03-1.12x warm invokes at 16 callers, 1.01-1.08x
    at 64, the agents' CPU per invoke 8-13% lower). A function may switch itself back,
    as the two policies need no privilege; it only loses the batching.
    """
    die_with_agent = _parent_death_signal(parent_pid)
    files = min(RUNTIME_OPEN_FILES, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
    batch = (os.SCHED_BATCH, os.sched_param(0)) if hasattr(os, "SCHED_BATCH") else None

    def setup() -> None:
        die_with_agent()
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
        if batch is not None:
            with contextlib.suppress(OSError):  # a hint: a seccomp filter may refuse it
                os.sched_setscheduler(0, *batch)

    return setup


def _parent_death_signal(parent_pid: int) -> Callable[[], None]:
    """The call that asks for it, resolved now: as a ``preexec_fn`` it runs between fork
    and exec, where loading a library is not safe."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    import ctypes  # only here: most of the agent's start never needs it

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def ask() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)

    return ask


def spawn(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str, channel: bool = False
) -> RuntimeProcess:
    """Start ``command``; with ``channel``, hand it one end of a Unix socket pair, its
    number in ``config.CHANNEL_FD_VARIABLE``."""
    read_fd, write_fd = os.pipe()
    ours, theirs = socket.socketpair() if channel else (None, None)
    if theirs is not None:
        env = {**env, CHANNEL_FD_VARIABLE: str(theirs.fileno())}
    # The agent has no threads, so a preexec_fn is safe here.
    setup = runtime_setup(os.getpid())
    # Init Duration counts from here, the moment Lambda would start the sandbox's runtime.
    started_at = time.monotonic()
    try:
        popen = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            preexec_fn=setup,
            pass_fds=() if theirs is None else (theirs.fileno(),),
        )
    except OSError as exc:
        os.close(read_fd)
        if ours is not None:
            ours.close()
        path = command[0] if exc.filename in (None, command[0]) else str(exc.filename)
        raise SpawnError(path, (exc.strerror or str(exc)).lower()) from exc
    finally:
        os.close(write_fd)
        if theirs is not None:
            theirs.close()
    os.set_blocking(read_fd, False)
    return watch(popen.pid, popen.wait, output_fd=read_fd, started_at=started_at, channel=ours)


def watch(
    pid: int,
    wait: Callable[[], int],
    *,
    output_fd: int,
    started_at: float,
    channel: socket.socket | None,
) -> RuntimeProcess:
    """The ``RuntimeProcess`` of our child ``pid``, its descriptors opened now: while it
    is not reaped, its pid cannot name another process."""
    return RuntimeProcess(
        pid=pid,
        wait=wait,
        output_fd=output_fd,
        exit_fd=os.pidfd_open(pid),
        status_fd=os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC),
        started_at=started_at,
        channel=channel,
    )


def runtime_spawn_environment(
    config: AgentConfig, environ: Mapping[str, str], *, api_address: str
) -> dict[str, str]:
    """The environment of a runtime started for a slot of ``environ``."""
    return runtime_environment(
        environ, runtime=config.runtime, api_address=api_address, runtime_dir=config.runtime_dir
    )


def spawn_runtime(
    config: AgentConfig,
    environ: Mapping[str, str],
    *,
    api_address: str,
    prestarted: PrestartedRuntime | None = None,
    zygote: RuntimeZygote | None = None,
) -> RuntimeProcess | SpawnError:
    """Start the configured runtime, serving it the Runtime API at ``api_address``: the
    ``prestarted`` one (a spare agent's, see ``prestarted``) if it fits, else one the
    agent's ``zygote`` forks (see ``runtime_zygote``) if it can, else a new one.

    A runtime that cannot even start is not an agent failure but the function's init
    failure, so the error is returned for the slot to report, not raised.
    """
    env = runtime_spawn_environment(config, environ, api_address=api_address)
    if config.separate_environments and "TMPDIR" in env:
        # The slot's own directory: made on every start, as ``slot`` removes it when it
        # retires the runtime (a new environment starts with nothing in it).
        try:
            os.makedirs(env["TMPDIR"], mode=0o700, exist_ok=True)
        except OSError as exc:
            return SpawnError(env["TMPDIR"], f"cannot make the environment's directory: {exc}")
    if prestarted is not None:
        adopted = None
        if config.runtime in PYTHON_RUNTIMES:
            adopted = prestarted.adopt(
                command=config.runtime_command,
                environ=env,
                cwd=config.task_root,
                version=config.runtime.removeprefix("python"),
            )
        else:
            prestarted.discard()
        if adopted is not None:
            return adopted
    if zygote is not None and config.runtime in PYTHON_RUNTIMES:
        forked = zygote.fork(env, config.task_root)
        if forked is not None:
            return forked
    try:
        # The built-in python bootstrap takes its events on a channel of its own.
        return spawn(
            config.runtime_command,
            env=env,
            cwd=config.task_root,
            channel=config.runtime in PYTHON_RUNTIMES,
        )
    except SpawnError as exc:
        return exc
