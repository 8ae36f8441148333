"""The embedded store's tables, and the migration of an older ``state.db`` at open.

Called by ``database`` when it opens the file. One row per function version (``number``
0 is ``$LATEST``), per alias, per function (tags, reserved concurrency, the version
counter), per provisioned-concurrency config and per event invoke config. Every key
starts with the namespace: names are unique per namespace only. How rows map to models
is ``rows``' job.

Schema versions (``PRAGMA user_version``):

    0  a new, empty file: the tables are created
    1  earlier releases: no namespace, and host paths of unpacked packages in ``versions``;
       migrated in place, every row landing in namespace ``default`` (no dead-letter
       target set, no event invoke config)
    2  this one
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from kubelambda.models import DEFAULT_NAMESPACE

__all__ = ["SCHEMA_VERSION", "migrate"]

SCHEMA_VERSION = 2

_TABLES = (
    """
    CREATE TABLE functions (
        namespace TEXT NOT NULL,
        function_name TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '{}',
        reserved_concurrency INTEGER,
        -- Version numbers are never reused, even after a version is deleted (as Lambda).
        last_version INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (namespace, function_name)
    )
    """,
    """
    CREATE TABLE versions (
        namespace TEXT NOT NULL,
        function_name TEXT NOT NULL,
        number INTEGER NOT NULL,
        version TEXT NOT NULL,
        runtime TEXT NOT NULL,
        handler TEXT NOT NULL,
        role TEXT NOT NULL,
        code_sha256 TEXT NOT NULL,
        code_size INTEGER NOT NULL,
        revision_id TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        memory_size INTEGER NOT NULL,
        timeout INTEGER NOT NULL,
        description TEXT NOT NULL,
        environment TEXT NOT NULL,
        package_type TEXT NOT NULL,
        state TEXT NOT NULL,
        last_update_status TEXT NOT NULL,
        state_reason TEXT NOT NULL DEFAULT '',
        last_update_status_reason TEXT NOT NULL DEFAULT '',
        -- The package invocations of $LATEST keep running while a code update is in
        -- progress or after it failed (as on Lambda); NULL once the newest one is live.
        serving_code_sha256 TEXT,
        serving_code_size INTEGER,
        -- DeadLetterConfig.TargetArn: NULL is the platform's default topic, '' turns dead
        -- letters off, anything else is a topic ARN. Published versions keep their own.
        dead_letter_target_arn TEXT,
        CHECK ((serving_code_sha256 IS NULL) = (serving_code_size IS NULL)),
        PRIMARY KEY (namespace, function_name, number),
        FOREIGN KEY (namespace, function_name)
            REFERENCES functions (namespace, function_name) ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE aliases (
        namespace TEXT NOT NULL,
        function_name TEXT NOT NULL,
        name TEXT NOT NULL,
        function_version TEXT NOT NULL,
        revision_id TEXT NOT NULL,
        description TEXT NOT NULL,
        weights TEXT NOT NULL,
        PRIMARY KEY (namespace, function_name, name),
        FOREIGN KEY (namespace, function_name)
            REFERENCES functions (namespace, function_name) ON DELETE CASCADE
    )
    """,
    """
    CREATE TABLE provisioned (
        namespace TEXT NOT NULL,
        function_name TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        requested INTEGER NOT NULL,
        allocated INTEGER NOT NULL,
        status TEXT NOT NULL,
        status_reason TEXT NOT NULL,
        last_modified TEXT NOT NULL,
        PRIMARY KEY (namespace, function_name, qualifier),
        FOREIGN KEY (namespace, function_name)
            REFERENCES functions (namespace, function_name) ON DELETE CASCADE
    )
    """,
    # The qualifier is $LATEST, a version number or an alias name, so no foreign key can
    # name its row: deleting a version or an alias deletes its config explicitly.
    """
    CREATE TABLE event_invoke_configs (
        namespace TEXT NOT NULL,
        function_name TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        maximum_retry_attempts INTEGER NOT NULL,
        maximum_event_age_seconds INTEGER NOT NULL,
        on_success TEXT,
        on_failure TEXT,
        last_modified TEXT NOT NULL,
        PRIMARY KEY (namespace, function_name, qualifier),
        FOREIGN KEY (namespace, function_name)
            REFERENCES functions (namespace, function_name) ON DELETE CASCADE
    )
    """,
)

# Version 1's tables, renamed out of the way, copied into version 2's, then dropped.
# Children are renamed and dropped before their parent. The foreign keys stay on: a v1
# row without its function would fail the copy (and the whole migration) instead of
# being dropped silently.
_V1_TABLES = ("provisioned", "aliases", "versions", "functions")
_FROM_V1 = (
    """
    INSERT INTO functions (namespace, function_name, tags, reserved_concurrency, last_version)
    SELECT :namespace, function_name, tags, reserved_concurrency, last_version
    FROM v1_functions
    """,
    # dead_letter_target_arn is left NULL: v1 had no DeadLetterConfig, so every version
    # keeps the default topic.
    """
    INSERT INTO versions (
        namespace, function_name, number, version, runtime, handler, role, code_sha256,
        code_size, revision_id, last_modified, memory_size, timeout, description,
        environment, package_type, state, last_update_status, state_reason,
        last_update_status_reason, serving_code_sha256, serving_code_size
    )
    SELECT
        :namespace, function_name, number, version, runtime, handler, role, code_sha256,
        code_size, revision_id, last_modified, memory_size, timeout, description,
        environment, package_type, state, last_update_status, state_reason,
        last_update_status_reason, serving_code_sha256, serving_code_size
    FROM v1_versions
    """,
    """
    INSERT INTO aliases (
        namespace, function_name, name, function_version, revision_id, description, weights
    )
    SELECT :namespace, function_name, name, function_version, revision_id, description, weights
    FROM v1_aliases
    """,
    """
    INSERT INTO provisioned (
        namespace, function_name, qualifier, requested, allocated, status, status_reason,
        last_modified
    )
    SELECT
        :namespace, function_name, qualifier, requested, allocated, status, status_reason,
        last_modified
    FROM v1_provisioned
    """,
)


def migrate(connection: sqlite3.Connection) -> None:
    """Bring the file to ``SCHEMA_VERSION`` in one transaction; refuse a file written by
    a newer kubelambda. ``connection`` must be in autocommit mode (no open transaction)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        # Read under the write lock: two processes opening one old file migrate it once.
        (current,) = connection.execute("PRAGMA user_version").fetchone()
        if current != SCHEMA_VERSION:
            upgrade = _UPGRADES.get(current)
            if upgrade is None:
                raise RuntimeError(
                    f"state.db has schema version {current}; "
                    f"this kubelambda understands {SCHEMA_VERSION}"
                )
            upgrade(connection)
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        connection.rollback()
        raise
    connection.commit()


def _create(connection: sqlite3.Connection) -> None:
    for statement in _TABLES:
        connection.execute(statement)


def _from_v1(connection: sqlite3.Connection) -> None:
    for table in _V1_TABLES:
        connection.execute(f"ALTER TABLE {table} RENAME TO v1_{table}")
    _create(connection)
    for statement in _FROM_V1:
        connection.execute(statement, {"namespace": DEFAULT_NAMESPACE})
    for table in _V1_TABLES:
        connection.execute(f"DROP TABLE v1_{table}")


_UPGRADES: dict[int, Callable[[sqlite3.Connection], None]] = {0: _create, 1: _from_v1}
