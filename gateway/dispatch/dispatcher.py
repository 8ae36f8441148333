"""Runs queued Event invocations through the same invoke path as synchronous ones.

Started by the launch package beside the gateway (one process embedded; its own
Deployment in Kubernetes mode). For every delivery the queue hands out it:

1. drops the event if its function is gone (counted as ``FunctionDeleted``: deleting a
   function discards its queued events, as Lambda does) or it is older than the
   qualifier's ``MaximumEventAgeInSeconds`` (``EventAgeExceeded``);
2. invokes it (``MeteredInvoker``) under its original request id — so the activator,
   the balancer and reserved concurrency apply exactly as for a synchronous call, and an
   async flood never takes more than a function's reservation;
3. completes the delivery with what the outcome adds (``gateway.domain.retries``): a
   retry due later, or, once it is over, the OnSuccess/OnFailure destination (a record
   for a topic, or an event for a function) and the dead letter. The queue makes those
   durable before it commits the delivery, so nothing is lost in between.

Deliveries run concurrently (bounded by ``max_in_flight``) and a retry waits in the
queue's durable timers, never here: a slow or failing function holds back neither its
own later events nor anyone else's. When consuming fails (the broker went away while
the consumers started, say) the dispatcher starts over after ``restart_seconds``, a
pause that doubles with every failure in a row up to ``max_restart_seconds``: the
gateway goes on answering 202 to Event invokes, so the dispatcher must not end while
the platform runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gateway.domain import retries
from gateway.domain.invocation import InvokeRequest, InvokeResult
from gateway.metrics import AsyncMetrics
from kubelambda import destinations, errors, names
from kubelambda.models import LATEST, EventInvokeConfig, Target
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.queue import Delivery, Queue, QueuedEvent, TopicMessage

__all__ = ["Dispatcher", "Invokes"]

log = logging.getLogger(__name__)

# Tries of a completion before its destination records are given up, and the longest
# pause between tries.
_COMPLETE_TRIES = 5
_MAX_COMPLETE_DELAY_SECONDS = 30.0


class Invokes(Protocol):
    """The invoke use case as the dispatcher needs it (``MeteredInvoker`` in production)."""

    async def invoke(self, request: InvokeRequest) -> InvokeResult: ...


@dataclass(frozen=True, slots=True)
class _Ending:
    """An event's processing is over: how, and what its last invocation said."""

    condition: retries.Condition
    outcome: destinations.Outcome
    error_code: str
    error_message: str
    invocations: int


