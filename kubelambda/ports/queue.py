"""Asynchronous (Event) invocations between the gateway that accepts them and the
dispatcher that runs them, and the topics their outcomes are written to.

The gateway's ``publish`` returns only once the event is durable (Kafka acknowledged it
with acks=all and an idempotent producer, or the SQLite transaction committed): only
then may it answer 202. The dispatcher ``consume``s events that are due, invokes, and
``complete``s each delivery with whatever its outcome adds — a retry (the same event,
due later), an event for a destination function, records for dead-letter and
destination topics — which the adapter makes durable *before* it commits the delivery.
A crash in between delivers the event again rather than losing it: at least once.

Events that are not due yet (retries) wait in the adapter's durable timers (Kafka: one
delay topic per delay; SQLite: an indexed due time), never in front of other events.
``TopicLog`` reads a topic back (``kubelambda dlq list``) and acknowledges what was
handled (``kubelambda dlq redrive``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kubelambda.models import FunctionKey

__all__ = ["Delivery", "Queue", "QueuedEvent", "TopicLog", "TopicMessage", "TopicRecord"]


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One accepted Event invocation, as the queue carries it.

    ``request_id`` is the 202's ``x-amzn-RequestId`` and stays the same on every attempt
    (the handler's ``context.aws_request_id``); ``accepted_at`` (epoch seconds) is what
    the maximum event age counts from; ``attempt`` is the number of the attempt this
    delivery is for (1 first); the event is not run before ``not_before`` (epoch
    seconds), which retries push back; ``postponements`` counts how often the current
    attempt was put off because nothing could run it (throttles, system errors), which
    its backoff grows with. ``qualifier`` is what the caller named (an alias is
    resolved when the attempt runs, as Lambda does).
    """

    request_id: str
    function: FunctionKey
    qualifier: str | None
    payload: bytes
    accepted_at: float
    attempt: int = 1
    not_before: float = 0.0
    postponements: int = 0

    def next_attempt(self, *, not_before: float) -> QueuedEvent:
        return dataclasses.replace(
            self, attempt=self.attempt + 1, not_before=not_before, postponements=0
        )

    def postponed(self, *, not_before: float) -> QueuedEvent:
        """The same attempt again later (a throttle or a system error: nothing ran)."""
        return dataclasses.replace(
            self, not_before=not_before, postponements=self.postponements + 1
        )


@dataclass(frozen=True, slots=True)
class TopicMessage:
    """A record for a topic: a dead letter (the payload, with Lambda's attributes as
    headers) or a destination record (JSON). ``key`` orders records per key."""

    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None


@dataclass(frozen=True, slots=True)
class TopicRecord:
    """A message read back from a topic, with where it stands in it."""

    topic: str
    position: str
    message: TopicMessage
    timestamp: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event handed to a consumer, with the adapter's handle to complete it."""

    event: QueuedEvent
    handle: object


class Queue(Protocol):
    async def publish(self, event: QueuedEvent) -> None:
        """Return once ``event`` is durable; raise ``kubelambda.errors.ServerError`` (or
        ``TooManyRequests``) when it could not be made so: the caller must not say 202."""
        ...

    def consume(self) -> AsyncIterator[Delivery]:
        """Due events for this consumer, until the queue is closed. Deliveries are
        handed out without waiting for earlier ones to complete."""
        ...

    async def complete(
        self,
        delivery: Delivery,
        *,
        events: Sequence[QueuedEvent] = (),
        messages: Sequence[tuple[str, TopicMessage]] = (),
    ) -> None:
        """Make ``events`` (retries, destination invocations) and ``(topic, message)``
        pairs durable, then never deliver ``delivery`` again."""
        ...


class TopicLog(Protocol):
    async def pending(self, topic: str) -> list[TopicRecord]:
        """The records of ``topic`` not yet acknowledged, oldest first."""
        ...

    async def acknowledge(self, records: Sequence[TopicRecord]) -> None:
        """Mark ``records`` handled: ``pending`` no longer lists them."""
        ...
