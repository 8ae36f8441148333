"""Durable timers: delay topics, one per tier, and the forwarder that empties them.

An event that is not due yet (a retry, a postponed throttle) is written to the delay
topic of the largest tier that does not overshoot its due time (``tiers.topic_for``).
Every record of a tier waits the same time, and the broker stamps each record as it
appends it (``LogAppendTime``), so within a partition the due times (stamp + tier) rise
with the offset: the head of a partition is always the next record due there. The
forwarder therefore only ever looks at heads:

    head due?  yes → send it on (to a smaller tier if it is still not due, else to the
                     events topic), wait for the acknowledgement, commit past it
               no  → pause the partition until the head's due time

Nothing waits behind a record that is due later (no head-of-line blocking): a 300 s retry
sits in the 300 s tier while a 1 s retry published after it leaves the 1 s tier a second
later, and events due now never enter a delay topic at all. The timers survive a crash
because they *are* the records: a forwarder that dies before committing sends the record
on again (at least once), and another member of the forwarder group takes its partitions.
An event is never forwarded early; it is late by at most a few produce round trips per
hop, plus the broker/host clock skew.

``KafkaQueue`` starts one ``DelayForwarder`` next to its events consumer (the dispatcher
side); the forwarders of all dispatcher replicas form one consumer group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from kubelambda import errors
from kubelambda.kafka import clients, tiers, wire
from kubelambda.kafka.producer import Publisher
from kubelambda.kafka.settings import KafkaSettings

__all__ = ["DelayForwarder"]

log = logging.getLogger(__name__)

# Upper bound of one wait for records, so new assignments and closing are noticed.
POLL_SECONDS = 1.0
RETRY_SECONDS = 1.0


class DelayForwarder:
    def __init__(
        self, settings: KafkaSettings, publisher: Publisher, *, clock: Callable[[], float]
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self._clock = clock
        self._tiers = settings.delay_topics()
        self._held: dict[TopicPartition, deque[ConsumerRecord]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = clients.consumer(self._settings, group_id=self._settings.timer_group_id)
        consumer.subscribe(
            list(self._tiers),
            listener=clients.RebalanceCallbacks(revoked=self._revoked, assigned=self._assigned),
        )
        self._consumer = await clients.started(consumer)
        self._task = asyncio.create_task(self._run(consumer), name="kafka-delay-forwarder")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                await self._step(consumer)
            except Exception:
                # Whatever went wrong, a forwarder that stops stops every retry until the
                # process restarts: it logs and carries on (its records stay uncommitted).
                log.exception("event=delay_forwarder_error")
                await asyncio.sleep(RETRY_SECONDS)

    async def _step(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await self._forward_due(consumer)
        except errors.LambdaError as exc:
            log.warning("event=delay_forward_failed error=%s", exc)
            await asyncio.sleep(RETRY_SECONDS)
        self._pause_waiting(consumer)
        batches = await consumer.getmany(timeout_ms=int(self._wait_seconds() * 1000))
        for partition, records in batches.items():
            if (held := self._held.get(partition)) is not None:
                held.extend(records)

    async def _forward_due(self, consumer: AIOKafkaConsumer) -> None:
        """Send on every partition's due prefix, then commit past it."""
        now = self._clock()
        due = {
            partition: (held, prefix)
            for partition, held in self._held.items()
            if (prefix := self._due_prefix(partition, held, now))
        }
        if not due:
            return
        outgoing = [self._next_hop(record, now) for _, prefix in due.values() for record in prefix]
        await self._publisher.send([record for record in outgoing if record is not None])
        offsets = {}
        for partition, (held, prefix) in due.items():
            # A rebalance while sending replaced or dropped the partition's records.
            if self._held.get(partition) is held:
                for _ in prefix:
                    held.popleft()
                offsets[partition] = prefix[-1].offset + 1
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # Forwarded but not committed: whoever reads the partition next forwards again.
            log.warning("event=delay_commit_failed offsets=%s error=%r", offsets, exc)

    def _due_prefix(
        self, partition: TopicPartition, records: deque[ConsumerRecord], now: float
    ) -> list[ConsumerRecord]:
        tier = self._tiers[partition.topic]
        due = []
        for record in records:
            if record.timestamp / 1000 + tier > now:
                break
            due.append(record)
        return due

    def _next_hop(self, record: ConsumerRecord, now: float) -> wire.OutgoingRecord | None:
        try:
            event = wire.decode_event(record.value, record.headers)
        except wire.WireError as exc:
            log.error(
                "event=delay_record_unreadable topic=%s partition=%d offset=%d error=%s",
                record.topic, record.partition, record.offset, exc,
            )  # fmt: skip
            return None
        topic = tiers.topic_for(event.not_before, now=now, settings=self._settings)
        log.debug(
            "event=delay_forwarded topic=%s from=%s request_id=%s",
            topic, record.topic, event.request_id,
        )  # fmt: skip
        return wire.OutgoingRecord(
            topic=topic, value=record.value, key=record.key, headers=tuple(record.headers)
        )

    def _pause_waiting(self, consumer: AIOKafkaConsumer) -> None:
        """Fetch only for partitions with nothing held: a held head is not due yet."""
        assigned = consumer.assignment()
        for partition, held in self._held.items():
            if partition not in assigned:
                continue
            if held:
                consumer.pause(partition)
            else:
                consumer.resume(partition)

    def _wait_seconds(self) -> float:
        now = self._clock()
        heads: list[float] = [
            records[0].timestamp / 1000 + self._tiers[partition.topic] - now
            for partition, records in self._held.items()
            if records
        ]
        return max(0.0, min([POLL_SECONDS, *heads]))

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self._held.pop(partition, None)

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        for partition in partitions:
            self._held.setdefault(partition, deque())
