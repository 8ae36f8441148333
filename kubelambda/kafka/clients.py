"""Consumers configured the one way this adapter uses them, for ``EventConsumer``,
``DelayForwarder`` and ``KafkaTopicLog``.

Offsets are only ever committed explicitly (after an outcome is durable), a new group
starts from the earliest record (an event published before the dispatcher first started
is still run), and fetches take a whole record of ``max_message_bytes``. Group members
use the sticky assignor: aiokafka 0.14 has no cooperative (incremental) rebalancing, so
every rebalance revokes all partitions, and sticky assignment at least hands the same
partitions back to the same members.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from kubelambda.kafka.settings import KafkaSettings

__all__ = ["RebalanceCallbacks", "consumer", "started"]

PartitionsCallback = Callable[[set[TopicPartition]], Awaitable[None]]


def consumer(settings: KafkaSettings, *, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        partition_assignment_strategy=(StickyPartitionAssignor,),
        max_partition_fetch_bytes=settings.max_message_bytes,
        **settings.security.client_options(),
    )


async def started(consumer: AIOKafkaConsumer) -> AIOKafkaConsumer:
    """``consumer`` started, or stopped again (no dangling connections) when it cannot be."""
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


# aiokafka is untyped (Any) and insists on an instance of its listener class.
class RebalanceCallbacks(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka's rebalance listener, calling back into its owner."""

    def __init__(self, *, revoked: PartitionsCallback, assigned: PartitionsCallback) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._assigned(assigned)
