"""One local instance: an agent process, from spawn through readiness to its exit.

``controller.backends.local.LocalProcessBackend`` owns the instances and decides which
ones live; this module only knows how to run one. The agent writes ``{"port": P}`` on
the ready pipe once it listens and its runtimes are initialised; an instance whose pipe
closes first exited during init, and one that stays silent past the bound is killed.

Stopping sends SIGTERM to the agent alone, because the agent drains in-flight
invocations and then stops its runtimes itself; a runtime that got the signal directly
would die mid-invocation. SIGKILL after the grace period goes to the agent's group.
The agent starts each runtime in a session of its own, and a killed agent's runtimes
are re-parented away from it, so neither the process group nor the process tree finds
them all: ``sweep`` finds every process of an instance by the one environment entry
unique to it (its log stream name, which the agent passes on to its runtimes and they
to their children) and kills those too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller import errors
from kubelambda.models import Target
from kubelambda.ports import Endpoint

__all__ = ["AGENT_COMMAND", "LocalProcess", "spawn"]

AGENT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "kubelambda_agent")
READY_FD_VARIABLE = "KUBELAMBDA_AGENT_READY_FD"
# Unique per instance (it holds the instance id) and inherited by every process in it.
MARKER_VARIABLE = "AWS_LAMBDA_LOG_STREAM_NAME"

_LOG_TAIL_BYTES = 2048
_SWEEP_ROUNDS = 5

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class LocalProcess:
    """A spawned agent. ``endpoint`` is set once it is ready, ``stopping`` once it is told to go."""

    target: Target
    instance_id: str
    revision: tuple[str, int]
    provisioned: bool
    process: asyncio.subprocess.Process
    log_path: Path
    spawned_at: float
    stop_grace: float
    ready_reader: asyncio.StreamReader
    marker: bytes
    endpoint: Endpoint | None = None
    stopping: bool = False
    _pipe: asyncio.BaseTransport | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self, within: float) -> int:
        """The port the agent listens on, once it says it is ready.

        Raises ``InstanceExited`` if the agent closes the pipe (exits) first and
        ``InstanceNotReady`` after ``within`` seconds, having killed the agent.
        """
        try:
            line = await asyncio.wait_for(self.ready_reader.readline(), within)
        except TimeoutError:
            await self.sweep()
            await self.process.wait()
            raise errors.InstanceNotReady(within, self.log_tail()) from None
        finally:
            self._close_pipe()
        if not line.endswith(b"\n"):
            returncode = await self.process.wait()
            raise errors.InstanceExited(returncode, self.log_tail())
        try:
            return int(json.loads(line)["port"])
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
                await asyncio.wait_for(self.process.wait(), grace)
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
        """SIGKILL the agent's group and every process that carries this instance's marker."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        # A runtime may fork while we look: repeat until a scan finds nobody.
        for _ in range(_SWEEP_ROUNDS):
            pids = await asyncio.to_thread(processes_with_environ, self.marker)
            if not pids:
                return
            for pid in pids:
                for kill in (os.killpg, os.kill):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        kill(pid, signal.SIGKILL)
            await asyncio.sleep(0)

    def log_tail(self) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(0, os.SEEK_END)
                log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None


def processes_with_environ(entry: bytes) -> list[int]:
    """Pids of the live processes whose initial environment holds ``entry`` (``NAME=value``)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if entry in environ.split(b"\0"):
            found.append(int(proc.name))
    return found


async def spawn(
    *,
    target: Target,
    instance_id: str,
    revision: tuple[str, int],
    provisioned: bool,
    environ: Mapping[str, str],
    log_path: Path,
    spawned_at: float,
    stop_grace: float,
    command: Sequence[str] = AGENT_COMMAND,
    cwd: Path | None = None,
) -> LocalProcess:
    """Start one agent with ``environ`` plus the number of its ready pipe's write end."""
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                *command,
                env={**environ, READY_FD_VARIABLE: str(write_fd)},
                stdin=subprocess.DEVNULL,
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
        # The child has its own copy; ours must go, or the pipe never reports EOF.
        os.close(write_fd)
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    return LocalProcess(
        target=target,
        instance_id=instance_id,
        revision=revision,
        provisioned=provisioned,
        process=process,
        log_path=log_path,
        spawned_at=spawned_at,
        stop_grace=stop_grace,
        ready_reader=reader,
        marker=f"{MARKER_VARIABLE}={environ[MARKER_VARIABLE]}".encode(),
        _pipe=transport,
    )
