"""``KafkaTopicLog``: the TopicLog port on Kafka, for ``kubelambda dlq list|redrive``.

A dedicated consumer group (``topic_log_group_id``, ``kubelambda-dlq-reader`` by
default) remembers per partition how far records were handled. ``pending`` reads a topic
from that group's committed offset (the beginning, when there is none) up to the end
offsets taken when it starts, within ``read_timeout``; ``acknowledge`` moves the group's
offsets past the given records. Partitions are assigned by hand, not by the group: the
reader is a short-lived CLI, and a group rebalance would only slow it down.

An offset can only say "everything before me is handled", so ``acknowledge`` commits, per
partition, the longest run of pending records from the committed offset that are all
acknowledged; an acknowledged record after an unacknowledged one stays pending (logged).
Positions are ``<partition>:<offset>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from kubelambda import errors
from kubelambda.kafka import clients, wire
from kubelambda.kafka.settings import KafkaSettings
from kubelambda.ports.queue import TopicRecord

__all__ = ["KafkaTopicLog"]

log = logging.getLogger(__name__)


class KafkaTopicLog:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings

    async def pending(self, topic: str) -> list[TopicRecord]:
        """The topic's records after the reader group's offsets, oldest first."""
        async with self._reader(topic) as consumer:
            return await self._read(consumer, topic)

    async def acknowledge(self, records: Sequence[TopicRecord]) -> None:
        """Commit the reader group past ``records`` (see the module docstring for gaps)."""
        by_topic: dict[str, set[str]] = defaultdict(set)
        for record in records:
            by_topic[record.topic].add(record.position)
        for topic, positions in by_topic.items():
            async with self._reader(topic) as consumer:
                offsets = _acknowledged_prefix(await self._read(consumer, topic), positions)
                if offsets:
                    await consumer.commit(offsets)
                log.info(
                    "event=topic_acknowledged topic=%s records=%d offsets=%s",
                    topic, len(positions), {tp.partition: o for tp, o in offsets.items()},
                )  # fmt: skip

    @contextlib.asynccontextmanager
    async def _reader(self, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
        """A consumer of the reader group, assigned every partition of ``topic`` (none when
        the topic does not exist). Kafka errors and timeouts, here or in the caller's block,
        become ``ServiceError``."""
        settings = self._settings
        admin = AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=f"{settings.client_id}-admin",
            **settings.security.client_options(),
        )
        consumer = clients.consumer(settings, group_id=settings.topic_log_group_id)
        try:
            async with asyncio.timeout(settings.read_timeout):
                await admin.start()
                partitions = []
                # Asking for one topic's metadata creates it where the broker auto-creates
                # topics; listing them all does not: listing a typo must not make a topic.
                if topic in await admin.list_topics():
                    [description] = await admin.describe_topics([topic])
                    partitions = [p["partition"] for p in description["partitions"]]
                await consumer.start()
                consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            yield consumer
        except (KafkaError, TimeoutError) as exc:
            raise errors.ServiceError(f"could not read topic {topic}: {exc!r}") from exc
        finally:
            await consumer.stop()
            await admin.close()

    async def _read(self, consumer: AIOKafkaConsumer, topic: str) -> list[TopicRecord]:
        partitions = consumer.assignment()
        if not partitions:
            return []
        async with asyncio.timeout(self._settings.read_timeout):
            ends = await consumer.end_offsets(list(partitions))
            starts = await consumer.beginning_offsets(list(partitions))
            remaining = {}
            for partition in partitions:
                committed = await consumer.committed(partition)
                start = (
                    starts[partition] if committed is None else max(committed, starts[partition])
                )
                if start < ends[partition]:
                    consumer.seek(partition, start)
                    remaining[partition] = ends[partition]
            records: list[TopicRecord] = []
            while remaining:
                batches = await consumer.getmany(*remaining, timeout_ms=500)
                for partition, fetched in batches.items():
                    end = remaining[partition]
                    records += [_topic_record(r) for r in fetched if r.offset < end]
                    if fetched and fetched[-1].offset + 1 >= end:
                        del remaining[partition]
        return sorted(records, key=lambda r: (r.timestamp, r.position))


def _topic_record(record: ConsumerRecord) -> TopicRecord:
    return TopicRecord(
        topic=record.topic,
        position=f"{record.partition}:{record.offset}",
        message=wire.decode_message(record.key, record.value, record.headers),
        timestamp=record.timestamp / 1000,
    )


def _acknowledged_prefix(
    pending: list[TopicRecord], positions: set[str]
) -> dict[TopicPartition, int]:
    """Per partition, the offset past the acknowledged run at the start of ``pending``."""
    offsets: dict[TopicPartition, int] = {}
    acknowledged: set[str] = set()
    blocked: set[int] = set()
    for record in sorted(pending, key=lambda r: _position(r.position)):
        partition, offset = _position(record.position)
        if partition in blocked:
            continue
        if record.position not in positions:
            blocked.add(partition)
            continue
        offsets[TopicPartition(record.topic, partition)] = offset + 1
        acknowledged.add(record.position)
    if stranded := {r.position for r in pending} & positions - acknowledged:
        log.warning("event=acknowledge_gap positions=%s", sorted(stranded))
    return offsets


def _position(position: str) -> tuple[int, int]:
    partition, offset = position.split(":")
    return int(partition), int(offset)
