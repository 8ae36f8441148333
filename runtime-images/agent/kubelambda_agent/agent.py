"""The agent's lifecycle: serve, announce readiness, drain on SIGTERM, stop the runtimes.

``__main__`` calls ``run`` with the listeners it bound and the runtimes it already
started. Readiness is announced once, on ``KUBELAMBDA_AGENT_READY_FD``, when the invoke
endpoint listens and every runtime started so far finished its first init (well or
badly): the launcher learns where the endpoint listens (``{"port": P}``, or ``{"unix": A}``
on a Unix socket) and that an invocation will not wait for a cold start (an instance of
concurrency above one starts its other runtimes later: ``slot``).

After a burst, the runtimes it started stay until the function's idle timeout
(``runtime_idle_seconds``) has passed without an invocation for them; then they are
stopped, all but the last one running (the instance's own idle timeout is the
autoscaler's business), so an instance of concurrency 16 that served a burst does not
hold sixteen processes' memory for the trickle after it. Invocations take the runtime
that finished last (``slot.IdleSlots``), which leaves the surplus idle. Provisioned
instances keep every runtime: they were initialised ahead for their whole concurrency.
The runtime zygote (which forks the runtimes started after the first,
``runtime_zygote``) is stopped after the same time without a fork, and started again by
the next runtime needed.

An agent of the embedded platform may host several execution environments of its
function, ``environment_concurrency`` slots each (one slot each: with a ``TMPDIR`` of its
own, ``environment.slot_environment``); the launcher says how many on the control pipe
(``control``), and the invoke endpoint takes no more invocations at once, nor keeps
more runtimes, than their slots.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence

import uvloop

from kubelambda_agent import process, protocol
from kubelambda_agent.config import LISTEN_BACKLOG, PYTHON_RUNTIMES, AgentConfig
from kubelambda_agent.control import ControlProtocol
from kubelambda_agent.http_server import HttpProtocol
from kubelambda_agent.invoke_endpoint import InvokeEndpoint
from kubelambda_agent.log_file import LogFile
from kubelambda_agent.runtime_zygote import RuntimeZygote
from kubelambda_agent.slot import RUNNING_STATES, IdleSlots, Slot, SlotState

__all__ = ["run"]

log = logging.getLogger("kubelambda_agent")

# The longest pause between two looks for runtimes idle past their timeout: a runtime is
# stopped at most this long after its idle timeout.
_RETIRE_CHECK_SECONDS = 10.0


def run(
    config: AgentConfig,
    slot_environs: Sequence[Mapping[str, str]],
    *,
    invoke_listener: socket.socket,
    api_listeners: Sequence[socket.socket],
    first_runtimes: Sequence[process.RuntimeProcess | process.SpawnError | None],
) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # uvloop: about a fifth less CPU per invocation than asyncio's own loop (issue 11).
    # Imported with this module, before a spare agent gives up root (agent_shim): an
    # interpreter under /root could not load it afterwards.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(
            _serve(
                config,
                slot_environs,
                invoke_listener=invoke_listener,
                api_listeners=api_listeners,
                first_runtimes=first_runtimes,
            )
        )


async def _serve(
    config: AgentConfig,
    slot_environs: Sequence[Mapping[str, str]],
    *,
    invoke_listener: socket.socket,
    api_listeners: Sequence[socket.socket],
    first_runtimes: Sequence[process.RuntimeProcess | process.SpawnError | None],
) -> int:
    loop = asyncio.get_running_loop()
    log_file = LogFile(config.log_file, config.log_max_bytes)
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    # Forks the runtimes started after the first ones (Linux: it relies on the agent
    # being its descendants' subreaper).
    zygote = (
        RuntimeZygote(config.runtime_command, version=config.runtime.removeprefix("python"))
        if config.runtime in PYTHON_RUNTIMES and sys.platform.startswith("linux")
        else None
    )
    idle_slots = IdleSlots(len(api_listeners))
    slots = [
        Slot(
            index=index,
            config=config,
            environ=environ,
            listener=listener,
            first_runtime=first,
            log_sink=log_file.write,
            idle_slots=idle_slots,
            zygote=zygote,
        )
        for index, (environ, listener, first) in enumerate(
            zip(slot_environs, api_listeners, first_runtimes, strict=True)
        )
    ]
    endpoint = InvokeEndpoint(
        slots,
        idle_slots=idle_slots,
        token=config.invoke_token,
        slots_per_environment=config.slots_per_environment,
    )
    connections: set[HttpProtocol] = set()
    server = await loop.create_server(
        lambda: HttpProtocol(
            endpoint.handle, max_body=protocol.MAX_EVENT_BYTES, connections=connections
        ),
        sock=invoke_listener,
        backlog=LISTEN_BACKLOG,
    )
    # Slots without a runtime yet serve their Runtime API once the instance is ready:
    # their runtimes start later, and their listeners keep what comes early.
    later = [slot for slot in slots if slot.state is SlotState.UNSTARTED]
    for slot in [slot for slot in slots if slot.state is not SlotState.UNSTARTED]:
        await slot.start()
    if config.control_fd is not None:
        await loop.connect_read_pipe(
            lambda: ControlProtocol(endpoint.place, environments=config.hosted_environments),
            os.fdopen(config.control_fd, "rb", buffering=0),
        )
    address = _listen_address(invoke_listener)

    settled = asyncio.gather(
        *(slot.settled for slot in slots if slot.state is not SlotState.UNSTARTED)
    )
    stop_wait = asyncio.ensure_future(stopping.wait())
    retiring = (
        None
        if config.initialized_ahead or (len(slots) == 1 and zygote is None)
        else asyncio.ensure_future(
            _retire_idle_runtimes(slots, zygote, config.runtime_idle_seconds)
        )
    )
    await asyncio.wait((settled, stop_wait), return_when=asyncio.FIRST_COMPLETED)
    if settled.done():
        endpoint.ready = True
        log.info(
            "agent ready address=%r runtime=%s concurrency=%d",
            address,
            config.runtime,
            config.concurrency,
        )
        if config.ready_fd is not None:
            _announce_ready(config.ready_fd, address)
        if config.announcement is not None:
            # Imported only here: embedded instances never announce.
            from kubelambda_agent import announce

            announce.announce_in_background(config.announcement, token=config.invoke_token)
    for slot in later:
        await slot.start()
    await stop_wait

    log.info("draining")
    if retiring is not None:
        retiring.cancel()
    await endpoint.drain()
    for slot in slots:
        slot.stop()
    if zygote is not None:
        zygote.close()
    # Background processes the function left (a child in its own session, a double
    # fork): none outlives the instance.
    process.end_descendants()
    server.close()
    for conn in list(connections):
        conn.close()
    settled.cancel()
    log.info("stopped")
    return 0


async def _retire_idle_runtimes(
    slots: Sequence[Slot], zygote: RuntimeZygote | None, idle_seconds: float
) -> None:
    """Stop the runtimes of ``slots`` idle for ``idle_seconds`` or more, for good, but
    the last one running: when every runtime idled that long, the one that served last
    stays. Also the zygote, when it forked none for as long."""
    while True:
        await asyncio.sleep(min(idle_seconds, _RETIRE_CHECK_SECONDS))
        now = time.monotonic()
        running = [slot for slot in slots if slot.state in RUNNING_STATES]
        stale = [
            slot
            for slot in running
            if slot.state is SlotState.IDLE and now - slot.idle_since >= idle_seconds
        ]
        if stale and len(stale) == len(running):
            stale.remove(max(stale, key=lambda slot: slot.idle_since))
        for slot in stale:
            slot.retire()
        if zygote is not None and zygote.ready and now - zygote.used_at >= idle_seconds:
            zygote.close()


def _listen_address(listener: socket.socket) -> dict[str, int | str]:
    """What the ready line says about the invoke endpoint: ``{"port": P}`` for TCP,
    ``{"unix": A}`` for its abstract Unix socket (the name starts with a NUL character)."""
    name = listener.getsockname()
    if isinstance(name, tuple):
        return {"port": name[1]}
    # Python gives an abstract name as bytes.
    return {"unix": name.decode("latin-1")}


def _announce_ready(fd: int, address: dict[str, int | str]) -> None:
    try:
        os.write(fd, json.dumps(address).encode() + b"\n")
    except OSError as exc:
        log.warning("could not announce readiness fd=%d error=%s", fd, exc)
    finally:
        os.close(fd)
