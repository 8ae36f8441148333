"""``Inbox``: a consumer of a ``SqliteQueue`` that tests read with timeouts.

The consumer runs as its own task and is never cancelled mid-lease by a test's timeout:
a test that waits in vain for a delivery leaves the queue's state as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from kubelambda.ports.queue import Delivery
from kubelambda.store import SqliteQueue


class Inbox:
    def __init__(self) -> None:
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()

    async def next(self, within: float = 2.0) -> Delivery:
        async with asyncio.timeout(within):
            return await self.deliveries.get()

    async def nothing_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.deliveries.get()
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def consuming(queue: SqliteQueue) -> AsyncIterator[Inbox]:
    inbox = Inbox()

    async def run() -> None:
        async for delivery in queue.consume():
            await inbox.deliveries.put(delivery)

    task = asyncio.create_task(run())
    try:
        yield inbox
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
