"""The Queue port on a real Kafka broker (kubelambda.kafka.KafkaQueue).

Each test has its own topics and groups (see conftest). The events topic has one partition,
so commit offsets are the number of events committed past.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import pytest
from aiokafka import AIOKafkaConsumer
from kafka_helpers import WAIT_SECONDS, committed, nothing_more, take

from kubelambda import errors
from kubelambda.kafka import KafkaQueue, KafkaSettings
from kubelambda.ports.queue import Delivery, QueuedEvent, TopicMessage

pytestmark = pytest.mark.infra

MakeEvent = Callable[..., QueuedEvent]


@contextlib.asynccontextmanager
async def consuming(
    settings: KafkaSettings,
) -> AsyncIterator[tuple[KafkaQueue, AsyncGenerator[Delivery, None]]]:
    async with KafkaQueue(settings) as queue:
        deliveries = queue.consume()
        try:
            yield queue, deliveries
        finally:
            await deliveries.aclose()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_publish_then_consume_keeps_every_field(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    event = QueuedEvent(
        request_id="0b8c6a0e-7f35-4f1e-9d7b-3c1f2a4e5d60",
        function=make_event().function,
        qualifier="live",
        payload=b"\x00binary\xff" * 1000,
        accepted_at=1_764_600_000.125,
        attempt=3,
        not_before=12.5,
        postponements=2,
    )
    async with consuming(settings) as (queue, deliveries):
        await queue.publish(event)
        [delivery] = await take(deliveries, 1)

    assert delivery.event == event


async def test_a_one_mebibyte_payload_is_accepted(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    event = make_event(payload=b"x" * 1_048_576)
    async with consuming(settings) as (queue, deliveries):
        await queue.publish(event)
        [delivery] = await take(deliveries, 1)

    assert delivery.event.payload == event.payload


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1"], ids=["refused", "unroutable"])
async def test_publish_to_an_unreachable_cluster_fails_within_the_timeout(
    host: str, make_event: MakeEvent
) -> None:
    settings = KafkaSettings(bootstrap_servers=f"{host}:{unused_port()}", produce_timeout=2.0)
    started = time.monotonic()
    async with KafkaQueue(settings) as queue:
        with pytest.raises(errors.ServiceError):
            await queue.publish(make_event())

    assert time.monotonic() - started < settings.produce_timeout + 1.5


async def test_consuming_from_an_unreachable_cluster_fails_with_service_error() -> None:
    settings = KafkaSettings(bootstrap_servers=f"127.0.0.1:{unused_port()}", produce_timeout=2.0)
    async with KafkaQueue(settings) as queue:
        with pytest.raises(errors.ServiceError):
            async with asyncio.timeout(WAIT_SECONDS):
                await anext(queue.consume())


async def test_a_retry_waits_its_delay_while_a_later_event_due_now_goes_first(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    async with consuming(settings) as (queue, deliveries):
        # Warm up: both consumer groups joined, every delay topic created.
        await queue.publish(make_event(not_before=time.time() + 1.5))
        await queue.publish(make_event())
        await take(deliveries, 2)

        delay = 3.5  # hops through the 2 s and 1 s tiers, then half a second held
        retry = make_event(not_before=time.time() + delay)
        await queue.publish(retry)
        immediate = make_event()
        await queue.publish(immediate)
        first, second = await take(deliveries, 2)
        arrived = time.time()

    assert first.event.request_id == immediate.request_id
    assert second.event.request_id == retry.request_id
    assert retry.not_before <= arrived <= retry.not_before + 1.0


async def test_a_shorter_retry_published_later_is_not_held_behind_a_longer_one(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    async with consuming(settings) as (queue, deliveries):
        longer = make_event(not_before=time.time() + 5)
        await queue.publish(longer)
        shorter = make_event(not_before=time.time() + 2)
        await queue.publish(shorter)
        [first] = await take(deliveries, 1)
        first_arrived = time.time()
        [second] = await take(deliveries, 1)
        second_arrived = time.time()

    assert (first.event, second.event) == (shorter, longer)
    assert shorter.not_before <= first_arrived <= shorter.not_before + 1.0
    assert longer.not_before <= second_arrived <= longer.not_before + 1.0


async def test_complete_writes_messages_and_follow_up_events_then_commits(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    dead_letters, destination = (
        f"{settings.topic_prefix}-dlq",
        f"{settings.topic_prefix}-destination",
    )
    dead_letter = TopicMessage(
        value=b'{"n": 1}',
        headers={"RequestID": "r-1", "ErrorCode": "Unhandled", "ErrorMessage": "boom"},
        key="default/hello",
    )
    record = TopicMessage(value=b'{"requestContext": {}}', headers={"Content-Type": "json"})
    event = make_event()
    async with consuming(settings) as (queue, deliveries):
        await queue.publish(event)
        [delivery] = await take(deliveries, 1)
        retry = event.next_attempt(not_before=0.0)
        await queue.complete(
            delivery,
            events=[retry],
            messages=[(dead_letters, dead_letter), (destination, record)],
        )
        offsets = await committed(settings, settings.group_id, settings.events_topic)
        [again] = await take(deliveries, 1)

    assert offsets == {0: 1}
    assert again.event == retry
    assert await read_all(settings, dead_letters) == [(b"default/hello", dead_letter)]
    assert await read_all(settings, destination) == [(None, record)]


async def test_an_uncompleted_delivery_goes_to_the_next_consumer_and_completed_ones_do_not(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    events = [make_event() for _ in range(3)]
    async with consuming(settings) as (queue, deliveries):
        for event in events:
            await queue.publish(event)
        first, second, third = await take(deliveries, 3)
        await queue.complete(first)
        await queue.complete(second)

    async with consuming(settings) as (_, deliveries):
        [again] = await take(deliveries, 1)
        quiet = await nothing_more(deliveries)

    assert [d.event.request_id for d in (first, second, third)] == [e.request_id for e in events]
    assert again.event == third.event
    assert quiet


async def test_out_of_order_completions_commit_only_the_contiguous_prefix(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    async def offsets() -> dict[int, int]:
        return await committed(settings, settings.group_id, settings.events_topic)

    async with consuming(settings) as (queue, deliveries):
        for _ in range(4):
            await queue.publish(make_event())
        one, two, three, four = await take(deliveries, 4)
        await queue.complete(two)
        await queue.complete(four)
        after_two_and_four = await offsets()
        await queue.complete(one)
        after_one = await offsets()

    async with consuming(settings) as (queue, deliveries):
        redelivered = await take(deliveries, 2)
        for delivery in redelivered:
            await queue.complete(delivery)
        quiet = await nothing_more(deliveries)
        after_all = await offsets()

    assert after_two_and_four == {}
    assert after_one == {0: 2}
    # Three was outstanding; four was completed but lies after it: both come again.
    assert [d.event for d in redelivered] == [three.event, four.event]
    assert quiet
    assert after_all == {0: 4}


async def read_all(settings: KafkaSettings, topic: str) -> list[tuple[bytes | None, TopicMessage]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=settings.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=int(WAIT_SECONDS * 1000))
    finally:
        await consumer.stop()
    return [
        (
            record.key,
            TopicMessage(
                value=record.value,
                headers={name: value.decode() for name, value in record.headers},
                key=None if record.key is None else record.key.decode(),
            ),
        )
        for records in batches.values()
        for record in records
    ]


async def test_a_rebalance_delivers_outstanding_events_again_and_drops_stale_completions(
    settings: KafkaSettings, make_event: MakeEvent
) -> None:
    settings = dataclasses.replace(settings, partitions=2)
    events = [make_event(function=f"f{n}") for n in range(10)]
    redelivered: dict[str, tuple[KafkaQueue, Delivery]] = {}

    async def drain(queue: KafkaQueue, deliveries: AsyncIterator[Delivery]) -> None:
        async for delivery in deliveries:
            redelivered[delivery.event.request_id] = (queue, delivery)
            if len(redelivered) == len(events):
                return

    async with consuming(settings) as (first, first_deliveries):
        for event in events:
            await first.publish(event)
        stale = await take(first_deliveries, len(events))
        async with consuming(settings) as (second, second_deliveries):
            # The second member's arrival revokes every partition (eager rebalancing).
            async with asyncio.timeout(WAIT_SECONDS):
                async with asyncio.TaskGroup() as group:
                    tasks = [
                        group.create_task(drain(first, first_deliveries)),
                        group.create_task(drain(second, second_deliveries)),
                    ]
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for task in tasks:
                        task.cancel()
            for delivery in stale:
                await first.complete(delivery)
            after_stale = await committed(settings, settings.group_id, settings.events_topic)
            for queue, delivery in redelivered.values():
                await queue.complete(delivery)
            after_all = await committed(settings, settings.group_id, settings.events_topic)

    assert set(redelivered) == {event.request_id for event in events}
    assert {queue for queue, _ in redelivered.values()} == {first, second}
    assert sum(after_stale.values()) == 0
    assert sum(after_all.values()) == len(events)
