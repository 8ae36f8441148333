"""One local instance: an agent process, from its start through readiness to its exit.

``controller.backends.local.LocalProcessBackend`` owns the instances and decides which
ones live; this module only knows how to run one. Every agent starts as a ``Spare``
(``prestart``: an interpreter with the agent imported, see ``agent_shim``; or forked by
the zygote, ``local_zygote``, whose process object is an ``AgentProcess`` too) and
becomes a ``LocalProcess`` when ``assign`` gives it a function, either at once (a cold
start) or when a spare kept by the backend is taken (most of the start already paid).

The agent writes where it listens (``{"unix": A}``, an abstract Unix socket) on the ready
pipe once it listens and the runtimes it started are initialised; an instance whose pipe
closes first exited during init, and one that stays silent past the bound is killed.

Stopping sends SIGTERM to the agent alone, because the agent drains in-flight
invocations and then stops its runtimes itself; a runtime that got the signal directly
would die mid-invocation. SIGKILL after the grace period goes to the agent's group.
The agent starts each runtime in a session of its own, and a killed agent's runtimes
are re-parented away from it, so neither the process group nor the process tree finds
them all: ``sweep`` finds every process of an instance by the one environment entry
unique to it (its log stream name, which the agent passes on to its runtimes and they
to their children) and kills those too.

A platform killed outright (``kill -9``) cannot stop anything. On Linux every agent
dies with the platform and every runtime with its agent (a parent-death signal: the
shim asks for it, given the platform's pid in ``PARENT_PID_VARIABLE``). What escapes
that (a process a function started in a session of its own, or a host without the
signal) is found by ``reap_home`` when a platform next starts on the same home: agents
carry the home in ``HOME_VARIABLE``, and everything below an agent carries a
``LAMBDA_TASK_ROOT`` under the home's code directory (or, for instances that ran as
users of their own, under the platform's instance files, see ``local_files``).

An instance may run as a user of its own (``assign``'s ``user``): the agent switches to it
before it starts. The platform, root then, still signals and reads every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from controller import errors
from controller.backends import local_env
from controller.backends.local_users import InstanceUser
from kubelambda.models import Target
from kubelambda.ports.endpoints import UNIX_PORT, Endpoint

__all__ = [
    "AGENT_COMMAND",
    "AgentProcess",
    "LocalProcess",
    "ProcessInput",
    "Spare",
    "assign",
    "platform_environment",
    "prestart",
    "read_ready_pipe",
    "reap_home",
    "spare_environment",
]

AGENT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "controller.backends.agent_shim")
READY_FD_VARIABLE = "KUBELAMBDA_AGENT_READY_FD"
# Unique per instance (it holds the instance id) and inherited by every process in it.
MARKER_VARIABLE = "AWS_LAMBDA_LOG_STREAM_NAME"
# In a spare agent's own (initial) environment: the platform it belongs to.
HOME_VARIABLE = "KUBELAMBDA_PLATFORM_HOME"
PARENT_PID_VARIABLE = "KUBELAMBDA_PLATFORM_PID"
# In a spare agent's own environment: the python runtime to start ahead of need, if any
# (``agent_shim``), as a JSON list.
SPARE_RUNTIME_VARIABLE = "KUBELAMBDA_SPARE_RUNTIME"

_LOG_TAIL_BYTES = 2048
_SWEEP_ROUNDS = 5
_SPARE_EXIT_SECONDS = 2.0

logger = logging.getLogger(__name__)


class ProcessInput(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class AgentProcess(Protocol):
    """What the backend needs of an agent's process: a spawned one
    (``asyncio.subprocess.Process``) or one a zygote forked (``local_zygote``)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdin(self) -> ProcessInput | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, signal: int) -> None: ...


