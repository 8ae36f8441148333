"""One runtime process with its own Runtime API listener: runs one invocation at a time.

``agent`` makes one slot per unit of concurrency and hands IDLE and UNSTARTED slots to
the invoke endpoint, which calls ``assign`` (a STARTING or BUSY one answers the invocation
as busy, and the gateway tries another instance). The slot is the only place that knows
the runtime's lifecycle:

    UNSTARTED --assign: spawn, the invocation waits--+
                                                     v
    STARTING --first /next--> IDLE --assign--> BUSY --/response or /error--> IDLE
        |                      ^                 |
        | /init/error, exit,   |                 | timeout, exit: answer at once,
        | init timeout         |                 v kill the process group, respawn
        +--> IDLE with an init failure           STARTING (a new sandbox: cold start)

A slot starts with a runtime (``first_runtime``) or UNSTARTED: an instance starts one
runtime and the others when an invocation finds no idle one, so its cold start is one
runtime's, not one per unit of concurrency. The invocation that starts a runtime waits
for its init (the init's own limit, not the invocation's timeout, as on Lambda) and
then runs there, or meets its init failure.
An IDLE runtime may be retired (``retire``: the agent stops the runtimes that stayed
idle past the function's idle timeout, all but one); its slot is UNSTARTED again, and
when every slot is an environment of its own, the slot's directory is emptied.

A runtime asking for its next event while IDLE goes on top of ``IdleSlots``, from which
the invoke endpoint takes the latest: the runtime that finished last.

An init failure (or an exit before the runtime served anything) is kept until an
invocation meets it; that invocation gets the error and the runtime is respawned, so a
broken function costs one restart per invocation instead of a crash loop. A runtime that
served and then died between invocations is respawned at once. The runtime's
stdout/stderr lines go to the agent's stdout framed by START/END/REPORT, and into the
current invocation's log for ``LogType: Tail``.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Callable, Mapping

from kubelambda_agent import error_bodies, log_lines, peer_uid, process, runtime_api
from kubelambda_agent.config import AgentConfig
from kubelambda_agent.http_server import HttpProtocol, Request, Responder
from kubelambda_agent.invocation import Invocation, Outcome
from kubelambda_agent.output import LineSplitter
from kubelambda_agent.runtime_channel import ChannelProtocol
from kubelambda_agent.runtime_zygote import RuntimeZygote

__all__ = ["INIT_TIMEOUT_SECONDS", "RUNNING_STATES", "IdleSlots", "Slot", "SlotState"]

log = logging.getLogger(__name__)

# Lambda gives a runtime's init phase 10 seconds before it gives up on the sandbox.
INIT_TIMEOUT_SECONDS = 10.0
# How often a running invocation's memory is compared with MemorySize (``_check_memory``),
# and how old the peak in a REPORT line may be: an invocation that ends within this of the
# previous one's REPORT read reports the latest peak read (the peak is the environment's,
# as on Lambda, whose own is sampled too), so a runtime serving hundreds a second reads it
# a few dozen times; one that ran this long or longer always reports a fresh one.
MEMORY_CHECK_SECONDS = 0.05
_READ_SIZE = 64 * 1024


class SlotState(enum.Enum):
    UNSTARTED = "unstarted"
    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    STOPPED = "stopped"


#: The states of a slot whose runtime exists (or is being started).
RUNNING_STATES = frozenset({SlotState.STARTING, SlotState.IDLE, SlotState.BUSY})


class IdleSlots:
    """The slots whose runtime waits for its next event, the one that asked last on top.

    The invoke endpoint takes from the top: the runtime that finished last, whose memory
    the CPU's caches still hold, where the first idle slot in slot order had often been
    idle longer (64 callers on 2 cores keep 24 runtimes in use: 2-10 us less CPU per
    invocation in them this way, 6% more invocations a second, measured paired against
    the first idle). Runtimes that no peak of load reaches sink to the bottom and stay
    idle until they are retired. A slot that leaves IDLE by another way than ``take``
    (retired, its runtime gone) leaves a stale entry, which ``take`` skips.
    """

    def __init__(self, slots: int) -> None:
        self._stack: list[Slot] = []
        # Stale entries are dropped once they could outnumber the slots.
        self._bound = 2 * slots

    def __len__(self) -> int:
        """Entries held, stale ones included: at most twice the slots."""
        return len(self._stack)

    def push(self, slot: Slot) -> None:
        self._stack.append(slot)
        if len(self._stack) > self._bound:
            self._compact()

    def take(self) -> Slot | None:
        """The IDLE slot that asked for an event last, off the stack; ``None`` if none."""
        stack = self._stack
        while stack:
            slot = stack.pop()
            if _waits_for_event(slot):
                return slot
        return None

    def _compact(self) -> None:
        # The latest entry of each waiting slot, in stack order.
        latest = {slot: None for slot in reversed(self._stack) if _waits_for_event(slot)}
        self._stack = list(reversed(latest))


def _waits_for_event(slot: Slot) -> bool:
    return slot.state is SlotState.IDLE and slot.parked


class Slot:
    def __init__(
        self,
        *,
        index: int,
        config: AgentConfig,
        environ: Mapping[str, str],
        listener: socket.socket,
        first_runtime: process.RuntimeProcess | process.SpawnError | None,
        log_sink: Callable[[bytes], None],
        idle_slots: IdleSlots,
        zygote: RuntimeZygote | None = None,
    ) -> None:
        self.index = index
        self._idle_slots = idle_slots
        self._config = config
        self._environ = environ
        self._zygote = zygote
        self._listener = listener
        self._first_runtime: process.RuntimeProcess | process.SpawnError | None = first_runtime
        self._log_sink = log_sink
        self._loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._connections: set[HttpProtocol] = set()
        self._opening: set[asyncio.Task[None]] = set()
        self._splitter = LineSplitter()
        self._proc: process.RuntimeProcess | None = None
        self.state = SlotState.STARTING if first_runtime is not None else SlotState.UNSTARTED
        self._init_failure: error_bodies.InitFailure | None = None
        self._init_duration_ms: float | None = None
        # The runtime's output during init, kept (bounded) for an invocation that meets
        # an init failure.
        self._init_output = bytearray()
        self._max_memory_mb = 0
        self._parked: runtime_api.Reply | None = None
        self._channel: ChannelProtocol | None = None
        self._current: Invocation | None = None
        # The invocation that started this slot's runtime, until its init is over.
        self._waiting: Invocation | None = None
        self._delivered = False
        self._answered_id: str | None = None
        self._start_line = b""
        # Invocations the current runtime process completed.
        self._served = 0
        # When the slot last became IDLE (``time.monotonic``).
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._memory_timer: asyncio.TimerHandle | None = None
        # Resolved once the first runtime finished init, either way: the agent's readiness.
        self.settled: asyncio.Future[None] = self._loop.create_future()

    @property
    def api_address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        """Serve the Runtime API on the pre-bound listener and take over the first runtime,
        if the slot was given one."""
        self._server = await self._loop.create_server(
            lambda: HttpProtocol(
                self._handle_api_request,
                max_body=error_bodies.MAX_RESPONSE_BYTES,
                connections=self._connections,
                admit=_from_own_user,
            ),
            sock=self._listener,
            # A runtime opens one connection (two while it also posts an init error).
            backlog=8,
        )
        first, self._first_runtime = self._first_runtime, None
        if first is not None:
            self._adopt(first)

    def stop(self) -> None:
        """Kill the runtime and stop serving; an unfinished invocation gets an exit error."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._begin(waiting)
        unfinished = self._current or waiting
        if unfinished is not None:
            request_id = unfinished.request_id
            self._finish(unfinished, error_bodies.runtime_exit(request_id, -signal.SIGKILL))
        self.state = SlotState.STOPPED
        self._cancel_timer()
        proc = self._proc
        if proc is not None:
            proc.kill()
            self._detach(proc)
            self._loop.remove_reader(proc.exit_fd)
            proc.reap()
        if self._server is not None:
            self._server.close()

    def retire(self) -> None:
        """Stop the IDLE runtime and become UNSTARTED: the next invocation that needs
        this slot starts a new runtime, a cold start as for any other."""
        assert self.state is SlotState.IDLE, self.state
        log.info(
            "runtime retired slot=%d idle_seconds=%.1f",
            self.index,
            time.monotonic() - self.idle_since,
        )
        proc = self._proc
        if proc is not None:
            proc.kill()
            self._detach(proc)
        self._init_failure = None
        self.state = SlotState.UNSTARTED
        directory = self._environ.get("TMPDIR")
        if self._config.separate_environments and directory:
            self._discard_directory(directory)

    def _discard_directory(self, directory: str) -> None:
        """Move the environment's directory aside at once, so the next runtime here starts
        with an empty one, and remove it in a thread: the function may have left a lot."""
        retired = f"{directory}.retired-{os.urandom(4).hex()}"
        try:
            os.rename(directory, retired)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning(
                "cannot clear the environment's directory slot=%d error=%s", self.index, exc
            )
            return
        self._loop.run_in_executor(None, shutil.rmtree, retired, True)

    # -- invocations ------------------------------------------------------------------

    def assign(self, invocation: Invocation) -> None:
        """Run ``invocation`` here: at once when IDLE, after its runtime's init when
        UNSTARTED; only called in those states (a STARTING slot is busy)."""
        if self.state is SlotState.UNSTARTED:
            self._waiting = invocation
            self._spawn()
            return
        assert self.state is SlotState.IDLE, self.state
        self._begin(invocation)
        failure = self._init_failure
        if failure is not None:
            # Lambda retries a failed init inside the invocation, so its output (the
            # error and traceback, usually) is part of this invocation's log.
            self._emit(invocation, bytes(self._init_output))
            self._finish(invocation, failure.body(invocation.request_id))
            self._restart("init failure met")
            return
        self.state = SlotState.BUSY
        self._current = invocation
        self._delivered = False
        self._timer = self._loop.call_later(
            self._config.timeout_seconds, self._on_timeout, invocation
        )
        self._memory_timer = self._loop.call_later(
            MEMORY_CHECK_SECONDS, self._check_memory, invocation
        )
        self._deliver()

    def _begin(self, invocation: Invocation) -> None:
        """The invocation's clock starts: its duration, deadline and START line."""
        invocation.started_at = time.monotonic()
        invocation.deadline_ms = int((time.time() + self._config.timeout_seconds) * 1000)
        # START goes out with the invocation's first output or with END, whichever comes
        # first: same log, one write (and one wake-up of whoever reads it) fewer.
        self._start_line = log_lines.start_line(
            invocation.request_id, self._config.function_version
        )

    def _deliver(self) -> None:
        parked, invocation = self._parked, self._current
        if parked is None or invocation is None or self._delivered:
            return
        self._parked = None
        if parked.closed:
            return
        self._delivered = True
        parked.respond(200, invocation.event, invocation.runtime_headers())

    def _on_timeout(self, invocation: Invocation) -> None:
        if self._current is not invocation:
            return
        timeout = self._config.timeout_seconds
        notice = log_lines.timed_out_line(invocation.request_id, timeout, time.time())
        self._finish(
            invocation, error_bodies.timed_out(invocation.request_id, timeout), notice=notice
        )
        self._restart("timeout", request_id=invocation.request_id)

    def _check_memory(self, invocation: Invocation) -> None:
        """MemorySize is a limit, as on Lambda: a runtime whose peak resident memory
        passed it is killed and the invocation fails with ``Runtime.OutOfMemory`` (the
        next one gets a fresh runtime). Checked every ``MEMORY_CHECK_SECONDS``; the peak
        (``VmHWM``) catches a spike between two checks, though not before it happens."""
        self._memory_timer = None
        proc = self._proc
        if self._current is not invocation or proc is None:
            return
        used = proc.max_memory_used_mb()
        if used is None or used <= self._config.memory_size_mb:
            self._memory_timer = self._loop.call_later(
                MEMORY_CHECK_SECONDS, self._check_memory, invocation
            )
            return
        log.warning(
            "runtime out of memory slot=%d request_id=%s used_mb=%d limit_mb=%d",
            self.index,
            invocation.request_id,
            used,
            self._config.memory_size_mb,
        )
        self._finish(invocation, error_bodies.out_of_memory(invocation.request_id))
        self._restart("out of memory", request_id=invocation.request_id)

    def _finish(
        self,
        invocation: Invocation,
        body: bytes,
        *,
        function_error: bool = True,
        notice: bytes = b"",
    ) -> None:
        """Close the invocation's log and answer it. The caller decides the next state."""
        self._cancel_timer()
        self._drain_output(invocation)
        duration_ms = (time.monotonic() - invocation.started_at) * 1000
        if self._proc is not None:
            self._max_memory_mb = (
                self._proc.max_memory_used_mb(reuse_within=MEMORY_CHECK_SECONDS)
                or self._max_memory_mb
            )
        init_duration_ms, self._init_duration_ms = self._init_duration_ms, None
        self._emit(
            invocation,
            notice
            + log_lines.end_line(invocation.request_id)
            + log_lines.report_line(
                invocation.request_id,
                duration_ms=duration_ms,
                memory_size_mb=self._config.memory_size_mb,
                max_memory_used_mb=self._max_memory_mb,
                init_duration_ms=init_duration_ms,
            ),
        )
        self._current = None
        self._delivered = False
        self._answered_id = invocation.request_id
        invocation.complete(
            Outcome(
                body=body,
                function_error=function_error,
                duration_ms=duration_ms,
                init_duration_ms=init_duration_ms,
                max_memory_used_mb=self._max_memory_mb,
                log_tail=log_lines.tail(invocation.log) if invocation.want_tail else None,
            )
        )

    # -- Runtime API (runtime_api.RuntimeApiTarget) ------------------------------------

    def _handle_api_request(self, request: Request, responder: Responder) -> None:
        runtime_api.handle(self, request, responder)

    def next_requested(self, responder: runtime_api.Reply) -> None:
        if self.state is SlotState.STARTING and self._proc is not None:
            self._cancel_timer()
            if not self._config.initialized_ahead:
                self._init_duration_ms = (time.monotonic() - self._proc.started_at) * 1000
            self._become_idle()
        self._parked = responder
        self._deliver()
        if self.state is SlotState.IDLE:
            self._idle_slots.push(self)

    @property
    def parked(self) -> bool:
        """Its runtime waits for its next event: one handed over now starts at once."""
        return self._parked is not None

    def invocation_answered(
        self,
        request_id: str,
        body: bytes,
        *,
        is_error: bool,
        error_type: str | None,
        too_large: bool,
    ) -> runtime_api.Verdict:
        invocation = self._current
        if invocation is None or invocation.request_id != request_id or not self._delivered:
            if request_id == self._answered_id:
                return runtime_api.Verdict.ALREADY_ANSWERED
            return runtime_api.Verdict.UNKNOWN_ID
        if too_large:
            self._finish(invocation, error_bodies.response_too_large())
            verdict = runtime_api.Verdict.TOO_LARGE
        elif is_error:
            self._finish(invocation, error_bodies.function_error(body, error_type))
            verdict = runtime_api.Verdict.ACCEPTED
        else:
            self._finish(invocation, body, function_error=False)
            verdict = runtime_api.Verdict.ACCEPTED
        # The runtime polls /next again right away; until then an invocation assigned
        # here waits in the slot rather than being refused.
        self.state = SlotState.IDLE
        self.idle_since = time.monotonic()
        self._served += 1
        return verdict

    def init_failed(self, body: bytes, error_type: str | None) -> bool:
        if self.state is not SlotState.STARTING or self._proc is None:
            return False
        # What it logged about the failure may still be in the pipe: keep it with init.
        self._drain_output(None)
        self._cancel_timer()
        self._init_duration_ms = (time.monotonic() - self._proc.started_at) * 1000
        self._max_memory_mb = self._proc.max_memory_used_mb() or 0
        self._init_failure = error_bodies.InitFailure(
            error_type or "Runtime.Unknown", posted_body=body
        )
        log.warning("runtime init failed slot=%d error_type=%s", self.index, error_type)
        self._become_idle()
        return True

    # -- the runtime process ------------------------------------------------------------

    def _spawn(self) -> None:
        zygote = self._zygote
        if zygote is not None and not zygote.ready:
            if not zygote.starting:
                zygote.start(
                    process.runtime_spawn_environment(
                        self._config, self._environ, api_address=self.api_address
                    ),
                    self._config.task_root,
                )
            if zygote.starting:
                # STARTING without a process until the zygote is ready (or failed).
                self.state = SlotState.STARTING
                zygote.when_ready(self._spawn_waited)
                return
        self._spawn_now()

    def _spawn_waited(self) -> None:
        if self.state is SlotState.STARTING and self._proc is None:
            self._spawn_now()

    def _spawn_now(self) -> None:
        self._adopt(
            process.spawn_runtime(
                self._config, self._environ, api_address=self.api_address, zygote=self._zygote
            )
        )

    def _adopt(self, runtime: process.RuntimeProcess | process.SpawnError) -> None:
        self._init_failure = None
        self._init_duration_ms = None
        self._init_output.clear()
        self._max_memory_mb = 0
        self._served = 0
        if isinstance(runtime, process.SpawnError):
            log.error("runtime could not start slot=%d error=%s", self.index, runtime)
            self._init_failure = error_bodies.InitFailure("Runtime.InvalidEntrypoint", str(runtime))
            self._become_idle()
            return
        self._proc = runtime
        self.state = SlotState.STARTING
        self._loop.add_reader(runtime.output_fd, self._read_output, runtime)
        self._loop.add_reader(runtime.exit_fd, self._on_exit, runtime)
        self._timer = self._loop.call_later(INIT_TIMEOUT_SECONDS, self._on_init_timeout)
        if runtime.channel is not None:
            self._channel = ChannelProtocol(self, max_body=error_bodies.MAX_RESPONSE_BYTES)
            opening = self._loop.create_task(self._open_channel(runtime, self._channel))
            self._opening.add(opening)
            opening.add_done_callback(self._opening.discard)

    async def _open_channel(
        self, runtime: process.RuntimeProcess, channel: ChannelProtocol
    ) -> None:
        """Serve the python bootstrap's channel (``runtime_channel``); until this runs,
        what the runtime sends waits in the socket."""
        assert runtime.channel is not None
        sock, runtime.channel = runtime.channel, None
        try:
            await self._loop.connect_accepted_socket(lambda: channel, sock)
        except OSError as exc:
            log.warning("runtime channel unusable slot=%d error=%s", self.index, exc)
            sock.close()
            return
        if channel is not self._channel:
            channel.close()  # the runtime was let go of meanwhile

    def _become_idle(self) -> None:
        self.state = SlotState.IDLE
        self.idle_since = time.monotonic()
        if not self.settled.done():
            self.settled.set_result(None)
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self.assign(waiting)

    def _read_output(self, proc: process.RuntimeProcess) -> None:
        chunks = []
        while True:
            try:
                data = os.read(proc.output_fd, _READ_SIZE)
            except BlockingIOError:
                break
            if not data:
                # Every writer closed the pipe; the exit watch handles the rest.
                self._loop.remove_reader(proc.output_fd)
                break
            chunks.append(data)
        if chunks:
            lines = self._splitter.feed(b"".join(chunks))
            if lines:
                self._emit(self._current, lines)

    def _drain_output(self, invocation: Invocation | None) -> None:
        """Take all the runtime wrote so far, an unterminated last line included.

        Called before anything is concluded from a Runtime API request or an exit: the
        output pipe and the API socket are separate, so lines written just before may not
        have been read yet.
        """
        if self._proc is not None:
            self._read_output(self._proc)
        rest = self._splitter.flush()
        if rest:
            self._emit(invocation, rest)

    def _on_exit(self, proc: process.RuntimeProcess) -> None:
        self._loop.remove_reader(proc.exit_fd)
        returncode = proc.reap()
        if proc is not self._proc or self.state is SlotState.STOPPED:
            return
        self._drain_output(self._current)
        if self.state is SlotState.STARTING:
            self._cancel_timer()
            self._init_duration_ms = (time.monotonic() - proc.started_at) * 1000
            self._init_failure = error_bodies.InitFailure.from_exit(returncode)
            log.warning("runtime exited during init slot=%d returncode=%d", self.index, returncode)
            self._detach(proc)
            self._become_idle()
        elif self.state is SlotState.BUSY and self._current is not None:
            request_id = self._current.request_id
            self._finish(self._current, error_bodies.runtime_exit(request_id, returncode))
            self._detach(proc)
            self._restart("runtime exited", request_id=request_id)
        elif self._init_failure is not None:
            # It posted /init/error and exited, as runtimes do; the failure is kept.
            self._detach(proc)
        elif self._served:
            log.warning("runtime exited while idle slot=%d returncode=%d", self.index, returncode)
            self._detach(proc)
            self._restart("runtime exited while idle")
        else:
            # It never completed an invocation: restarting at once could loop forever, so
            # the next invocation meets the failure and pays for one restart, as with init.
            log.warning(
                "runtime exited before serving slot=%d returncode=%d", self.index, returncode
            )
            self._init_failure = error_bodies.InitFailure.from_exit(returncode)
            self._detach(proc)

    def _on_init_timeout(self) -> None:
        proc = self._proc
        if self.state is not SlotState.STARTING or proc is None:
            return
        log.warning("runtime init timed out slot=%d", self.index)
        self._init_duration_ms = INIT_TIMEOUT_SECONDS * 1000
        self._init_failure = error_bodies.InitFailure(
            "Sandbox.Timedout", f"Runtime init timed out after {INIT_TIMEOUT_SECONDS:.2f} seconds"
        )
        proc.kill()
        self._detach(proc)
        self._become_idle()

    def _detach(self, proc: process.RuntimeProcess) -> None:
        """Let go of a runtime that exited or is being killed, keeping its last output."""
        self._drain_output(self._current)
        self._loop.remove_reader(proc.output_fd)
        os.close(proc.output_fd)
        if proc.returncode is None:
            # Killed: reap it when it is gone, without holding up the slot.
            self._loop.add_reader(proc.exit_fd, self._on_exit, proc)
        self._proc = None
        self._parked = None
        # Anything still buffered on its connections is stale: drop it with them.
        for conn in list(self._connections):
            conn.close()
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _restart(self, reason: str, *, request_id: str = "") -> None:
        log.info(
            "restarting runtime slot=%d reason=%s request_id=%s", self.index, reason, request_id
        )
        proc = self._proc
        if proc is not None:
            proc.kill()
            self._detach(proc)
        self._spawn()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._memory_timer is not None:
            self._memory_timer.cancel()
            self._memory_timer = None

    def _emit(self, invocation: Invocation | None, data: bytes) -> None:
        if invocation is not None and self._start_line:
            data, self._start_line = self._start_line + data, b""
        self._log_sink(data)
        if invocation is not None:
            invocation.record_log(data)
        elif self.state is SlotState.STARTING:
            self._init_output += data
            del self._init_output[: -log_lines.TAIL_BYTES]


def _from_own_user(transport: asyncio.Transport) -> bool:
    """Only processes of the agent's own user (its runtimes) may use the Runtime API:
    another local user's process could otherwise take this function's events."""
    peer, local = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
    owner = peer_uid.loopback_peer_uid(peer[:2], local[:2]) if peer and local else None
    if owner == os.getuid():
        return True
    log.warning("event=runtime_api_refused peer=%s peer_uid=%s", peer, owner)
    return False
