"""The launcher's control pipe: how many execution environments are placed in the agent.

The embedded platform hosts several environments of a concurrency-1 function in one
agent (``AgentConfig.separate_environments``) and changes their number as it scales,
without a new agent: it writes ``{"environments": N}`` lines on the pipe that
``KUBELAMBDA_AGENT_CONTROL_FD`` names (the agent's stdin, which only the launcher holds).
The agent then takes at most N invocations at once and keeps at most N runtimes
(``InvokeEndpoint.place``). A line it cannot use is logged and skipped; the end of the
pipe changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

__all__ = ["ControlProtocol"]

log = logging.getLogger(__name__)

# A control line is a few bytes; anything longer is not one.
_MAX_LINE = 1024


class ControlProtocol(asyncio.Protocol):
    """Reads control lines and calls ``place`` with each valid number of environments
    (1 to ``slots``)."""

    def __init__(self, place: Callable[[int], None], *, slots: int) -> None:
        self._place = place
        self._slots = slots
        self._pending = bytearray()

    def data_received(self, data: bytes) -> None:
        self._pending += data
        *lines, rest = self._pending.split(b"\n")
        if len(rest) > _MAX_LINE:
            log.warning("control line too long, skipped bytes=%d", len(rest))
            rest.clear()
        self._pending = rest
        for line in lines:
            self._apply(bytes(line))

    def _apply(self, line: bytes) -> None:
        try:
            environments = json.loads(line)["environments"]
        except (ValueError, KeyError, TypeError):
            environments = None
        if type(environments) is not int or not 1 <= environments <= self._slots:
            log.warning("control line ignored line=%r", line[:100])
            return
        log.info("environments placed environments=%d", environments)
        self._place(environments)
