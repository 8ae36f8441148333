"""The Kafka queue across a broker outage, on a private broker this module starts (and
stops: the shared test broker is never touched).

While the broker is down, a publish fails with ``ServiceError`` within the produce timeout
and never returns normally; once it is back, the same queue publishes again, and every
event that was acknowledged, before or after, is delivered.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafka_helpers import PrivateBroker

from kubelambda import errors
from kubelambda.kafka import KafkaQueue, KafkaSettings
from kubelambda.ports.queue import QueuedEvent

pytestmark = pytest.mark.infra

PRODUCE_TIMEOUT = 2.0
RECOVERY_SECONDS = 60.0


@pytest.fixture(scope="module")
def private_broker(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_bootstrap: str,  # the shared broker's jars and Java are known to work
) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path_factory.mktemp("private-kafka"))
    try:
        yield broker
    finally:
        broker.remove()


async def publish_until_accepted(queue: KafkaQueue, event: QueuedEvent) -> None:
    """Publish, retrying errors the way a client retries a 5xx, within a bounded time."""
    deadline = time.monotonic() + RECOVERY_SECONDS
    while True:
        try:
            await queue.publish(event)
            return
        except errors.ServiceError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def timed_publish(
    queue: KafkaQueue, event: QueuedEvent
) -> tuple[BaseException | None, float]:
    """What a publish raised (``None``: it returned normally) and how long it took."""
    started = time.monotonic()
    try:
        await queue.publish(event)
    except Exception as exc:  # the caller asserts which error it was
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


async def test_publish_fails_during_an_outage_and_nothing_acknowledged_is_lost(
    private_broker: PrivateBroker, make_event: Callable[..., QueuedEvent]
) -> None:
    bootstrap = await asyncio.to_thread(private_broker.start)
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        group_id=f"outage-{uuid.uuid4().hex[:8]}",
        partitions=1,
        produce_timeout=PRODUCE_TIMEOUT,
    )
    before = [make_event() for _ in range(20)]
    during = [make_event() for _ in range(5)]
    after = [make_event() for _ in range(20)]
    failures, slowest = 0, 0.0
    async with KafkaQueue(settings) as queue:
        for event in before:
            await queue.publish(event)
        await asyncio.to_thread(private_broker.stop_keeping_data)
        # At once, as a gateway's concurrent callers publish: each fails on its own
        # within the produce timeout, and the outage is over in one timeout, not five.
        outcomes = await asyncio.gather(*(timed_publish(queue, event) for event in during))
        for error, seconds in outcomes:
            assert isinstance(error, errors.ServiceError), error
            failures += 1
            slowest = max(slowest, seconds)
        await asyncio.to_thread(private_broker.start)
        for event in after:
            await publish_until_accepted(queue, event)

        acknowledged = {event.request_id for event in before + after}
        seen: set[str] = set()
        deliveries = queue.consume()
        try:
            async with asyncio.timeout(RECOVERY_SECONDS):
                while not acknowledged <= seen:
                    delivery = await anext(deliveries)
                    seen.add(delivery.event.request_id)
                    await queue.complete(delivery)
        finally:
            await deliveries.aclose()

    assert failures == len(during)
    assert slowest < PRODUCE_TIMEOUT + 1.0
    assert acknowledged <= seen


async def test_consuming_that_failed_starts_over_on_the_same_queue_once_the_broker_is_back(
    private_broker: PrivateBroker, make_event: Callable[..., QueuedEvent]
) -> None:
    """The dispatcher's case: the broker goes away while its consumers start. The failed
    ``consume`` raises ``ServiceError``; the next one, on the same queue, delivers."""
    bootstrap = await asyncio.to_thread(private_broker.start)
    settings = KafkaSettings(
        bootstrap_servers=bootstrap,
        group_id=f"restart-{uuid.uuid4().hex[:8]}",
        topic_prefix=f"restart-{uuid.uuid4().hex[:8]}",
        partitions=1,
        produce_timeout=PRODUCE_TIMEOUT,
    )
    event = make_event()
    async with KafkaQueue(settings) as queue:
        await queue.publish(event)
        await asyncio.to_thread(private_broker.stop_keeping_data)
        with pytest.raises(errors.ServiceError):
            await anext(queue.consume())
        await asyncio.to_thread(private_broker.start)
        deliveries = queue.consume()
        try:
            async with asyncio.timeout(RECOVERY_SECONDS):
                delivery = await anext(deliveries)
            await queue.complete(delivery)
        finally:
            await deliveries.aclose()

    assert delivery.event.request_id == event.request_id
