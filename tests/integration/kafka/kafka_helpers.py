"""Helpers for the Kafka tests: unique names, bounded reads, committed offsets, and a
private broker that a test may stop (the shared one is never touched)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

import kubelambda_testbed
import kubelambda_testbed.kafka
from kubelambda.kafka import KafkaSettings
from kubelambda.ports.queue import Delivery

WAIT_SECONDS = 20.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def take(deliveries: AsyncIterator[Delivery], count: int) -> list[Delivery]:
    """The next ``count`` deliveries, within a bounded wait."""
    async with asyncio.timeout(WAIT_SECONDS):
        return [await anext(deliveries) for _ in range(count)]


async def nothing_more(deliveries: AsyncIterator[Delivery], seconds: float = 2.0) -> bool:
    """Whether no delivery arrives within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            await anext(deliveries)
    except TimeoutError:
        return True
    return False


async def committed(settings: KafkaSettings, group_id: str, topic: str) -> dict[int, int]:
    """The group's committed offsets on ``topic``, by partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def delete_topics(bootstrap: str, *, prefix: str) -> None:
    """Delete the topics whose names start with ``prefix``: the shared broker stays tidy."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if doomed := [t for t in await admin.list_topics() if t.startswith(prefix)]:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


class PrivateBroker:
    """A second single-node broker, from the testbed's own code, in a temporary state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.cache_dir = kubelambda_testbed.cache_dir(os.environ)

    def start(self) -> str:
        environment = kubelambda_testbed.kafka.up(self.state_dir, self.cache_dir)
        return environment["KAFKA_BOOTSTRAP"]

    def stop_keeping_data(self) -> None:
        kubelambda_testbed.kafka.stop(self.state_dir)

    def remove(self) -> None:
        kubelambda_testbed.kafka.down(self.state_dir)
