"""The launcher's control pipe: how many execution environments are placed in the agent.

The embedded platform hosts several environments of one function in one agent
(``AgentConfig.environment_concurrency``: slots per environment) and changes their number
as it scales, without a new agent: it writes ``{"environments": N}`` lines on the pipe
that ``KUBELAMBDA_AGENT_CONTROL_FD`` names (the agent's stdin, which only the launcher
holds). The agent then takes at most as many invocations at once as the N environments
have slots, and keeps at most as many runtimes (``InvokeEndpoint.place``). A line it
cannot use is logged and skipped; the end of the pipe changes nothing.
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
    (1 to ``environments``, the most the agent may host)."""

    def __init__(self, place: Callable[[int], None], *, environments: int) -> None:
        self._place = place
        self._environments = environments
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
        if type(environments) is not int or not 1 <= environments <= self._environments:
            log.warning("control line ignored line=%r", line[:100])
            return
        log.info("environments placed environments=%d", environments)
        self._place(environments)
