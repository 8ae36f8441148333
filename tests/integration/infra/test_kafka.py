"""Smoke tests of the test Kafka broker, with the clients the project uses (aiokafka) and kcat.

They prove the broker started by kubelambda_testbed takes acks=all writes, serves consumer groups,
and lets topics be created and deleted, so failures in later Kafka-backed tests point at our code.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.infra

MESSAGES = 10_000
PARTITIONS = 3
DEADLINE_SECONDS = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication_factor=1)])
    finally:
        await admin.close()


async def test_ten_thousand_messages_arrive_in_order_per_partition(kafka_bootstrap: str) -> None:
    topic = unique("smoke-roundtrip")
    await create_topic(kafka_bootstrap, topic, PARTITIONS)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # Keys spread the messages over all partitions; the value is the send sequence number.
        pending = [
            await producer.send(topic, key=str(i % 31).encode(), value=str(i).encode())
            for i in range(MESSAGES)
        ]
        delivered = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    sent: dict[int, list[int]] = defaultdict(list)
    for sequence, metadata in enumerate(delivered):
        sent[metadata.partition].append(sequence)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique("smoke-group"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    received: dict[int, list[int]] = defaultdict(list)
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while sum(map(len, received.values())) < MESSAGES and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for partition, records in batches.items():
                received[partition.partition] += [int(r.value) for r in records]
    finally:
        await consumer.stop()

    assert len(sent) == PARTITIONS
    assert received == sent


async def test_topic_with_three_partitions_is_created_and_deleted(kafka_bootstrap: str) -> None:
    topic = unique("smoke-admin")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, replication_factor=1)])
        # The broker answers the creation before its metadata lists the partitions.
        deadline = time.monotonic() + DEADLINE_SECONDS
        partitions = 0
        while partitions != PARTITIONS and time.monotonic() < deadline:
            [description] = await admin.describe_topics([topic])
            partitions = len(description["partitions"])
            if partitions != PARTITIONS:
                await asyncio.sleep(0.2)
        await admin.delete_topics([topic])
        # Deletion completes asynchronously in the controller.
        deadline = time.monotonic() + DEADLINE_SECONDS
        remaining = await admin.list_topics()
        while topic in remaining and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            remaining = await admin.list_topics()
    finally:
        await admin.close()

    assert partitions == PARTITIONS
    assert topic not in remaining


async def test_kcat_produces_and_consumes(kafka_bootstrap: str) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (kubelambda_testbed.kafka.install installs Debian's kcat)"
    topic = unique("smoke-kcat")
    await create_topic(kafka_bootstrap, topic, 1)
    lines = [f"line {i}" for i in range(100)]

    produce = await asyncio.create_subprocess_exec(
        kcat, "-b", kafka_bootstrap, "-P", "-t", topic, stdin=asyncio.subprocess.PIPE
    )
    await produce.communicate("".join(f"{line}\n" for line in lines).encode())
    consume = await asyncio.create_subprocess_exec(
        kcat,
        *("-b", kafka_bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q"),
        stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await consume.communicate()

    assert (produce.returncode, consume.returncode) == (0, 0)
    assert output.decode().splitlines() == lines
