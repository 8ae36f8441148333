"""The SQLite queue's semantics: delivery order, due times, leases, atomic completion,
the in-flight bound, topic logs, and errors, on a real ``queue.db`` in tmp_path."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from queue_helpers import consuming

from kubelambda import errors
from kubelambda.models import FunctionKey
from kubelambda.names import default_dead_letter_topic
from kubelambda.ports.queue import TopicMessage
from kubelambda.store import SqliteQueue
from tests import factories

DLQ = default_dead_letter_topic(FunctionKey("default", "f"))


async def test_publish_then_consume_keeps_every_field(tmp_path: Path):
    event = factories.queued_event(
        "req-fields",
        function=FunctionKey("team-a", "resize"),
        qualifier="live",
        payload=bytes(range(256)),
        accepted_at=1_700_000_123.25,
        attempt=2,
        not_before=time.time() - 5,
        postponements=3,
    )
    async with SqliteQueue.open(tmp_path) as queue, consuming(queue) as inbox:
        await queue.publish(event)
        assert (await inbox.next()).event == event


async def test_an_immediate_event_published_after_a_delayed_one_is_delivered_first(
    tmp_path: Path,
):
    due = time.time() + 0.5
    async with SqliteQueue.open(tmp_path, poll_interval=0.1) as queue, consuming(queue) as inbox:
        await queue.publish(factories.queued_event("later", not_before=due))
        await queue.publish(factories.queued_event("now"))
        assert (await inbox.next()).event.request_id == "now"
        delayed = await inbox.next()
        delivered_at = time.time()
    assert delayed.event.request_id == "later"
    assert due <= delivered_at < due + 0.5


async def test_a_delayed_event_wakes_the_consumer_at_its_due_time_not_the_poll_interval(
    tmp_path: Path,
):
    due = time.time() + 0.3
    async with SqliteQueue.open(tmp_path, poll_interval=30) as queue, consuming(queue) as inbox:
        await queue.publish(factories.queued_event("later", not_before=due))
        await inbox.next(within=2)
        assert time.time() >= due


async def test_complete_removes_the_delivery_and_adds_follow_ups_and_messages(tmp_path: Path):
    retry_due = time.time() + 0.3
    dead_letter = TopicMessage(
        value=b'{"n": 1}', headers={"RequestID": "req-1", "ErrorCode": "500"}, key="req-1"
    )
    async with SqliteQueue.open(tmp_path, poll_interval=0.1) as queue, consuming(queue) as inbox:
        await queue.publish(factories.queued_event("req-1"))
        first = await inbox.next()
        retry = first.event.next_attempt(not_before=retry_due)
        destination = factories.queued_event("req-dest", name="on-fail")
        await queue.complete(first, events=[retry, destination], messages=[(DLQ, dead_letter)])

        assert (await inbox.next()).event == destination
        assert (await inbox.next()).event == retry
        assert time.time() >= retry_due
        [record] = await queue.pending(DLQ)
        assert record.message == dead_letter
        assert await inbox.nothing_within(0.3)


async def test_a_complete_that_fails_midway_writes_nothing(tmp_path: Path):
    async with SqliteQueue.open(tmp_path, poll_interval=0.1) as queue:
        await queue.publish(factories.queued_event("req-1"))
        async with consuming(queue) as inbox:
            delivery = await inbox.next()
            follow_up = factories.queued_event("req-follow-up")
            # The event row is deleted and the follow-up inserted before the second message
            # breaks a NOT NULL constraint: the whole transaction must roll back.
            broken = [(DLQ, TopicMessage(value=b"ok")), (DLQ, TopicMessage(value=None))]
            with pytest.raises(errors.ServiceError):
                await queue.complete(delivery, events=[follow_up], messages=broken)
    with sqlite3.connect(tmp_path / "queue.db") as connection:
        assert connection.execute("SELECT request_id FROM events").fetchall() == [("req-1",)]
        assert connection.execute("SELECT COUNT(*) FROM messages").fetchone() == (0,)


async def test_a_queue_whose_clock_is_past_the_lease_redelivers_an_uncompleted_event(
    tmp_path: Path,
):
    async with SqliteQueue.open(tmp_path, lease_seconds=10) as holder:
        await holder.publish(factories.queued_event("req-1"))
        async with consuming(holder) as inbox:
            await inbox.next()
        async with (
            SqliteQueue.open(tmp_path, poll_interval=0.1) as now,
            SqliteQueue.open(tmp_path, poll_interval=0.1, clock=lambda: time.time() + 11) as later,
            consuming(now) as inbox_now,
            consuming(later) as inbox_later,
        ):
            assert (await inbox_later.next()).event.request_id == "req-1"
            assert await inbox_now.nothing_within(0.3)


async def test_a_queue_opened_reclaiming_leases_redelivers_a_held_event_at_once(
    tmp_path: Path,
):
    async with SqliteQueue.open(tmp_path, lease_seconds=30) as holder:
        await holder.publish(factories.queued_event("req-1"))
        async with consuming(holder) as inbox:
            await inbox.next()
        # The holder keeps its lease, as a process killed outright leaves it.
        async with (
            SqliteQueue.open(tmp_path, poll_interval=0.1) as other,
            consuming(other) as inbox_other,
        ):
            assert await inbox_other.nothing_within(0.3)
        async with (
            SqliteQueue.open(tmp_path, poll_interval=0.1, reclaim_leases=True) as restarted,
            consuming(restarted) as inbox_restarted,
        ):
            assert (await inbox_restarted.next(within=1)).event.request_id == "req-1"


async def test_a_stale_completion_neither_removes_the_re_leased_event_nor_writes_its_outcome(
    tmp_path: Path,
):
    async with (
        SqliteQueue.open(tmp_path, lease_seconds=10) as first,
        SqliteQueue.open(tmp_path, poll_interval=0.1, clock=lambda: time.time() + 11) as second,
    ):
        await first.publish(factories.queued_event("req-1"))
        async with consuming(first) as inbox:
            stale = await inbox.next()
        async with consuming(second) as inbox:
            current = await inbox.next()

        await first.complete(
            stale,
            events=[factories.queued_event("req-stale-follow-up")],
            messages=[(DLQ, TopicMessage(value=b"stale"))],
        )
        assert await first.pending(DLQ) == []
        with sqlite3.connect(tmp_path / "queue.db") as connection:
            assert connection.execute("SELECT request_id FROM events").fetchall() == [("req-1",)]

        await second.complete(current)
        with sqlite3.connect(tmp_path / "queue.db") as connection:
            assert connection.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


async def test_a_held_delivery_keeps_its_lease_past_the_lease_time(tmp_path: Path):
    async with (
        SqliteQueue.open(tmp_path, lease_seconds=0.3) as holder,
        SqliteQueue.open(tmp_path, poll_interval=0.05) as other,
    ):
        await holder.publish(factories.queued_event("req-1"))
        async with consuming(holder) as inbox:
            delivery = await inbox.next()
        async with consuming(other) as inbox:
            assert await inbox.nothing_within(1.0)
            await holder.complete(delivery)
            assert await inbox.nothing_within(0.3)
        with sqlite3.connect(tmp_path / "queue.db") as connection:
            assert connection.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


async def test_closing_the_queue_gives_held_leases_back(tmp_path: Path):
    async with SqliteQueue.open(tmp_path, lease_seconds=60) as queue:
        await queue.publish(factories.queued_event("req-1"))
        async with consuming(queue) as inbox:
            await inbox.next()
    async with SqliteQueue.open(tmp_path) as reopened, consuming(reopened) as inbox:
        assert (await inbox.next(within=0.5)).event.request_id == "req-1"


async def test_consume_holds_at_most_max_in_flight_deliveries(tmp_path: Path):
    async with SqliteQueue.open(tmp_path, max_in_flight=3) as queue:
        for n in range(10):
            await queue.publish(factories.queued_event(f"req-{n}"))
        async with consuming(queue) as inbox:
            held = [await inbox.next() for _ in range(3)]
            assert await inbox.nothing_within(0.3)
            await queue.complete(held[0])
            assert (await inbox.next()).event.request_id == "req-3"
            assert await inbox.nothing_within(0.3)


async def test_two_queues_on_one_file_see_each_others_publishes(tmp_path: Path):
    async with (
        SqliteQueue.open(tmp_path, poll_interval=0.1) as platform,
        SqliteQueue.open(tmp_path) as cli,
        consuming(platform) as inbox,
    ):
        assert await inbox.nothing_within(0.2)
        await cli.publish(factories.queued_event("req-redriven"))
        assert (await inbox.next(within=1)).event.request_id == "req-redriven"


async def test_topic_log_lists_unacknowledged_records_of_one_topic_oldest_first(tmp_path: Path):
    other = default_dead_letter_topic(FunctionKey("team-a", "f"))
    async with SqliteQueue.open(tmp_path) as queue, consuming(queue) as inbox:
        for n, topic in enumerate([DLQ, other, DLQ, DLQ]):
            await queue.publish(factories.queued_event(f"req-{n}"))
            delivery = await inbox.next()
            message = TopicMessage(value=f"{n}".encode(), headers={"RequestID": f"req-{n}"})
            await queue.complete(delivery, messages=[(topic, message)])

        pending = await queue.pending(DLQ)
        assert [record.message.value for record in pending] == [b"0", b"2", b"3"]
        assert {record.topic for record in pending} == {DLQ}
        assert len({record.position for record in pending}) == 3

        await queue.acknowledge(pending[:2])
        assert [record.message.value for record in await queue.pending(DLQ)] == [b"3"]
        assert [record.message.value for record in await queue.pending(other)] == [b"1"]


async def test_publish_raises_service_error_while_another_process_holds_the_write_lock(
    tmp_path: Path,
):
    async with SqliteQueue.open(tmp_path, busy_timeout=0.1) as queue:
        blocker = sqlite3.connect(tmp_path / "queue.db", isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(errors.ServiceError):
                await queue.publish(factories.queued_event("req-1"))
        finally:
            blocker.close()
        await queue.publish(factories.queued_event("req-2"))
    with sqlite3.connect(tmp_path / "queue.db") as connection:
        assert connection.execute("SELECT request_id FROM events").fetchall() == [("req-2",)]


async def test_opening_a_corrupt_file_raises_service_error(tmp_path: Path):
    (tmp_path / "queue.db").write_bytes(b"not a database, " * 512)
    with pytest.raises(errors.ServiceError):
        async with SqliteQueue.open(tmp_path):
            pass
