"""The SQLite queue under failure and load: a consumer process killed with SIGKILL, a
full disk, and a flood of 10,000 events counted by request id."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubelambda import errors
from kubelambda.models import FunctionKey
from kubelambda.names import default_dead_letter_topic
from kubelambda.ports.queue import Delivery, TopicMessage
from kubelambda.store import SqliteQueue
from tests import factories

ROOT = Path(__file__).resolve().parents[3]
DLQ = default_dead_letter_topic(FunctionKey("default", "f"))

# Leases every event, completes the first ten with a dead letter each, says so, and
# holds the rest until it is killed.
CONSUMER = """
import asyncio, sys
from pathlib import Path
from kubelambda.ports.queue import TopicMessage
from kubelambda.store import SqliteQueue

async def main():
    async with SqliteQueue.open(Path(sys.argv[1]), lease_seconds=1.0) as queue:
        held = 0
        async for delivery in queue.consume():
            held += 1
            if held <= 10:
                message = TopicMessage(value=delivery.event.payload)
                await queue.complete(delivery, messages=[(sys.argv[2], message)])
            if held == int(sys.argv[3]):
                print("holding", flush=True)

asyncio.run(main())
"""


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """A disk that is full past ``limit`` bytes per file, for this process: writes beyond
    it fail with EFBIG (SIGXFSZ ignored, so they fail rather than kill the process)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, previous[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        signal.signal(signal.SIGXFSZ, handler)


def rows(home: Path, query: str) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(home / "queue.db")) as connection:
        return connection.execute(query).fetchall()


async def test_events_held_by_a_killed_consumer_are_delivered_again_after_their_lease(
    tmp_path: Path,
):
    async with SqliteQueue.open(tmp_path) as queue:
        for n in range(50):
            await queue.publish(factories.queued_event(f"req-{n}"))
    consumer = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", CONSUMER, str(tmp_path), DLQ, "50"),
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert consumer.stdout is not None
        async with asyncio.timeout(30):
            assert await consumer.stdout.readline() == b"holding\n"
    finally:
        consumer.kill()  # SIGKILL: no lease is given back
        await consumer.wait()
    killed_at = time.time()

    seen: collections.Counter[str] = collections.Counter()
    delivered_at = []
    async with (
        SqliteQueue.open(tmp_path, poll_interval=0.1) as queue,
        contextlib.aclosing(queue.consume()) as deliveries,
    ):
        async with asyncio.timeout(10):
            async for delivery in deliveries:
                delivered_at.append(time.time())
                seen[delivery.event.request_id] += 1
                await queue.complete(delivery)
                if len(seen) == 40:
                    break
        assert len(await queue.pending(DLQ)) == 10

    assert set(seen) == {f"req-{n}" for n in range(10, 50)}
    assert set(seen.values()) == {1}
    # The leases ran on for at most one lease (1 s) past the kill, and not much less.
    assert 0.3 < delivered_at[0] - killed_at < 2.0
    assert rows(tmp_path, "SELECT COUNT(*) FROM events") == [(0,)]


async def test_publish_on_a_full_disk_raises_service_error_and_stores_nothing(tmp_path: Path):
    async with SqliteQueue.open(tmp_path) as queue:
        big = factories.queued_event("req-big", payload=b"x" * (4 << 20))
        with file_size_limit(2 << 20), pytest.raises(errors.ServiceError):
            await queue.publish(big)
        await queue.publish(factories.queued_event("req-small"))
    assert rows(tmp_path, "SELECT request_id FROM events") == [("req-small",)]


async def test_a_complete_on_a_full_disk_raises_service_error_and_changes_nothing(
    tmp_path: Path,
):
    async with SqliteQueue.open(tmp_path) as queue, contextlib.aclosing(queue.consume()) as it:
        await queue.publish(factories.queued_event("req-1"))
        delivery = await anext(it)
        dead_letter = TopicMessage(value=b"x" * (4 << 20))
        follow_up = factories.queued_event("req-follow-up")
        with file_size_limit(2 << 20), pytest.raises(errors.ServiceError):
            await queue.complete(delivery, events=[follow_up], messages=[(DLQ, dead_letter)])
        assert await queue.pending(DLQ) == []
    assert rows(tmp_path, "SELECT request_id FROM events") == [("req-1",)]


async def test_a_flood_of_ten_thousand_events_is_delivered_once_each(tmp_path: Path):
    total = 10_000
    async with (
        SqliteQueue.open(tmp_path, max_in_flight=256) as queue,
        contextlib.aclosing(queue.consume()) as deliveries,
    ):
        latencies = []
        for n in range(1_000):
            started = time.perf_counter()
            await queue.publish(factories.queued_event(f"req-{n}"))
            latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        for first in range(1_000, total, 100):
            await asyncio.gather(
                *(
                    queue.publish(factories.queued_event(f"req-{n}"))
                    for n in range(first, first + 100)
                )
            )
        publish_rate = (total - 1_000) / (time.perf_counter() - started)

        seen: collections.Counter[str] = collections.Counter()
        completions: set[asyncio.Task[None]] = set()

        async def run(delivery: Delivery) -> None:
            await asyncio.sleep(0)  # the invocation
            await queue.complete(delivery)

        started = time.perf_counter()
        async with asyncio.timeout(120):
            async for delivery in deliveries:
                seen[delivery.event.request_id] += 1
                task = asyncio.create_task(run(delivery))
                completions.add(task)
                task.add_done_callback(completions.discard)
                if len(seen) == total:
                    break
            await asyncio.gather(*completions)
        consume_rate = total / (time.perf_counter() - started)

    assert len(seen) == total
    assert set(seen.values()) == {1}
    assert rows(tmp_path, "SELECT COUNT(*) FROM events") == [(0,)]
    latencies.sort()
    print(
        f"\nsqlite queue: publish p50 {statistics.median(latencies) * 1e3:.2f} ms,"
        f" p99 {latencies[989] * 1e3:.2f} ms (one at a time);"
        f" {publish_rate:.0f} publishes/s (100 concurrent);"
        f" {consume_rate:.0f} events/s consumed and completed (256 in flight)"
    )
