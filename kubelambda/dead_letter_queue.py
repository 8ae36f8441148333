"""A function's dead letters: read them back and send them through the queue again.

Called by ``kubelambda dlq list|redrive`` (the launch package opens the adapters) over
the ``TopicLog`` and ``Queue`` ports, so the same code serves Kafka and SQLite.
Redrive re-enqueues each letter as a fresh event (first attempt, accepted now, the same
request id so it can be traced) and acknowledges the letter only once the new event is
durable: a redrive cut short leaves every letter either re-enqueued or still listed,
never lost (one re-enqueued but not yet acknowledged is listed again: at least once).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kubelambda import errors, names
from kubelambda.destinations import DeadLetter
from kubelambda.models import FunctionKey
from kubelambda.ports.queue import Queue, QueuedEvent, TopicLog

__all__ = ["letters", "redrive"]


async def letters(log: TopicLog, topic: str) -> list[DeadLetter]:
    """The letters of ``topic`` not yet redriven, oldest first."""
    return [DeadLetter.from_record(record) for record in await log.pending(topic)]


async def redrive(
    queue: Queue,
    log: TopicLog,
    topic: str,
    function: FunctionKey,
    *,
    clock: Callable[[], float] = time.time,
) -> list[DeadLetter]:
    """Re-enqueue every pending letter of ``topic`` for ``function``; the ones sent."""
    sent = []
    for letter in await letters(log, topic):
        await queue.publish(
            QueuedEvent(
                request_id=letter.request_id or letter.record.position,
                function=function,
                qualifier=_qualifier(letter, function.namespace),
                payload=letter.payload,
                accepted_at=clock(),
            )
        )
        await log.acknowledge([letter.record])
        sent.append(letter)
    return sent


def _qualifier(letter: DeadLetter, namespace: str) -> str | None:
    """The qualifier the event was first invoked with (kept in its function ARN)."""
    try:
        return names.parse_function_ref(letter.function_arn, namespace=namespace).qualifier
    except errors.LambdaError:
        return None
