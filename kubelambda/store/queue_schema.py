"""The embedded queue's tables in ``queue.db``, created at open.

Called by ``database`` when ``SqliteQueue`` opens the file. ``events`` holds every
accepted event until its delivery is completed; ``messages`` holds the records written
to topics (dead letters, destination records) and whether they were acknowledged.
How the queue uses the columns (leases, due times) is explained in ``queue``.

Schema versions (``PRAGMA user_version``):

    0  a new, empty file: the tables are created
    1  this one
"""

from __future__ import annotations

import sqlite3

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 1

_TABLES = (
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        request_id TEXT NOT NULL,
        namespace TEXT NOT NULL,
        function_name TEXT NOT NULL,
        qualifier TEXT,
        payload BLOB NOT NULL,
        accepted_at REAL NOT NULL,
        attempt INTEGER NOT NULL,
        not_before REAL NOT NULL,
        postponements INTEGER NOT NULL,
        -- When the row may next be handed out: not_before until it is leased, then the
        -- lease's expiry. One indexed column serves as both timer and lease.
        due_at REAL NOT NULL,
        -- The current (or last) lease; NULL until the first delivery.
        lease_id TEXT
    )
    """,
    "CREATE INDEX events_due ON events (due_at, id)",
    """
    CREATE TABLE messages (
        -- AUTOINCREMENT: a position names one record forever, never reused.
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        key TEXT,
        headers TEXT NOT NULL,
        value BLOB NOT NULL,
        created_at REAL NOT NULL,
        acknowledged_at REAL
    )
    """,
    "CREATE INDEX messages_pending ON messages (topic, position) WHERE acknowledged_at IS NULL",
)


def migrate(connection: sqlite3.Connection) -> None:
    """Create the tables in a new file; refuse a file written by a newer kubelambda.
    ``connection`` must be in autocommit mode (no open transaction)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Read under the write lock: two processes opening one new file create it once.
        (current,) = connection.execute("PRAGMA user_version").fetchone()
        if current == 0:
            for statement in _TABLES:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif current != SCHEMA_VERSION:
            raise RuntimeError(
                f"queue.db has schema version {current}; "
                f"this kubelambda understands {SCHEMA_VERSION}"
            )
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
