"""Accepting an asynchronous (Event) invocation: check it, make it durable, say 202.

Called by the HTTP invoke edge for ``X-Amz-Invocation-Type: Event``. The function and
qualifier are resolved now, exactly as a synchronous invoke would (404, 409 for a
Pending version), so a caller learns of a wrong name at once; the version an attempt
runs is resolved again when the dispatcher runs it (an alias may have moved). The event
is counted as received only once the queue has made it durable: anything less raises,
and the caller gets an error instead of a 202.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.metrics import AsyncMetrics
from gateway.services.metered_invoker import MeteredInvoker
from kubelambda.names import FunctionRef
from kubelambda.ports.queue import Queue, QueuedEvent

__all__ = ["EventProducer"]

log = logging.getLogger(__name__)


class EventProducer:
    def __init__(
        self,
        *,
        queue: Queue,
        invoker: MeteredInvoker,
        metrics: AsyncMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._invoker = invoker
        self._metrics = metrics
        self._clock = clock

    async def accept(self, ref: FunctionRef, payload: bytes, *, request_id: str) -> None:
        """Return once the event is durable in the queue; raise a Lambda error otherwise."""
        self._invoker.resolve(ref)
        await self._queue.publish(
            QueuedEvent(
                request_id=request_id,
                function=ref.key,
                qualifier=ref.qualifier,
                payload=payload,
                accepted_at=self._clock(),
            )
        )
        self._metrics.received.labels(ref.namespace, ref.name).inc()
        log.debug(
            "event accepted request_id=%s namespace=%s function=%s qualifier=%s",
            request_id,
            ref.namespace,
            ref.name,
            ref.qualifier,
        )