class Dispatcher:
    def __init__(
        self,
        *,
        queue: Queue,
        invoker: Invokes,
        metrics: AsyncMetrics,
        schedule: retries.RetrySchedule,
        region: str,
        max_in_flight: int = 256,
        complete_retry_seconds: float = 0.5,
        restart_seconds: float = 0.5,
        max_restart_seconds: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._queue = queue
        self._invoker = invoker
        self._metrics = metrics
        self._schedule = schedule
        self._region = region
        self._clock = clock
        self._complete_retry = complete_retry_seconds
        self._restart = restart_seconds
        self._max_restart = max_restart_seconds
        # Whether the current pass over the queue handed out anything.
        self._delivered = False
        self._slots = asyncio.Semaphore(max_in_flight)
        self._catalog = Catalog()
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[tuple[str, str], list[float]] = {}

    def on_catalog(self, catalog: Catalog) -> None:
        """Take the store's newest snapshot (event invoke configs, dead-letter configs)."""
        self._catalog = catalog

    async def run(self) -> None:
        """Dispatch until cancelled or the queue ends; consuming that fails starts over.
        Deliveries still running when consuming stops are cancelled (their events are
        delivered again: nothing was committed)."""
        failures = 0
        while True:
            self._delivered = False
            try:
                await self._consume()
                return
            except Exception:
                # Whatever the queue's client raised: ending here would leave every event
                # the gateway accepts from now on undelivered until a restart. A pass that
                # delivered something had recovered: its failure counts as the first.
                self._metrics.consume_failures.inc()
                failures = 1 if self._delivered else failures + 1
                pause = min(self._restart * 2 ** (failures - 1), self._max_restart)
                log.exception("event=consume_failed failures=%d restart_in=%.1f", failures, pause)
            await asyncio.sleep(pause)

    async def _consume(self) -> None:
        try:
            async for delivery in self._queue.consume():
                self._delivered = True
                await self._slots.acquire()
                task = asyncio.create_task(self._dispatch(delivery))
                self._tasks.add(task)
                task.add_done_callback(self._finished)
        finally:
            for task in tuple(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.wait(tuple(self._tasks))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("dispatch failed", exc_info=exc)

    async def _dispatch(self, delivery: Delivery) -> None:
        event = delivery.event
        label = (event.function.namespace, event.function.name)
        held = self._held.setdefault(label, [])
        held.append(event.accepted_at)
        self._show_held(label)
        try:
            await self._handle(delivery)
        finally:
            held.remove(event.accepted_at)
            self._show_held(label)
            if not held:
                del self._held[label]

    def _show_held(self, label: tuple[str, str]) -> None:
        held = self._held.get(label, [])
        self._metrics.pending.labels(*label).set(len(held))
        oldest = self._clock() - min(held) if held else 0.0
        self._metrics.oldest_event_age_seconds.labels(*label).set(oldest)

    async def _handle(self, delivery: Delivery) -> None:
        event = delivery.event
        function = event.function
        label = (function.namespace, function.name)
        if function not in self._catalog.settings:
            self._metrics.dropped.labels(*label, "FunctionDeleted").inc()
            log.info(
                "event dropped request_id=%s namespace=%s function=%s reason=FunctionDeleted",
                event.request_id,
                function.namespace,
                function.name,
            )
            await self._complete(delivery)
            return
        config = self._config(event)
        now = self._clock()
        if retries.too_old(event.accepted_at, now, config.maximum_event_age_seconds):
            ending = _Ending(
                retries.Condition.EVENT_AGE_EXCEEDED,
                destinations.Outcome(),
                error_code="EventAgeExceeded",
                error_message="The event was older than MaximumEventAgeInSeconds.",
                invocations=event.attempt - 1,
            )
            await self._end(delivery, config, ending)
            return
        self._metrics.event_age_seconds.labels(*label).observe(now - event.accepted_at)
        ref = names.FunctionRef(function.namespace, function.name, event.qualifier)
        try:
            result = await self._invoker.invoke(
                InvokeRequest(ref=ref, payload=event.payload, request_id=event.request_id)
            )
        except errors.ResourceNotFound as exc:
            # The alias or version went away since the event was accepted: nothing to retry.
            ending = _service_ending(event, exc, retries.Condition.RETRIES_EXHAUSTED, ran=False)
            await self._end(delivery, config, ending)
            return
        except errors.TooManyRequests as exc:
            await self._after_failure(delivery, config, retries.Failure.THROTTLED, exc)
            return
        except errors.LambdaError as exc:
            await self._after_failure(delivery, config, retries.Failure.SYSTEM_ERROR, exc)
            return
        if result.function_error:
            await self._after_failure(
                delivery, config, retries.Failure.FUNCTION_ERROR, result=result
            )
            return
        await self._succeed(delivery, config, result)

    async def _after_failure(
        self,
        delivery: Delivery,
        config: EventInvokeConfig,
        failure: retries.Failure,
        error: errors.LambdaError | None = None,
        *,
        result: InvokeResult | None = None,
    ) -> None:
        event = delivery.event
        decision = retries.after_failure(
            failure,
            attempt=event.attempt,
            postponements=event.postponements,
            accepted_at=event.accepted_at,
            now=self._clock(),
            maximum_retry_attempts=config.maximum_retry_attempts,
            maximum_age_seconds=config.maximum_event_age_seconds,
            schedule=self._schedule,
        )
        ran = failure is retries.Failure.FUNCTION_ERROR
        if decision.run_at is not None:
            later = (
                event.next_attempt(not_before=decision.run_at)
                if decision.retry
                else event.postponed(not_before=decision.run_at)
            )
            self._metrics.retried.labels(event.function.namespace, event.function.name).inc()
            log.info(
                "event retried request_id=%s namespace=%s function=%s attempt=%d failure=%s "
                "in_seconds=%.1f",
                event.request_id,
                event.function.namespace,
                event.function.name,
                later.attempt,
                failure,
                decision.run_at - self._clock(),
            )
            await self._complete(delivery, events=[later])
            return
        assert decision.condition is not None
        if result is not None:
            ending = _function_ending(event, decision.condition, result)
        else:
            assert error is not None
            ending = _service_ending(event, error, decision.condition, ran=ran)
        await self._end(delivery, config, ending)

    async def _succeed(
        self, delivery: Delivery, config: EventInvokeConfig, result: InvokeResult
    ) -> None:
        event = delivery.event
        events: list[QueuedEvent] = []
        records: list[tuple[str, TopicMessage]] = []
        if config.on_success:
            record = destinations.destination_record(
                request_id=event.request_id,
                function_arn=self._function_arn(event),
                condition=retries.Condition.SUCCESS,
                invoke_count=event.attempt,
                request_payload=event.payload,
                outcome=destinations.Outcome(200, result.executed_version, None, result.payload),
                at=self._clock(),
            )
            self._route(event, config.on_success, record, events, records)
        await self._complete(delivery, events=events, destination_records=records)

    async def _end(self, delivery: Delivery, config: EventInvokeConfig, ending: _Ending) -> None:
        """The event failed for good: OnFailure destination and dead letter, then commit."""
        event = delivery.event
        label = (event.function.namespace, event.function.name)
        self._metrics.dropped.labels(*label, ending.condition.value).inc()
        events: list[QueuedEvent] = []
        records: list[tuple[str, TopicMessage]] = []
        letters: list[tuple[str, TopicMessage]] = []
        function_arn = self._function_arn(event)
        if config.on_failure:
            record = destinations.destination_record(
                request_id=event.request_id,
                function_arn=function_arn,
                condition=ending.condition,
                invoke_count=ending.invocations,
                request_payload=event.payload,
                outcome=ending.outcome,
                at=self._clock(),
            )
            self._route(event, config.on_failure, record, events, records)
        topic = self._dead_letter_topic(event)
        if topic is not None:
            letters.append(
                (
                    topic,
                    destinations.dead_letter(
                        request_id=event.request_id,
                        function_arn=function_arn,
                        condition=ending.condition,
                        attempts=ending.invocations,
                        accepted_at=event.accepted_at,
                        payload=event.payload,
                        error_code=ending.error_code,
                        error_message=ending.error_message,
                    ),
                )
            )
        log.warning(
            "event failed request_id=%s namespace=%s function=%s condition=%s attempts=%d "
            "error=%s dead_letter_topic=%s",
            event.request_id,
            event.function.namespace,
            event.function.name,
            ending.condition,
            ending.invocations,
            ending.error_message,
            topic,
        )
        await self._complete(delivery, events=events, messages=letters, destination_records=records)
        if topic is not None:
            self._metrics.dead_lettered.labels(*label).inc()

    def _route(
        self,
        event: QueuedEvent,
        destination: str,
        record: bytes,
        events: list[QueuedEvent],
        records: list[tuple[str, TopicMessage]],
    ) -> None:
        """Add a destination record for ``destination`` (a topic or a function ARN)."""
        topic = names.parse_topic_arn(destination)
        if topic is not None:
            records.append((topic, TopicMessage(value=record, key=event.request_id)))
            return
        try:
            target = names.parse_function_ref(destination, namespace=event.function.namespace)
        except errors.LambdaError:
            target = None
        if target is None or target.key not in self._catalog.settings:
            # Checked when the config was stored, but the function may be gone since.
            self._metrics.destination_failures.labels(
                event.function.namespace, event.function.name, "function"
            ).inc()
            log.warning(
                "destination not delivered request_id=%s function=%s destination=%s "
                "reason=no-such-function",
                event.request_id,
                event.function,
                destination,
            )
            return
        events.append(
            QueuedEvent(
                request_id=event.request_id,
                function=target.key,
                qualifier=target.qualifier,
                payload=record,
                accepted_at=self._clock(),
            )
        )

    async def _complete(
        self,
        delivery: Delivery,
        *,
        events: Sequence[QueuedEvent] = (),
        messages: Sequence[tuple[str, TopicMessage]] = (),
        destination_records: Sequence[tuple[str, TopicMessage]] = (),
    ) -> None:
        """Complete ``delivery`` with its follow-ups, trying until the queue takes them:
        an outcome is never given up, or its partition would never be committed past it.
        Destination records are the exception: after a few refusals they are counted as
        undelivered and left out, so one bad destination cannot hold the queue."""
        delay = self._complete_retry
        tries = 0
        while True:
            tries += 1
            try:
                await self._queue.complete(
                    delivery, events=events, messages=[*messages, *destination_records]
                )
                return
            except errors.LambdaError as exc:
                log.warning(
                    "completing a delivery failed request_id=%s try=%d error=%s",
                    delivery.event.request_id,
                    tries,
                    exc.message,
                )
            if destination_records and tries >= _COMPLETE_TRIES:
                event = delivery.event
                self._metrics.destination_failures.labels(
                    event.function.namespace, event.function.name, "topic"
                ).inc()
                log.error(
                    "destination not delivered request_id=%s function=%s topics=%s",
                    event.request_id,
                    event.function,
                    [topic for topic, _ in destination_records],
                )
                destination_records = ()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_COMPLETE_DELAY_SECONDS)

    def _config(self, event: QueuedEvent) -> EventInvokeConfig:
        qualifier = event.qualifier or LATEST
        found = self._catalog.event_invoke_configs.get((event.function, qualifier))
        if found is not None:
            return found
        # None set: Lambda's defaults (two retries, six hours).
        return EventInvokeConfig(event.function.namespace, event.function.name, qualifier)

    def _dead_letter_topic(self, event: QueuedEvent) -> str | None:
        """The function's dead-letter topic (``$LATEST``'s DeadLetterConfig), or ``None``
        when the user turned dead letters off."""
        latest = self._catalog.versions.get(
            Target(event.function.namespace, event.function.name, LATEST)
        )
        target_arn = latest.dead_letter_target_arn if latest is not None else None
        return names.dead_letter_topic(event.function, target_arn)

    def _function_arn(self, event: QueuedEvent) -> str:
        return names.function_arn(
            event.function.name, event.qualifier or LATEST, region=self._region
        )


def _function_ending(
    event: QueuedEvent, condition: retries.Condition, result: InvokeResult
) -> _Ending:
    outcome = destinations.Outcome(
        200, result.executed_version, result.function_error, result.payload
    )
    return _Ending(
        condition,
        outcome,
        error_code="200",
        error_message=_error_message(result.payload),
        invocations=event.attempt,
    )


def _service_ending(
    event: QueuedEvent, error: errors.LambdaError, condition: retries.Condition, *, ran: bool
) -> _Ending:
    return _Ending(
        condition,
        destinations.Outcome(),
        error_code=str(error.status),
        error_message=f"{error.code}: {error.message}",
        invocations=event.attempt if ran else event.attempt - 1,
    )


def _error_message(payload: bytes) -> str:
    try:
        body = json.loads(payload)
    except ValueError:
        return payload[:1024].decode(errors="replace")
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("errorType") or "")
    return ""
