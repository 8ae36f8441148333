"""Spare agents: runtime-agent processes started ahead of need, for faster cold starts.

``controller.backends.local.LocalProcessBackend`` takes a spare for every instance it
starts and asks for a top-up once no instance is starting. A spare has paid for the
interpreter's start and the agent's imports already (see ``agent_shim``), which is most
of what an agent does before it can start its runtimes; one spare serves any function.
Spares live within the host's budget, and give way to instances that need it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from controller.backends.local_process import Spare

__all__ = ["SparePool"]

logger = logging.getLogger(__name__)


class SparePool:
    def __init__(
        self, size: int, start: Callable[[], Awaitable[Spare]], room: Callable[[], int]
    ) -> None:
        """``room``: how many more spares the host's budget has room for now, asked
        before each start."""
        self._size = size
        self._start = start
        self._room = room
        self._spares: list[Spare] = []
        self._refill: asyncio.Task[None] | None = None
        self._spawning = False
        self._closed = False

    @property
    def count(self) -> int:
        """Spare agents alive or being started: processes of the host's live budget."""
        return len(self._spares) + int(self._spawning)

    async def take(self) -> Spare:
        """A live spare if there is one, else an agent started now (a fully cold start)."""
        if not self._spares and self._refill is not None and self._spawning:
            # One is being started right now: that beats starting another beside it.
            await asyncio.shield(self._refill)
        while self._spares:
            spare = self._spares.pop(0)
            if spare.alive:
                return spare
            await spare.discard()
        return await self._start()

    def top_up(self, *, after: float = 0.0) -> None:
        """Start spares in the background, ``after`` seconds from now, until there are
        ``size`` of them or the budget has no room for another."""
        if self._closed or self._refill is not None or len(self._spares) >= self._size:
            return
        self._refill = asyncio.create_task(self._fill(after), name="spare-agents")

    async def shrink(self, count: int) -> None:
        """Stop ``count`` spares (fewer if fewer wait), and call off a top-up that has
        not begun a start: instances need their share of the host's budget."""
        if self._refill is not None and not self._spawning:
            self._refill.cancel()
            self._refill = None
        count = min(count, len(self._spares))
        if count <= 0:
            return
        retired = self._spares[-count:]
        del self._spares[-count:]
        await asyncio.gather(*(spare.discard() for spare in retired))

    async def aclose(self) -> None:
        self._closed = True
        if self._refill is not None:
            if not self._spawning:
                # Still waiting to start one: nothing to lose. (A start in progress is
                # let finish, or its process would be left behind untracked.)
                self._refill.cancel()
            await asyncio.wait({self._refill})
        spares, self._spares = self._spares, []
        await asyncio.gather(*(spare.discard() for spare in spares))

    async def _fill(self, after: float) -> None:
        try:
            await asyncio.sleep(after)
            while not self._closed and len(self._spares) < self._size and self._room() > 0:
                self._spawning = True
                try:
                    spare = await self._start()
                finally:
                    self._spawning = False
                if self._closed:
                    await spare.discard()
                    return
                self._spares.append(spare)
        except OSError as exc:
            logger.error("cannot start a spare agent error=%s", exc)
        finally:
            # A shrink may have called this one off and a newer top-up begun since.
            if self._refill is asyncio.current_task():
                self._refill = None
