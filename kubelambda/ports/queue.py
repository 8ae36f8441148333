"""Asynchronous (Event) invocations between the gateway that accepts them and the
dispatcher that runs them.

The producer's ``publish`` returns only once the event is durable (Kafka acknowledged
it with acks=all, or the SQLite transaction committed): only then may the gateway
answer 202. The dispatcher ``consume``s, invokes, and ``commit``s a delivery only after
its outcome is durable too (a retry published, a dead letter written, or success), so
a crash in between delivers the event again rather than losing it (at least once).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from kubelambda.models import FunctionKey

__all__ = ["Delivery", "Queue", "QueuedEvent"]


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One accepted Event invocation, as the queue carries it.

    ``request_id`` is the 202's ``x-amzn-RequestId`` and stays the same on every attempt
    (the handler's ``context.aws_request_id``); ``accepted_at`` (epoch seconds) is what
    the maximum event age counts from; ``attempt`` is 1 for the first try; the event is
    not run before ``not_before`` (epoch seconds), which retries push back.
    """

    request_id: str
    function: FunctionKey
    qualifier: str | None
    payload: bytes
    accepted_at: float
    attempt: int = 1
    not_before: float = 0.0

    def next_attempt(self, *, not_before: float) -> QueuedEvent:
        return dataclasses.replace(self, attempt=self.attempt + 1, not_before=not_before)


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event handed to a consumer, with the adapter's handle to commit it."""

    event: QueuedEvent
    handle: object


class Queue(Protocol):
    async def publish(self, event: QueuedEvent) -> None:
        """Return once ``event`` is durable; raise a ``kubelambda.errors.ServerError`` (or
        ``TooManyRequests``) when it could not be made so."""
        ...

    def consume(self) -> AsyncIterator[Delivery]:
        """Deliveries for this consumer, until the queue is closed."""
        ...

    async def commit(self, delivery: Delivery) -> None:
        """The delivery's outcome is durable: never deliver it again."""
        ...

    async def dead_letter(self, delivery: Delivery, record: bytes) -> None:
        """Write ``record`` (Lambda's destination JSON) to the function's dead-letter
        topic, durably; the caller commits the delivery afterwards."""
        ...
