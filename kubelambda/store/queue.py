"""``SqliteQueue``: the embedded adapter of the ``Queue`` and ``TopicLog`` ports
(``kubelambda.ports.queue``), in ``<home>/queue.db``.

Opened by the embedded launcher (``async with SqliteQueue.open(home) as queue``) and
handed to the gateway's async producer and the dispatcher; the CLI opens the same file
for ``kubelambda dlq list|redrive``. Its own file, so event traffic never waits on the
function store's writes; every statement runs on the file's one thread (``database``).

**Timers and leases are one column.** Each event row has ``due_at``: when it may next be
handed out. Publishing sets it to the event's ``not_before`` (0 for a new event, later
for a retry: that is the durable timer). Handing an event out *leases* it: the same
transaction sets ``due_at`` to the lease's expiry and ``lease_id`` to a fresh id, like
SQS's visibility timeout. So one query on the ``(due_at, id)`` index finds everything
deliverable — new events, retries whose time has come, leases that expired — in due
order, and nothing waits behind an event that is due later or held by a slow consumer.
``complete`` deletes the row *only if it still carries this delivery's lease*, and in
the same transaction inserts the follow-up events and topic messages: all of it, or
none. A crash leaves leases that expire, and the events are delivered again (at least
once); a completion whose lease was lost (it expired and the event was leased again)
writes nothing, since whoever holds it now will write the outcome of its own attempt.
While a delivery is held, its lease is renewed every third of ``lease_seconds``, so an
invocation may run longer than the lease and a crash is noticed within one lease.

**Wake-ups.** ``consume`` sleeps until the earliest ``due_at`` (a retry's time or a
lease's expiry), capped by ``poll_interval`` so another process's publishes (the CLI's
redrive) are seen within it; a publish or completion in this process wakes it at once.
At most ``max_in_flight`` deliveries are held at a time: past that, ``consume`` waits
for completions, so a flood stays on disk, not in memory. A consumer cancelled while a
lease transaction runs leaves that batch leased until the lease expires.

Durability: a publish returns after its transaction committed in WAL mode with
``synchronous=NORMAL`` — it survives the process being killed, as a single Kafka
broker's acknowledged write does; only an OS crash can lose the last commits. A failed
commit raises ``ServiceError``: the gateway must not answer 202.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from kubelambda import errors
from kubelambda.ports.queue import Delivery, QueuedEvent, TopicMessage, TopicRecord
from kubelambda.store import queue_schema, queue_sql
from kubelambda.store.database import Database

__all__ = ["SqliteQueue"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteQueue:
    """Events and topic messages of every namespace in ``<home>/queue.db``.

    ``clock`` returns epoch seconds, the unit of ``QueuedEvent.not_before``.
    """

    def __init__(
        self,
        database: Database,
        *,
        max_in_flight: int,
        lease_seconds: float,
        poll_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._database = database
        self._max_in_flight = max_in_flight
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self._clock = clock
        # Deliveries handed out (or about to be) and not completed: lease id -> event row.
        self._held: dict[str, int] = {}
        # Set (and replaced) whenever an event may have become deliverable or a slot freed.
        self._changed = asyncio.Event()
        self._closed = False

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        home: Path,
        *,
        max_in_flight: int = 256,
        lease_seconds: float = 30.0,
        poll_interval: float = 1.0,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        reclaim_leases: bool = False,
    ) -> AsyncIterator[SqliteQueue]:
        """Open (creating) ``<home>/queue.db``; on exit, leases still held are given
        back so the next process delivers those events at once.

        ``busy_timeout`` (seconds) is how long a write waits for another process's write
        to finish before it fails with ``ServiceError``. ``reclaim_leases`` first gives
        back every lease in the file: only for the one consumer a home has, once it
        knows the process that held them is gone (killed, so it gave nothing back), and
        their events are delivered at once rather than when the leases expire.
        """
        try:
            database = await Database.open(
                home / "queue.db", migrate=queue_schema.migrate, busy_timeout=busy_timeout
            )
        except sqlite3.Error as exc:
            raise errors.ServiceError(f"The event queue cannot be opened: {exc}") from exc
        if reclaim_leases:
            await _reclaim_leases(database)
        queue = cls(
            database,
            max_in_flight=max_in_flight,
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            clock=clock,
        )
        renewing = asyncio.create_task(queue._renew_leases(), name="kubelambda-queue-leases")
        try:
            yield queue
        finally:
            queue._closed = True
            queue._notify()
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            await queue._release(list(queue._held))
            await database.aclose()

    # -- Queue --------------------------------------------------------------------------

    async def publish(self, event: QueuedEvent) -> None:
        await self._transaction(functools.partial(queue_sql.insert_events, events=[event]))
        self._notify()

    async def consume(self) -> AsyncIterator[Delivery]:
        while not self._closed:
            changed = self._changed
            free = self._max_in_flight - len(self._held)
            if free <= 0:
                await changed.wait()
                continue
            now = self._clock()
            lease = functools.partial(
                queue_sql.lease, now=now, limit=free, expires_at=now + self._lease_seconds
            )
            try:
                leased, next_due = await self._database.transaction(lease)
            except sqlite3.Error:
                # Locked past the busy timeout, or a failing disk: the events stay on
                # disk, so try again rather than end the dispatcher.
                log.exception("Leasing due events from queue.db failed; retrying")
                await _sleep(changed, self._poll_interval)
                continue
            if not leased:
                wait = self._poll_interval if next_due is None else next_due - now
                await _sleep(changed, min(max(wait, 0.0), self._poll_interval))
                continue
            self._held.update((handle.lease_id, handle.event_id) for handle, _ in leased)
            handed = 0
            try:
                for handle, event in leased:
                    if self._closed:
                        return
                    # Counted before the yield: a consumer that stops iterating still
                    # holds the delivery it was given, and completes it.
                    handed += 1
                    yield Delivery(event, handle)
            finally:
                unhanded = [handle.lease_id for handle, _ in leased[handed:]]
                if unhanded and not self._closed:
                    await self._release(unhanded)

    async def complete(
        self,
        delivery: Delivery,
        *,
        events: Sequence[QueuedEvent] = (),
        messages: Sequence[tuple[str, TopicMessage]] = (),
    ) -> None:
        handle = delivery.handle
        if not isinstance(handle, queue_sql.Lease):
            raise TypeError(f"not a delivery of this queue: {delivery!r}")
        change = functools.partial(
            queue_sql.complete, handle=handle, events=events, messages=messages, now=self._clock()
        )
        try:
            completed = await self._transaction(change)
        finally:
            # Even when the commit failed: the lease then expires and the event comes back.
            self._held.pop(handle.lease_id, None)
            self._notify()
        if not completed:
            log.warning(
                "The lease on event %s (attempt %d) expired before it was completed; "
                "its outcome is dropped and the event runs again",
                delivery.event.request_id,
                delivery.event.attempt,
            )

    # -- TopicLog -----------------------------------------------------------------------

    async def pending(self, topic: str) -> list[TopicRecord]:
        try:
            return await self._database.read(functools.partial(queue_sql.pending, topic=topic))
        except sqlite3.Error as exc:
            raise errors.ServiceError(f"The topic {topic} cannot be read: {exc}") from exc

    async def acknowledge(self, records: Sequence[TopicRecord]) -> None:
        change = functools.partial(queue_sql.acknowledge, records=records, now=self._clock())
        await self._transaction(change)

    # -- internals ----------------------------------------------------------------------

    async def _transaction(self, change: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._database.transaction(change)
        except sqlite3.Error as exc:
            raise errors.ServiceError(f"The event queue could not commit: {exc}") from exc

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            if not self._held:
                continue
            renew = functools.partial(
                queue_sql.renew,
                held=list(self._held.items()),
                expires_at=self._clock() + self._lease_seconds,
            )
            try:
                await self._database.transaction(renew)
            except sqlite3.Error:
                log.exception("Renewing leases in queue.db failed; they may expire")

    async def _release(self, lease_ids: Sequence[str]) -> None:
        """Give leases back: their events are due again at once (best effort: a lease
        that is not given back expires anyway)."""
        held = [
            (lease_id, event_id)
            for lease_id in lease_ids
            if (event_id := self._held.pop(lease_id, None)) is not None
        ]
        if not held:
            return
        try:
            await self._database.transaction(functools.partial(queue_sql.unlease, held=held))
        except sqlite3.Error:
            log.exception("Giving back %d leases in queue.db failed; they expire", len(held))
        self._notify()


async def _reclaim_leases(database: Database) -> None:
    """Best effort, as giving leases back on exit: a lease left expires anyway."""
    try:
        reclaimed = await database.transaction(queue_sql.unlease_all)
    except sqlite3.Error:
        log.exception("Reclaiming the leases in queue.db failed; they expire")
        return
    if reclaimed:
        log.info("leases reclaimed count=%d", reclaimed)


async def _sleep(changed: asyncio.Event, seconds: float) -> None:
    # asyncio.timeout, not wait_for: in 3.11 wait_for drops a cancellation that arrives
    # just as the event is set, and the consumer would never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await changed.wait()
