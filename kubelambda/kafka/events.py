"""The dispatcher's side of the events topic: deliveries out, completions in, commits.

``KafkaQueue.consume`` iterates ``EventConsumer.deliveries``; ``KafkaQueue.complete``
calls ``done`` and then ``commit_progress``. The consumer is a member of the dispatchers'
group (sticky assignment; see ``kubelambda.kafka.clients``) and hands out every event as
soon as it is fetched, without waiting for earlier ones to complete, so a slow function
delays nothing behind it. Offsets are committed by ``CommitTracker``'s rule, only up to
the lowest delivery not yet completed: a crash re-delivers everything after the
committed offset (at least once) and loses nothing.

An event whose due time is less than the smallest delay tier away (what is left after
the last hop through the delay topics) is held in memory until it is due, still counted
as outstanding, so it is never handed out early and never committed before it ran.

On a rebalance the revoked partitions' contiguous progress is committed and they are
forgotten: deliveries from them that complete later are dropped from the bookkeeping
(their follow-ups are durable all the same), and held events from them are not handed
out; the partitions' new owner re-reads them from the committed offset.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncGenerator, Callable, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from kubelambda.kafka import clients, wire
from kubelambda.kafka.settings import KafkaSettings
from kubelambda.kafka.tracker import CommitTracker, Handle, Partition
from kubelambda.ports.queue import Delivery

__all__ = ["EventConsumer"]

log = logging.getLogger(__name__)

# Upper bound of one wait for records, so that closing is noticed.
POLL_SECONDS = 0.5


class EventConsumer:
    def __init__(self, settings: KafkaSettings, *, clock: Callable[[], float]) -> None:
        self._settings = settings
        self._clock = clock
        self._tracker = CommitTracker()
        self._commit_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        # (due, sequence, delivery): events that arrived less than a tier early.
        self._held: list[tuple[float, int, Delivery]] = []
        self._sequence = itertools.count()
        self._closing = False

    async def start(self) -> None:
        consumer = clients.consumer(self._settings, group_id=self._settings.group_id)
        consumer.subscribe(
            [self._settings.events_topic],
            listener=clients.RebalanceCallbacks(revoked=self._revoked, assigned=self._assigned),
        )
        self._consumer = await clients.started(consumer)

    async def deliveries(self) -> AsyncGenerator[Delivery, None]:
        """Due events as they are fetched, until ``aclose``."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        while not self._closing:
            try:
                batches = await consumer.getmany(timeout_ms=int(self._wait_seconds() * 1000))
            except ConsumerStoppedError:
                return
            # Handed out in one synchronous step, so every handle carries the generation
            # its record was fetched in; a rebalance can only happen at the yields below.
            ready = self._due_held() + self._fetched(batches)
            for delivery in ready:
                if self._closing:
                    return
                if self._tracker.owns(_handle(delivery)):
                    yield delivery

    def done(self, delivery: Delivery) -> None:
        """The delivery's outcome is durable: its offset may be committed."""
        handle = _handle(delivery)
        if not self._tracker.done(handle):
            log.info(
                "event=completion_dropped topic=%s partition=%d offset=%d request_id=%s "
                "reason=partition_revoked",
                *handle.partition, handle.offset, delivery.event.request_id,
            )  # fmt: skip

    async def commit_progress(self) -> None:
        """Commit every partition's completed prefix. Completions that arrive while a commit
        is on its way are committed together by the next caller: one request for many."""
        async with self._commit_lock:
            await self._commit(self._tracker.committable())

    async def aclose(self) -> None:
        """Commit what is complete, then leave the group."""
        self._closing = True
        if self._consumer is not None:
            await self.commit_progress()
            await self._consumer.stop()
            self._consumer = None

    def _fetched(self, batches: Mapping[TopicPartition, list[ConsumerRecord]]) -> list[Delivery]:
        """Deliveries of the fetched records that are due; the others are held."""
        ready = []
        now = self._clock()
        for partition, records in batches.items():
            for record in records:
                delivery = self._delivery(partition, record)
                if delivery is None:
                    continue
                if delivery.event.not_before > now:
                    entry = (delivery.event.not_before, next(self._sequence), delivery)
                    heapq.heappush(self._held, entry)
                else:
                    ready.append(delivery)
        return ready

    def _delivery(self, partition: TopicPartition, record: ConsumerRecord) -> Delivery | None:
        handle = self._tracker.hand_out((partition.topic, partition.partition), record.offset)
        if handle is None:
            return None
        try:
            event = wire.decode_event(record.value, record.headers)
        except wire.WireError as exc:
            # Not ours to run, and blocking the partition on it would stop every event
            # behind it: logged and passed over.
            log.error(
                "event=event_unreadable topic=%s partition=%d offset=%d error=%s",
                partition.topic, partition.partition, record.offset, exc,
            )  # fmt: skip
            self._tracker.done(handle)
            return None
        return Delivery(event=event, handle=handle)

    def _due_held(self) -> list[Delivery]:
        now = self._clock()
        due = []
        while self._held and self._held[0][0] <= now:
            due.append(heapq.heappop(self._held)[2])
        return due

    def _wait_seconds(self) -> float:
        if not self._held:
            return POLL_SECONDS
        return max(0.0, min(POLL_SECONDS, self._held[0][0] - self._clock()))

    async def _commit(self, offsets: Mapping[Partition, int]) -> None:
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(
                {
                    TopicPartition(topic, partition): offset
                    for (topic, partition), offset in offsets.items()
                }
            )
        except KafkaError as exc:
            # Not fatal: the uncommitted deliveries are delivered again (at least once).
            log.warning("event=commit_failed offsets=%s error=%r", dict(offsets), exc)
            return
        self._tracker.committed(offsets)

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        async with self._commit_lock:
            await self._commit(self._tracker.revoke((p.topic, p.partition) for p in partitions))
        log.info("event=partitions_revoked partitions=%s", sorted(partitions))

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        self._tracker.assign((p.topic, p.partition) for p in partitions)
        log.info("event=partitions_assigned partitions=%s", sorted(partitions))


def _handle(delivery: Delivery) -> Handle:
    handle = delivery.handle
    if not isinstance(handle, Handle):
        raise TypeError(f"not a delivery of this queue: {delivery!r}")
    return handle
