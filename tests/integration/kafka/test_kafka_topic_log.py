"""The TopicLog port on a real Kafka broker (kubelambda.kafka.KafkaTopicLog): what
``kubelambda dlq list`` reads and ``kubelambda dlq redrive`` acknowledges."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from kubelambda.kafka import KafkaSettings, KafkaTopicLog
from kubelambda.ports.queue import TopicMessage

pytestmark = pytest.mark.infra

MESSAGES = [
    TopicMessage(value=f'{{"n": {n}}}'.encode(), headers={"RequestID": f"r-{n}"}, key="k")
    for n in range(3)
]


async def produce(settings: KafkaSettings, topic: str, messages: list[TopicMessage]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(
                topic,
                value=message.value,
                key=None if message.key is None else message.key.encode(),
                headers=[(name, value.encode()) for name, value in message.headers.items()],
            )
    finally:
        await producer.stop()


async def test_pending_lists_every_record_with_its_position_oldest_first(
    settings: KafkaSettings,
) -> None:
    topic = f"{settings.topic_prefix}-dlq"
    await produce(settings, topic, MESSAGES)

    records = await KafkaTopicLog(settings).pending(topic)

    assert [r.message for r in records] == MESSAGES
    assert [r.position for r in records] == ["0:0", "0:1", "0:2"]
    assert {r.topic for r in records} == {topic}
    assert records[0].timestamp <= records[-1].timestamp


async def test_acknowledged_records_are_no_longer_pending(settings: KafkaSettings) -> None:
    topic = f"{settings.topic_prefix}-dlq"
    await produce(settings, topic, MESSAGES)
    log = KafkaTopicLog(settings)

    await log.acknowledge((await log.pending(topic))[:2])
    remaining = await log.pending(topic)
    await log.acknowledge(remaining)

    assert [r.message for r in remaining] == MESSAGES[2:]
    assert await log.pending(topic) == []


async def test_a_record_acknowledged_after_an_unacknowledged_one_stays_pending(
    settings: KafkaSettings,
) -> None:
    topic = f"{settings.topic_prefix}-dlq"
    await produce(settings, topic, MESSAGES)
    log = KafkaTopicLog(settings)
    first, _, third = await log.pending(topic)

    await log.acknowledge([first, third])

    assert [r.position for r in await log.pending(topic)] == ["0:1", "0:2"]


async def test_records_written_after_pending_are_listed_next_time(
    settings: KafkaSettings,
) -> None:
    topic = f"{settings.topic_prefix}-dlq"
    await produce(settings, topic, MESSAGES[:1])
    log = KafkaTopicLog(settings)
    await log.acknowledge(await log.pending(topic))
    await produce(settings, topic, MESSAGES[1:])

    assert [r.message for r in await log.pending(topic)] == MESSAGES[1:]


async def test_a_topic_that_does_not_exist_has_nothing_pending_and_is_not_created(
    settings: KafkaSettings,
) -> None:
    topic = f"{settings.topic_prefix}-missing"

    assert await KafkaTopicLog(settings).pending(topic) == []
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    await admin.start()
    try:
        # A broker that auto-creates topics makes them a moment after the request.
        for _ in range(8):
            await asyncio.sleep(0.25)
            assert topic not in await admin.list_topics()
    finally:
        await admin.close()
