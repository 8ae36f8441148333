"""The dispatcher's decisions, with an in-test queue and invoker: what each outcome
completes a delivery with (retries, destinations, dead letters) and what it counts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from gateway.dispatch.dispatcher import Dispatcher
from gateway.domain.invocation import InvokeRequest, InvokeResult
from gateway.domain.retries import RetrySchedule
from gateway.metrics import AsyncMetrics
from kubelambda import errors
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    LATEST,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
)
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.queue import Delivery, QueuedEvent, TopicMessage
from tests import factories

NOW = 1_000_000.0
F = FunctionKey(DEFAULT_NAMESPACE, "f")
ON_FAIL = FunctionKey(DEFAULT_NAMESPACE, "on-fail")
TOPIC_ARN = "arn:aws:kafka:us-east-1:000000000000:topic/outcomes"


@dataclass
class Completion:
    event: QueuedEvent
    events: Sequence[QueuedEvent]
    messages: Sequence[tuple[str, TopicMessage]]


@dataclass
class Queue:
    deliveries: list[QueuedEvent] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    refuse: int = 0
    refusals: int = 0
    broken_topics: set[str] = field(default_factory=set)

    async def publish(self, event: QueuedEvent) -> None:
        raise AssertionError("the dispatcher publishes through complete() only")

    async def consume(self) -> AsyncIterator[Delivery]:
        for event in self.deliveries:
            yield Delivery(event=event, handle=None)
        await asyncio.Event().wait()

    async def complete(
        self,
        delivery: Delivery,
        *,
        events: Sequence[QueuedEvent] = (),
        messages: Sequence[tuple[str, TopicMessage]] = (),
    ) -> None:
        if self.refuse or any(topic in self.broken_topics for topic, _ in messages):
            self.refuse = max(0, self.refuse - 1)
            self.refusals += 1
            raise errors.ServiceError("queue unavailable")
        self.completions.append(Completion(delivery.event, list(events), list(messages)))


@dataclass
class Invoker:
    """Answers per request id: a result, an exception, or a wait on an event."""

    answers: dict[str, InvokeResult | errors.LambdaError | asyncio.Event] = field(
        default_factory=dict
    )
    calls: list[InvokeRequest] = field(default_factory=list)

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        self.calls.append(request)
        answer = self.answers.get(request.request_id, ok(request.request_id))
        if isinstance(answer, asyncio.Event):
            await answer.wait()
            return ok(request.request_id)
        if isinstance(answer, errors.LambdaError):
            raise answer
        return answer


def ok(request_id: str) -> InvokeResult:
    return InvokeResult(request_id=request_id, executed_version=LATEST, payload=b'"done"')


def failed(request_id: str) -> InvokeResult:
    return InvokeResult(
        request_id=request_id,
        executed_version=LATEST,
        payload=b'{"errorMessage": "boom", "errorType": "ValueError"}',
        function_error="Unhandled",
    )


def event(request_id: str = "r-1", **changes: object) -> QueuedEvent:
    fields: dict[str, object] = {
        "request_id": request_id,
        "function": F,
        "qualifier": None,
        "payload": b'{"n": 1}',
        "accepted_at": NOW - 5,
    }
    fields.update(changes)
    return QueuedEvent(**fields)  # type: ignore[arg-type]


def catalog(*configs: EventInvokeConfig, dead_letter_target_arn: str | None = None) -> Catalog:
    latest = factories.function_version("f", dead_letter_target_arn=dead_letter_target_arn)
    on_fail = factories.function_version("on-fail")
    return Catalog(
        versions={latest.target: latest, on_fail.target: on_fail},
        settings={
            F: FunctionSettings("default", "f"),
            ON_FAIL: FunctionSettings("default", "on-fail"),
        },
        event_invoke_configs={(c.key, c.qualifier): c for c in configs},
    )


@dataclass
class BrokenQueue(Queue):
    """A queue whose first ``failures`` passes over ``consume`` raise, each after handing
    out the event of ``delivered_before_failing`` (if any) once."""

    failures: int = 0
    delivered_before_failing: QueuedEvent | None = None
    passes: int = 0

    async def consume(self) -> AsyncIterator[Delivery]:
        self.passes += 1
        if self.passes <= self.failures:
            if self.delivered_before_failing is not None:
                yield Delivery(event=self.delivered_before_failing, handle=None)
            raise errors.ServiceError("cannot consume: the broker went away")
        async for delivery in super().consume():
            yield delivery


def new_dispatcher(queue: Queue, invoker: Invoker, registry: CollectorRegistry) -> Dispatcher:
    return Dispatcher(
        queue=queue,
        invoker=invoker,
        metrics=AsyncMetrics(registry),
        schedule=RetrySchedule(function_error_delays=(60.0, 120.0)),
        region="us-east-1",
        complete_retry_seconds=0.0,
        restart_seconds=0.0,
        clock=lambda: NOW,
    )


async def dispatch(queue: Queue, invoker: Invoker, current: Catalog) -> CollectorRegistry:
    """Run a dispatcher until every delivery is completed (or refused); its registry."""
    registry = CollectorRegistry()
    dispatcher = new_dispatcher(queue, invoker, registry)
    dispatcher.on_catalog(current)
    running = asyncio.create_task(dispatcher.run())
    for _ in range(500):
        if len(queue.completions) >= len(queue.deliveries):
            break
        await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    running.cancel()
    await asyncio.wait({running})
    return registry


def count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    labels = {"namespace": "default", "function": "f", **labels}
    return registry.get_sample_value(f"kubelambda_async_{name}_total", labels) or 0.0


async def test_a_success_without_destinations_just_commits() -> None:
    queue = Queue([event()])
    invoker = Invoker()

    await dispatch(queue, invoker, catalog())

    assert [c.request_id for c in invoker.calls] == ["r-1"]
    assert queue.completions == [Completion(event(), [], [])]


async def test_the_handler_runs_under_the_events_request_id_and_qualifier() -> None:
    queue = Queue([event(qualifier="live")])
    invoker = Invoker()

    await dispatch(queue, invoker, catalog())

    (call,) = invoker.calls
    assert (call.request_id, call.ref.key, call.ref.qualifier) == ("r-1", F, "live")
    assert call.payload == b'{"n": 1}'


async def test_a_success_goes_to_the_on_success_topic_as_a_success_record() -> None:
    config = EventInvokeConfig("default", "f", LATEST, on_success=TOPIC_ARN)
    queue = Queue([event()])

    await dispatch(queue, Invoker(), catalog(config))

    ((topic, message),) = queue.completions[0].messages
    record = json.loads(message.value)
    assert topic == "outcomes"
    assert record["requestContext"]["condition"] == "Success"
    assert record["requestContext"]["approximateInvokeCount"] == 1
    assert record["responsePayload"] == "done"


async def test_a_function_error_is_retried_as_the_next_attempt_after_the_delay() -> None:
    queue = Queue([event()])

    metrics = await dispatch(queue, Invoker({"r-1": failed("r-1")}), catalog())

    (retry,) = queue.completions[0].events
    assert (retry.attempt, retry.not_before, retry.request_id) == (2, NOW + 60, "r-1")
    assert queue.completions[0].messages == []
    assert count(metrics, "events_retried") == 1


async def test_retries_exhausted_dead_letters_and_invokes_the_on_failure_function() -> None:
    config = EventInvokeConfig(
        "default", "f", LATEST, on_failure="arn:aws:lambda:us-east-1:000000000000:function:on-fail"
    )
    queue = Queue([event(attempt=3)])

    metrics = await dispatch(queue, Invoker({"r-1": failed("r-1")}), catalog(config))

    completion = queue.completions[0]
    (destination,) = completion.events
    ((topic, letter),) = completion.messages
    record = json.loads(destination.payload)
    assert destination.function == ON_FAIL and destination.attempt == 1
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert topic == "kubelambda-dlq.f"
    assert letter.value == b'{"n": 1}'
    assert letter.headers["ErrorMessage"] == "boom"
    assert letter.headers["Attempts"] == "3"
    assert count(metrics, "events_dropped", reason="RetriesExhausted") == 1
    assert count(metrics, "events_dead_lettered") == 1


async def test_maximum_retry_attempts_zero_dead_letters_after_one_failure() -> None:
    config = EventInvokeConfig("default", "f", LATEST, maximum_retry_attempts=0)
    queue = Queue([event()])

    await dispatch(queue, Invoker({"r-1": failed("r-1")}), catalog(config))

    assert queue.completions[0].events == []
    assert queue.completions[0].messages[0][0] == "kubelambda-dlq.f"


@pytest.mark.parametrize(
    "error", [errors.TooManyRequests("Rate Exceeded.", reason="x"), errors.ResourceNotReady("x")]
)
async def test_throttles_and_system_errors_postpone_the_same_attempt(
    error: errors.LambdaError,
) -> None:
    queue = Queue([event(postponements=2)])

    await dispatch(queue, Invoker({"r-1": error}), catalog())

    (later,) = queue.completions[0].events
    assert (later.attempt, later.postponements, later.not_before) == (1, 3, NOW + 4)


async def test_an_event_older_than_the_maximum_age_is_not_run() -> None:
    config = EventInvokeConfig("default", "f", LATEST, maximum_event_age_seconds=60)
    queue = Queue([event(accepted_at=NOW - 61, attempt=2)])
    invoker = Invoker()

    metrics = await dispatch(queue, invoker, catalog(config))

    assert invoker.calls == []
    ((_, letter),) = queue.completions[0].messages
    assert letter.headers["Condition"] == "EventAgeExceeded"
    assert letter.headers["Attempts"] == "1"
    assert count(metrics, "events_dropped", reason="EventAgeExceeded") == 1


async def test_events_of_a_deleted_function_are_discarded() -> None:
    queue = Queue([event(function=FunctionKey("default", "gone"))])
    invoker = Invoker()

    metrics = await dispatch(queue, invoker, catalog())

    assert invoker.calls == []
    assert queue.completions[0].events == [] and queue.completions[0].messages == []
    assert count(metrics, "events_dropped", function="gone", reason="FunctionDeleted") == 1


async def test_an_empty_dead_letter_target_turns_dead_letters_off() -> None:
    queue = Queue([event(attempt=3)])

    await dispatch(queue, Invoker({"r-1": failed("r-1")}), catalog(dead_letter_target_arn=""))

    assert queue.completions[0].messages == []


async def test_a_user_dead_letter_topic_replaces_the_default() -> None:
    queue = Queue([event(attempt=3)])

    await dispatch(
        queue, Invoker({"r-1": failed("r-1")}), catalog(dead_letter_target_arn=TOPIC_ARN)
    )

    assert queue.completions[0].messages[0][0] == "outcomes"


async def test_a_slow_event_holds_back_no_other_event() -> None:
    release = asyncio.Event()
    queue = Queue([event("slow"), event("fast")])
    invoker = Invoker({"slow": release})
    dispatcher = Dispatcher(
        queue=queue,
        invoker=invoker,
        metrics=AsyncMetrics(CollectorRegistry()),
        schedule=RetrySchedule(),
        region="us-east-1",
        clock=lambda: NOW,
    )
    dispatcher.on_catalog(catalog())
    running = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(100):
            if queue.completions:
                break
            await asyncio.sleep(0)
        assert [c.event.request_id for c in queue.completions] == ["fast"]
        release.set()
        for _ in range(100):
            if len(queue.completions) == 2:
                break
            await asyncio.sleep(0)
    finally:
        running.cancel()
        await asyncio.wait({running})
    assert [c.event.request_id for c in queue.completions] == ["fast", "slow"]


async def test_a_destination_function_that_no_longer_exists_is_counted_not_looped() -> None:
    config = EventInvokeConfig(
        "default", "f", LATEST, on_failure="arn:aws:lambda:us-east-1:000000000000:function:nope"
    )
    queue = Queue([event(attempt=3)])

    metrics = await dispatch(queue, Invoker({"r-1": failed("r-1")}), catalog(config))

    assert queue.completions[0].events == []
    assert count(metrics, "destination_delivery_failures", destination="function") == 1


async def test_a_completion_the_queue_refuses_is_tried_until_it_is_taken() -> None:
    queue = Queue([event()], refuse=7)

    await dispatch(queue, Invoker(), catalog())

    assert queue.refusals == 7
    assert queue.completions == [Completion(event(), [], [])]


async def test_a_destination_topic_that_keeps_failing_is_given_up_but_the_dead_letter_kept() -> (
    None
):
    config = EventInvokeConfig("default", "f", LATEST, on_failure=TOPIC_ARN)
    queue = Queue([event(attempt=3)], broken_topics={"outcomes"})

    metrics = await dispatch(queue, Invoker({"r-1": failed("r-1")}), catalog(config))

    ((topic, _),) = queue.completions[0].messages
    assert topic == "kubelambda-dlq.f"
    assert queue.refusals == 5
    assert count(metrics, "destination_delivery_failures", destination="topic") == 1
    assert count(metrics, "events_dead_lettered") == 1


async def test_consuming_that_fails_starts_over_and_the_events_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = BrokenQueue([event()], failures=3)
    invoker = Invoker()

    registry = await dispatch(queue, invoker, catalog())

    assert [c.request_id for c in invoker.calls] == ["r-1"]
    assert queue.completions == [Completion(event(), [], [])]
    failed_passes = [r for r in caplog.records if "event=consume_failed" in r.getMessage()]
    assert [r.getMessage().split()[1] for r in failed_passes] == [
        "failures=1",
        "failures=2",
        "failures=3",
    ]
    assert registry.get_sample_value("kubelambda_async_consume_failures_total") == 3


async def test_a_pass_that_delivered_before_it_failed_counts_its_failure_as_the_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = BrokenQueue([event("r-2")], failures=2, delivered_before_failing=event("r-1"))

    await dispatch(queue, Invoker(), catalog())

    failed_passes = [r for r in caplog.records if "event=consume_failed" in r.getMessage()]
    assert [r.getMessage().split()[1] for r in failed_passes] == ["failures=1", "failures=1"]


async def test_the_dispatcher_ends_when_the_queue_does() -> None:
    class EndingQueue(Queue):
        async def consume(self) -> AsyncIterator[Delivery]:
            for queued in self.deliveries:
                yield Delivery(event=queued, handle=None)

    queue = EndingQueue([])

    await asyncio.wait_for(new_dispatcher(queue, Invoker(), CollectorRegistry()).run(), 5)
