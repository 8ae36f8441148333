"""Provisioned-concurrency configs in SQLite: requested by the API, reported by the controller.

Called by ``SqliteStore`` on the store thread inside a transaction. A config belongs to
a published version or an alias (never ``$LATEST``, as on Lambda); the API's put makes
it ``IN_PROGRESS`` and the controller moves it to ``READY`` or ``FAILED``.
"""

from __future__ import annotations

import sqlite3

from kubelambda import errors
from kubelambda.models import LATEST, ProvisionedConcurrency, ProvisionedStatus
from kubelambda.store import aliases, functions, schema

__all__ = [
    "delete_provisioned",
    "list_provisioned",
    "put_provisioned",
    "select_provisioned",
    "set_status",
]


def put_provisioned(
    connection: sqlite3.Connection, name: str, qualifier: str, *, requested: int, now: str
) -> ProvisionedConcurrency:
    if qualifier == LATEST:
        raise errors.InvalidParameterValue(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
        )
    if qualifier.isdigit():
        functions.select_version(connection, name, qualifier)
    elif aliases.select_alias(connection, name, qualifier).function_version == LATEST:
        raise errors.InvalidParameterValue(
            "Provisioned Concurrency Configs cannot be applied to an alias pointing to $LATEST."
        )
    # A changed request keeps what is already allocated until the controller reports again.
    connection.execute(
        "INSERT INTO provisioned (function_name, qualifier, requested, allocated, status,"
        " status_reason, last_modified) VALUES (?, ?, ?, 0, 'IN_PROGRESS', '', ?)"
        " ON CONFLICT (function_name, qualifier) DO UPDATE SET requested = excluded.requested,"
        " status = 'IN_PROGRESS', status_reason = '', last_modified = excluded.last_modified",
        (name, qualifier, requested, now),
    )
    return select_provisioned(connection, name, qualifier)


def select_provisioned(
    connection: sqlite3.Connection, name: str, qualifier: str
) -> ProvisionedConcurrency:
    functions.require_function(connection, name)
    row = connection.execute(
        "SELECT * FROM provisioned WHERE function_name = ? AND qualifier = ?", (name, qualifier)
    ).fetchone()
    if row is None:
        raise errors.ProvisionedConcurrencyConfigNotFound(
            "No Provisioned Concurrency Config found for this function"
        )
    return schema.provisioned_from_row(row)


def delete_provisioned(connection: sqlite3.Connection, name: str, qualifier: str) -> None:
    select_provisioned(connection, name, qualifier)
    connection.execute(
        "DELETE FROM provisioned WHERE function_name = ? AND qualifier = ?", (name, qualifier)
    )


def list_provisioned(
    connection: sqlite3.Connection, name: str, *, after: str, limit: int
) -> list[ProvisionedConcurrency]:
    functions.require_function(connection, name)
    rows = connection.execute(
        "SELECT * FROM provisioned WHERE function_name = ? AND qualifier > ?"
        " ORDER BY qualifier LIMIT ?",
        (name, after, limit),
    ).fetchall()
    return [schema.provisioned_from_row(row) for row in rows]


def set_status(
    connection: sqlite3.Connection,
    name: str,
    qualifier: str,
    *,
    allocated: int,
    status: ProvisionedStatus,
    reason: str,
) -> bool:
    """The controller's report; returns whether it changed anything (a config deleted
    meanwhile is simply gone, and a repeated report changes nothing)."""
    status = ProvisionedStatus(status)
    changed = connection.execute(
        "UPDATE provisioned SET allocated = ?, status = ?, status_reason = ?"
        " WHERE function_name = ? AND qualifier = ?"
        " AND (allocated, status, status_reason) IS NOT (?, ?, ?)",
        (allocated, status.value, reason, name, qualifier, allocated, status.value, reason),
    ).rowcount
    return changed > 0
