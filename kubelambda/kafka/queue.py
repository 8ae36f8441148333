"""``KafkaQueue``: the Queue port on Kafka, for the gateway (publish) and the dispatcher
(consume, complete).

    publish ──▶ events topic ◀── delay forwarder ◀── delay topics (1 s … 300 s tiers)
                    │                                    ▲
                    ▼                                    │ retries due later
               consume ──▶ dispatcher ──▶ complete ──────┤
                                                         └─▶ events topic (due now),
                                                             dead-letter and destination
                                                             topics

Every write goes through one ``Publisher`` (idempotent producer, acks=all, bounded by
``produce_timeout``); an event goes to the events topic when it is due, else to a delay
topic (``kubelambda.kafka.tiers``, ``kubelambda.kafka.timers``). The consumer side — the
events consumer and the delay forwarder — starts on the first ``consume``, so a gateway
that only publishes never joins the dispatchers' groups. A ``consume`` that failed (the
broker went away while the consumers started, say) may be called again: it closes what
the failed one left and starts over. Wire format:
``kubelambda.kafka.wire``; commit rule: ``kubelambda.kafka.tracker``.

    async with KafkaQueue(settings) as queue:
        await queue.publish(event)                 # gateway
        async for delivery in queue.consume():     # dispatcher
            ...
            await queue.complete(delivery, events=[retry], messages=[(dlq, record)])
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from types import TracebackType

from aiokafka.errors import KafkaError

from kubelambda import errors
from kubelambda.kafka import tiers, wire
from kubelambda.kafka.events import EventConsumer
from kubelambda.kafka.producer import Publisher
from kubelambda.kafka.settings import KafkaSettings
from kubelambda.kafka.timers import DelayForwarder
from kubelambda.kafka.topics import TopicCreator
from kubelambda.ports.queue import Delivery, QueuedEvent, TopicMessage

__all__ = ["KafkaQueue"]

log = logging.getLogger(__name__)


class KafkaQueue:
    def __init__(self, settings: KafkaSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._clock = clock
        self._topics = TopicCreator(settings)
        self._publisher = Publisher(settings, self._topics)
        self._events: EventConsumer | None = None
        self._forwarder: DelayForwarder | None = None
        self._consuming = False

    async def __aenter__(self) -> KafkaQueue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def publish(self, event: QueuedEvent) -> None:
        """Return once ``event`` is acknowledged by all in-sync replicas; ``ServiceError`` or
        ``TooManyRequests`` otherwise (the caller must not answer 202)."""
        record = self._event_record(event)
        try:
            await self._publisher.send([record])
        except Exception as exc:
            log.warning(
                "event=publish_failed topic=%s request_id=%s function=%s error=%s",
                record.topic, event.request_id, event.function, exc,
            )  # fmt: skip
            raise
        log.debug(
            "event=published topic=%s request_id=%s function=%s",
            record.topic, event.request_id, event.function,
        )  # fmt: skip

    async def consume(self) -> AsyncGenerator[Delivery, None]:
        """Due events, until ``aclose``; one consumer at a time. Starts the events consumer
        and the delay forwarder (the dispatcher's side); ``ServiceError`` when Kafka cannot
        be reached. Deliveries of a consume that ended can still be completed until the
        next one starts."""
        if self._consuming:
            raise RuntimeError("this queue is already being consumed")
        self._consuming = True
        try:
            await self._close_consumers()
            events = await self._start_consumers()
            async with contextlib.aclosing(events.deliveries()) as deliveries:
                async for delivery in deliveries:
                    log.debug(
                        "event=delivered topic=%s request_id=%s attempt=%d",
                        self._settings.events_topic,
                        delivery.event.request_id,
                        delivery.event.attempt,
                    )
                    yield delivery
        finally:
            self._consuming = False

    async def complete(
        self,
        delivery: Delivery,
        *,
        events: Sequence[QueuedEvent] = (),
        messages: Sequence[tuple[str, TopicMessage]] = (),
    ) -> None:
        """Make the follow-ups durable, then let the delivery's offset be committed.

        When they cannot be made durable this raises (``ServiceError``) and the delivery
        stays outstanding: call again, or it is delivered again after a restart.
        """
        if self._events is None:
            raise RuntimeError("complete() of a delivery this queue did not hand out")
        records = [self._event_record(event) for event in events]
        records += [wire.encode_message(topic, message) for topic, message in messages]
        try:
            await self._publisher.send(records)
        except Exception as exc:
            log.warning(
                "event=complete_failed request_id=%s records=%d error=%s",
                delivery.event.request_id, len(records), exc,
            )  # fmt: skip
            raise
        self._events.done(delivery)
        await self._events.commit_progress()
        log.debug(
            "event=completed request_id=%s topics=%s",
            delivery.event.request_id, sorted({record.topic for record in records}),
        )  # fmt: skip

    async def aclose(self) -> None:
        """Stop the forwarder, commit completed deliveries, leave the groups, flush."""
        await self._close_consumers()
        await self._publisher.aclose()
        await self._topics.aclose()

    async def _start_consumers(self) -> EventConsumer:
        settings = self._settings
        self._events = EventConsumer(settings, clock=self._clock)
        self._forwarder = DelayForwarder(settings, self._publisher, clock=self._clock)
        try:
            await self._topics.ensure([settings.events_topic, *settings.delay_topics()])
            await self._events.start()
            await self._forwarder.start()
        except (KafkaError, TimeoutError) as exc:
            # aiokafka's admin client raises the builtin TimeoutError on a request timeout.
            detail = str(exc) or type(exc).__name__
            raise errors.ServiceError(f"cannot consume {settings.events_topic}: {detail}") from exc
        return self._events

    async def _close_consumers(self) -> None:
        forwarder, events = self._forwarder, self._events
        self._forwarder = self._events = None
        if forwarder is not None:
            await forwarder.aclose()
        if events is not None:
            await events.aclose()

    def _event_record(self, event: QueuedEvent) -> wire.OutgoingRecord:
        topic = tiers.topic_for(event.not_before, now=self._clock(), settings=self._settings)
        return wire.encode_event(event, topic=topic)