@dataclass(eq=False)
class LocalProcess:
    """A spawned agent. ``endpoint`` is set once it is ready, ``stopping`` once it is told to go."""

    target: Target
    instance_id: str
    revision: tuple[str, str, int]
    provisioned: bool
    process: AgentProcess
    log_path: Path
    spawned_at: float
    stop_grace: float
    ready_reader: asyncio.StreamReader
    marker: bytes
    #: Its function's MemorySize: what it takes of the host's budget.
    memory_mb: int
    invoke_token: str = field(repr=False)
    #: The execution environments of its function it may host, and hosts now: one and
    #: one, except for an agent hosting several (``local``).
    capacity: int = 1
    environments: int = 1
    endpoint: Endpoint | None = None
    stopping: bool = False
    _pipe: asyncio.BaseTransport | None = field(default=None, repr=False)
    # The agent's stdin, kept open when it may host several environments: how many are
    # placed in it goes there (``kubelambda_agent.control``).
    _control: ProcessInput | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def concurrency(self) -> int:
        """Invocations each of its environments runs at once: one runtime process each."""
        return self.revision[2]

    @property
    def serves(self) -> int:
        """Invocations it takes at once: its endpoint's concurrency."""
        return self.environments * self.concurrency

    def resize(self, environments: int) -> None:
        """Host ``environments`` from now on; its endpoint, if it is ready, follows."""
        self.environments = environments
        if self.endpoint is not None:
            self.endpoint = dataclasses.replace(self.endpoint, concurrency=self.serves)
            self.tell_environments()

    def tell_environments(self) -> None:
        """Tell the agent how many environments it hosts: it takes as many invocations at
        once, and stops idle runtimes beyond them. Only once it is ready: until then its
        stdin is where the shim reads its assignment."""
        if self._control is None:
            return
        line = json.dumps({"environments": self.environments}).encode() + b"\n"
        # An agent that died meanwhile is its supervisor's business.
        with contextlib.suppress(OSError):
            self._control.write(line)

    async def wait_ready(self, within: float) -> tuple[str, int]:
        """Where the agent listens, once it says it is ready: the abstract Unix socket
        ``local_env`` asks for, and ``UNIX_PORT``.

        Raises ``InstanceExited`` if the agent closes the pipe (exits) first and
        ``InstanceNotReady`` after ``within`` seconds, having killed the agent.
        """
        try:
            async with asyncio.timeout(within):
                line = await self.ready_reader.readline()
        except TimeoutError:
            await self.sweep()
            await self.process.wait()
            raise errors.InstanceNotReady(within, self.log_tail()) from None
        finally:
            self._close_pipe()
        if not line.endswith(b"\n"):
            returncode = await self.process.wait()
            self._close_control()
            raise errors.InstanceExited(returncode, self.log_tail())
        try:
            return str(json.loads(line)["unix"]), UNIX_PORT
        except (ValueError, KeyError, TypeError) as exc:
            await self.sweep()
            await self.process.wait()
            raise errors.InstanceExited(None, f"bad ready line {line!r}") from exc

    async def stop(self) -> None:
        """SIGTERM the agent, SIGKILL its group if it has not exited after ``stop_grace`` s."""
        grace = self.stop_grace
        self.stopping = True
        self._close_pipe()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(grace):
                    await self.process.wait()
            except TimeoutError:
                logger.warning(
                    "instance did not drain in time, killing function=%s version=%s "
                    "instance=%s grace_s=%g",
                    self.target.function_name,
                    self.target.version,
                    self.instance_id,
                    grace,
                )
                await self.sweep()
                await self.process.wait()
        # Whatever the agent left behind (it should leave nothing) dies now.
        await self.sweep()

    async def sweep(self) -> None:
        """SIGKILL the agent's group and every process that carries this instance's
        marker, and let go of the agent's control pipe."""
        self._close_control()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        marker = self.marker
        await _kill_until_none(lambda entries: marker in entries)

    def log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _close_control(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


async def reap_home(home: Path, *, instance_files: Path | None = None) -> int:
    """SIGKILL every agent and runtime (and their descendants) that a platform on
    ``home`` started and nobody stopped; the number of processes killed. Instances that
    ran as users of their own had their code in ``instance_files`` (``local_files``)."""
    agent = f"{HOME_VARIABLE}={home}".encode()
    code = [home / "code" / "unpacked"]
    if instance_files is not None:
        code.append(instance_files / "code")
    task_roots = tuple(f"LAMBDA_TASK_ROOT={directory}/".encode() for directory in code)

    def of_home(entries: list[bytes]) -> bool:
        return agent in entries or any(entry.startswith(task_roots) for entry in entries)

    return await _kill_until_none(of_home)


async def _kill_until_none(matches: Callable[[list[bytes]], bool]) -> int:
    """SIGKILL (with their groups) the processes whose environment ``matches``; a process
    may fork while we look, so repeat until a scan finds nobody."""
    killed = 0
    for _ in range(_SWEEP_ROUNDS):
        pids = await asyncio.to_thread(processes_with_environ, matches)
        if not pids:
            break
        for pid in pids:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        killed += len(pids)
        await asyncio.sleep(0)
    return killed


def processes_with_environ(matches: Callable[[list[bytes]], bool]) -> list[int]:
    """Pids of the other live processes whose initial environment (its ``NAME=value``
    entries) ``matches``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if matches(environ.split(b"\0")):
            found.append(int(proc.name))
    return found


@dataclass(eq=False)
class Spare:
    """An agent started ahead of need (``agent_shim``), waiting for its assignment."""

    process: AgentProcess
    ready_fd: int
    ready_reader: asyncio.StreamReader
    pipe: asyncio.BaseTransport

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def discard(self) -> None:
        """End a spare that will not be used: it exits at the end of its stdin."""
        self.pipe.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            async with asyncio.timeout(_SPARE_EXIT_SECONDS):
                await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()


async def prestart(
    *,
    home: Path,
    host_environ: Mapping[str, str],
    log_path: Path,
    command: Sequence[str] = AGENT_COMMAND,
    cwd: Path | None = None,
    runtime_command: Sequence[str] | None = None,
) -> Spare:
    """Start an agent of the platform on ``home`` that waits on its stdin for ``assign``
    (with a python runtime of ``runtime_command`` started ahead of need, if given); its
    own output (should it fail before that) goes to ``log_path``."""
    read_fd, write_fd = os.pipe()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                env={
                    **platform_environment(host_environ, home=home),
                    **spare_environment(runtime_command),
                },
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write_fd,),
                start_new_session=True,
                cwd=cwd,
            )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        # The child has its own copy (same number); ours must go, or the pipe never
        # reports EOF when the agent dies.
        os.close(write_fd)
    reader, transport = await read_ready_pipe(read_fd)
    return Spare(process=process, ready_fd=write_fd, ready_reader=reader, pipe=transport)


async def read_ready_pipe(read_fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A reader of an agent's ready pipe (its read end, ``read_fd``, which it now owns)."""
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    return reader, transport


def platform_environment(host_environ: Mapping[str, str], *, home: Path) -> dict[str, str]:
    """What every agent the platform on ``home`` starts has in its own environment: the
    host's ``host_environ``, the home (``reap_home`` finds it by that) and the platform's
    pid (it dies with the platform)."""
    return {**host_environ, HOME_VARIABLE: str(home), PARENT_PID_VARIABLE: str(os.getpid())}


def spare_environment(runtime_command: Sequence[str] | None) -> dict[str, str]:
    """What a spare adds: the python runtime to start ahead of need, if any."""
    if runtime_command is None:
        return {}
    return {SPARE_RUNTIME_VARIABLE: json.dumps(list(runtime_command))}


def assign(
    spare: Spare,
    *,
    target: Target,
    instance_id: str,
    revision: tuple[str, str, int],
    provisioned: bool,
    environ: Mapping[str, str],
    log_path: Path,
    assigned_at: float,
    stop_grace: float,
    memory_mb: int,
    user: InstanceUser | None = None,
    capacity: int = 1,
) -> LocalProcess:
    """Give a spare its function: ``environ`` (plus its ready pipe), its log file (whose
    directory must exist) and the user it runs as (``None``: the platform's). An agent
    that may host more than one environment (``capacity``) keeps its stdin open: the
    number it hosts goes there (``LocalProcess.tell_environments``).

    The invoke token is in ``environ``: it goes down the spare's stdin now, so an agent
    started ahead of need never had one in its own (``/proc``-readable) environment."""
    assignment: dict[str, object] = {
        "environ": {**environ, READY_FD_VARIABLE: str(spare.ready_fd)},
        "log": str(log_path),
    }
    if user is not None:
        assignment["user"] = {"uid": user.uid, "gid": user.gid}
    stdin = spare.process.stdin
    if stdin is not None:
        # A spare that died meanwhile shows up as EOF on its ready pipe, in wait_ready.
        with contextlib.suppress(ConnectionError):
            stdin.write(json.dumps(assignment).encode() + b"\n")
        if capacity == 1:
            stdin.close()
    return LocalProcess(
        target=target,
        instance_id=instance_id,
        revision=revision,
        provisioned=provisioned,
        process=spare.process,
        log_path=log_path,
        spawned_at=assigned_at,
        stop_grace=stop_grace,
        ready_reader=spare.ready_reader,
        marker=f"{MARKER_VARIABLE}={environ[MARKER_VARIABLE]}".encode(),
        memory_mb=memory_mb,
        invoke_token=environ[local_env.INVOKE_TOKEN_VARIABLE],
        capacity=capacity,
        _pipe=spare.pipe,
        _control=stdin if capacity > 1 else None,
    )
