"""The platform's side of the zygote (``agent_zygote``): spare agents in a millisecond.

``controller.backends.local.LocalProcessBackend`` starts one ``Zygote`` and asks it for
spares (``fork``) instead of spawning them (``local_process.prestart``), which costs an
interpreter start and the agent's imports each. A forked spare is a ``Spare`` like a
spawned one; its process is a ``ForkedProcess``: the zygote is its parent, so its end
(and return code) comes as a message from the zygote, and signals go to its pid.

If the zygote dies, so do the agents it forked (they die with their parent, as spawned
agents die with the platform): their ends are reported here as killed, and ``fork``
raises ``ZygoteGone``, on which the backend spawns its spares again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from controller.backends.local_process import AGENT_COMMAND, Spare, read_ready_pipe

__all__ = ["CONTROL_FD_VARIABLE", "ZYGOTE_COMMAND", "ForkedProcess", "Zygote", "ZygoteGone"]

logger = logging.getLogger(__name__)

ZYGOTE_COMMAND: tuple[str, ...] = (*AGENT_COMMAND, "--zygote")
# Where the zygote finds its end of the control socket (``agent_zygote``, which runs in the
# zygote's process and is not imported here, spells it too).
CONTROL_FD_VARIABLE = "KUBELAMBDA_ZYGOTE_CONTROL_FD"
# How long the zygote may take to answer a fork: far more than a fork ever takes.
_ANSWER_SECONDS = 10.0
_EXIT_SECONDS = 2.0


class ZygoteGone(Exception):
    """The zygote exited (or never answered): spawn the spare instead."""


class _PipeInput:
    """Our end of a forked spare's stdin."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._fd is not None:
            view = view[os.write(self._fd, view) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ForkedProcess:
    """A spare agent the zygote forked, as ``local_process.AgentProcess``."""

    def __init__(self, pid: int, stdin: _PipeInput, ended: asyncio.Future[int]) -> None:
        self._pid = pid
        self._stdin = stdin
        self._ended = ended

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def returncode(self) -> int | None:
        return self._ended.result() if self._ended.done() else None

    @property
    def stdin(self) -> _PipeInput:
        return self._stdin

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)

    def send_signal(self, signal: int) -> None:
        if self._ended.done():
            raise ProcessLookupError(self._pid)
        os.kill(self._pid, signal)


class Zygote:
    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self._process = process
        self._control = control
        self._lock = asyncio.Lock()
        self._answers: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._children: dict[int, asyncio.Future[int]] = {}
        # Ends reported before ``fork`` registered the child (it died at once).
        self._early_ends: dict[int, int] = {}
        self._gone = False
        self._reader = asyncio.create_task(self._read(), name="agent-zygote")

    @classmethod
    async def start(
        cls,
        *,
        command: Sequence[str],
        environ: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> Zygote:
        """Start a zygote (``command`` runs ``agent_zygote``) with ``environ``, its own
        output going to ``log_path``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log_path.open("ab") as log:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    env={**environ, CONTROL_FD_VARIABLE: str(theirs.fileno())},
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                    cwd=cwd,
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(process, ours)

    @property
    def alive(self) -> bool:
        return not self._gone

    async def fork(self, *, environ: Mapping[str, str], log_path: Path) -> Spare:
        """A new spare agent with ``environ`` added to the zygote's, its output going to
        ``log_path``. Raises ``ZygoteGone``."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._gone:
                raise ZygoteGone("the zygote has exited")
            stdin_read, stdin_write = os.pipe()
            ready_read, ready_write = os.pipe()
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                socket.send_fds(
                    self._control,
                    [json.dumps({"environ": dict(environ)}).encode()],
                    [stdin_read, ready_write, log],
                )
                async with asyncio.timeout(_ANSWER_SECONDS):
                    answer = await self._answers.get()
            except (OSError, TimeoutError) as exc:
                os.close(stdin_write)
                os.close(ready_read)
                # A late answer would be taken for the next request's: no next request.
                self._gone = True
                with contextlib.suppress(ProcessLookupError):
                    self._process.kill()
                raise ZygoteGone(f"the zygote did not fork: {exc!r}") from exc
            finally:
                # The child has its own copies; ours must go, or EOF never comes.
                for fd in (stdin_read, ready_write, log):
                    os.close(fd)
            if answer is None:
                os.close(stdin_write)
                os.close(ready_read)
                raise ZygoteGone("the zygote exited")
            pid = int(answer["pid"])
            ended: asyncio.Future[int] = loop.create_future()
            if pid in self._early_ends:
                ended.set_result(self._early_ends.pop(pid))
            else:
                self._children[pid] = ended
        reader, transport = await read_ready_pipe(ready_read)
        return Spare(
            process=ForkedProcess(pid, _PipeInput(stdin_write), ended),
            ready_fd=int(answer["ready_fd"]),
            ready_reader=reader,
            pipe=transport,
        )

    async def aclose(self) -> None:
        """End the zygote (it exits when its control socket closes); the agents it
        forked must be gone already, or they go with it."""
        # A pending receive is not woken by closing the socket under it.
        self._reader.cancel()
        await asyncio.wait({self._reader})
        self._control.close()
        try:
            async with asyncio.timeout(_EXIT_SECONDS):
                await self._process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                message = await loop.sock_recv(self._control, 64 * 1024)
                if not message:
                    break
                decoded = json.loads(message)
                if "exit" in decoded:
                    self._ended(int(decoded["exit"]), int(decoded["returncode"]))
                else:
                    self._answers.put_nowait(decoded)
        except OSError:
            pass  # closed by aclose, or the zygote died
        finally:
            self._gone = True
            self._answers.put_nowait(None)
            self._orphaned()

    def _ended(self, pid: int, returncode: int) -> None:
        ended = self._children.pop(pid, None)
        if ended is None:
            self._early_ends[pid] = returncode
        elif not ended.done():
            ended.set_result(returncode)

    def _orphaned(self) -> None:
        """The zygote is gone: the agents it forked die with it; make sure, and report
        them killed."""
        if self._children:
            logger.warning(
                "agent zygote exited; its agents die with it count=%d", len(self._children)
            )
        for pid, ended in self._children.items():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            if not ended.done():
                ended.set_result(-signal.SIGKILL)
        self._children.clear()
