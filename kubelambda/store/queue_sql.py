"""The embedded queue's statements, each run inside one transaction on the thread of
``queue.db`` (``database``), by ``queue.SqliteQueue``; its docstring explains how
``due_at`` and ``lease_id`` make the timers and the leases.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from kubelambda.models import FunctionKey
from kubelambda.ports.queue import QueuedEvent, TopicMessage, TopicRecord

__all__ = [
    "Lease",
    "acknowledge",
    "complete",
    "insert_events",
    "lease",
    "pending",
    "renew",
    "unlease",
    "unlease_all",
]


@dataclass(frozen=True, slots=True)
class Lease:
    """A ``Delivery``'s handle: the event's row and the lease it was handed out under."""

    event_id: int
    lease_id: str


_EVENT_COLUMNS = (
    "request_id, namespace, function_name, qualifier, payload, accepted_at, attempt,"
    " not_before, postponements"
)


def insert_events(connection: sqlite3.Connection, *, events: Sequence[QueuedEvent]) -> None:
    connection.executemany(
        f"INSERT INTO events ({_EVENT_COLUMNS}, due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                event.request_id,
                event.function.namespace,
                event.function.name,
                event.qualifier,
                event.payload,
                event.accepted_at,
                event.attempt,
                event.not_before,
                event.postponements,
                event.not_before,
            )
            for event in events
        ],
    )


def lease(
    connection: sqlite3.Connection, *, now: float, limit: int, expires_at: float
) -> tuple[list[tuple[Lease, QueuedEvent]], float | None]:
    """Lease up to ``limit`` due events, in due order. With none due, also say when the
    next one is (a retry's time or a lease's expiry), or ``None`` if the queue is empty."""
    rows = connection.execute(
        f"SELECT id, {_EVENT_COLUMNS} FROM events WHERE due_at <= ? ORDER BY due_at, id LIMIT ?",
        (now, limit),
    ).fetchall()
    if not rows:
        (next_due,) = connection.execute("SELECT MIN(due_at) FROM events").fetchone()
        return [], next_due
    leased = [(Lease(row["id"], uuid.uuid4().hex), _event(row)) for row in rows]
    connection.executemany(
        "UPDATE events SET due_at = ?, lease_id = ? WHERE id = ?",
        [(expires_at, handle.lease_id, handle.event_id) for handle, _ in leased],
    )
    return leased, None


def complete(
    connection: sqlite3.Connection,
    *,
    handle: Lease,
    events: Sequence[QueuedEvent],
    messages: Sequence[tuple[str, TopicMessage]],
    now: float,
) -> bool:
    """Delete the delivered event and add what its outcome produced; ``False``, and
    nothing written, if the lease was lost."""
    deleted = connection.execute(
        "DELETE FROM events WHERE id = ? AND lease_id = ?", (handle.event_id, handle.lease_id)
    ).rowcount
    if not deleted:
        return False
    insert_events(connection, events=events)
    connection.executemany(
        "INSERT INTO messages (topic, key, headers, value, created_at) VALUES (?, ?, ?, ?, ?)",
        [
            (topic, message.key, json.dumps(dict(message.headers)), message.value, now)
            for topic, message in messages
        ],
    )
    return True


def renew(
    connection: sqlite3.Connection, *, held: Sequence[tuple[str, int]], expires_at: float
) -> None:
    connection.executemany(
        "UPDATE events SET due_at = ? WHERE id = ? AND lease_id = ?",
        [(expires_at, event_id, lease_id) for lease_id, event_id in held],
    )


def unlease(connection: sqlite3.Connection, *, held: Sequence[tuple[str, int]]) -> None:
    connection.executemany(
        "UPDATE events SET due_at = not_before, lease_id = NULL WHERE id = ? AND lease_id = ?",
        [(event_id, lease_id) for lease_id, event_id in held],
    )


def unlease_all(connection: sqlite3.Connection) -> int:
    """Give back every lease, whoever holds it; how many there were."""
    cursor = connection.execute(
        "UPDATE events SET due_at = not_before, lease_id = NULL WHERE lease_id IS NOT NULL"
    )
    return cursor.rowcount


def pending(connection: sqlite3.Connection, *, topic: str) -> list[TopicRecord]:
    rows = connection.execute(
        "SELECT position, key, headers, value, created_at FROM messages"
        " WHERE topic = ? AND acknowledged_at IS NULL ORDER BY position",
        (topic,),
    ).fetchall()
    return [
        TopicRecord(
            topic=topic,
            position=str(row["position"]),
            message=TopicMessage(
                value=row["value"], headers=json.loads(row["headers"]), key=row["key"]
            ),
            timestamp=row["created_at"],
        )
        for row in rows
    ]


def acknowledge(
    connection: sqlite3.Connection, *, records: Sequence[TopicRecord], now: float
) -> None:
    connection.executemany(
        "UPDATE messages SET acknowledged_at = ? WHERE position = ? AND topic = ?",
        [(now, int(record.position), record.topic) for record in records],
    )


def _event(row: sqlite3.Row) -> QueuedEvent:
    return QueuedEvent(
        request_id=row["request_id"],
        function=FunctionKey(row["namespace"], row["function_name"]),
        qualifier=row["qualifier"],
        payload=row["payload"],
        accepted_at=row["accepted_at"],
        attempt=row["attempt"],
        not_before=row["not_before"],
        postponements=row["postponements"],
    )
