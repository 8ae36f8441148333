"""Provisioned-concurrency configs in SQLite: requested by the API, reported by the controller.

Called by ``SqliteStore`` on the store thread inside a transaction. A config belongs to
a published version or an alias (never ``$LATEST``, as on Lambda); the API's put makes
it ``IN_PROGRESS`` and the controller moves it to ``READY`` or ``FAILED``. ``region``
only renders the ARNs of error messages.
"""

from __future__ import annotations

import sqlite3

from kubelambda import errors
from kubelambda.models import LATEST, FunctionKey, ProvisionedConcurrency, ProvisionedStatus
from kubelambda.store import aliases, functions, rows

__all__ = [
    "delete_provisioned",
    "list_provisioned",
    "put_provisioned",
    "select_provisioned",
    "set_status",
]

_CONFIG = f"{functions.KEY} AND qualifier = :qualifier"


def put_provisioned(
    connection: sqlite3.Connection,
    function: FunctionKey,
    qualifier: str,
    *,
    requested: int,
    now: str,
    region: str,
) -> ProvisionedConcurrency:
    if qualifier == LATEST:
        raise errors.InvalidParameterValue(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
        )
    if qualifier.isdigit():
        functions.select_version(connection, function, qualifier, region=region)
    elif (
        aliases.select_alias(connection, function, qualifier, region=region).function_version
        == LATEST
    ):
        raise errors.InvalidParameterValue(
            "Provisioned Concurrency Configs cannot be applied to an alias pointing to $LATEST."
        )
    # A changed request keeps what is already allocated until the controller reports again.
    connection.execute(
        "INSERT INTO provisioned (namespace, function_name, qualifier, requested, allocated,"
        " status, status_reason, last_modified)"
        " VALUES (:namespace, :function_name, :qualifier, :requested, 0, 'IN_PROGRESS', '', :now)"
        " ON CONFLICT (namespace, function_name, qualifier) DO UPDATE SET"
        " requested = excluded.requested, status = 'IN_PROGRESS', status_reason = '',"
        " last_modified = excluded.last_modified",
        {**rows.key_params(function), "qualifier": qualifier, "requested": requested, "now": now},
    )
    return select_provisioned(connection, function, qualifier, region=region)


def select_provisioned(
    connection: sqlite3.Connection, function: FunctionKey, qualifier: str, *, region: str
) -> ProvisionedConcurrency:
    functions.require_function(connection, function, region=region)
    row = connection.execute(
        f"SELECT * FROM provisioned WHERE {_CONFIG}",
        {**rows.key_params(function), "qualifier": qualifier},
    ).fetchone()
    if row is None:
        raise errors.ProvisionedConcurrencyConfigNotFound(
            "No Provisioned Concurrency Config found for this function"
        )
    return rows.provisioned_from_row(row)


def delete_provisioned(
    connection: sqlite3.Connection, function: FunctionKey, qualifier: str, *, region: str
) -> None:
    select_provisioned(connection, function, qualifier, region=region)
    connection.execute(
        f"DELETE FROM provisioned WHERE {_CONFIG}",
        {**rows.key_params(function), "qualifier": qualifier},
    )


def list_provisioned(
    connection: sqlite3.Connection, function: FunctionKey, *, after: str, limit: int, region: str
) -> list[ProvisionedConcurrency]:
    functions.require_function(connection, function, region=region)
    found = connection.execute(
        f"SELECT * FROM provisioned WHERE {functions.KEY} AND qualifier > :after"
        " ORDER BY qualifier LIMIT :limit",
        {**rows.key_params(function), "after": after, "limit": limit},
    ).fetchall()
    return [rows.provisioned_from_row(row) for row in found]


def set_status(
    connection: sqlite3.Connection,
    function: FunctionKey,
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
        "UPDATE provisioned SET allocated = :allocated, status = :status,"
        f" status_reason = :reason WHERE {_CONFIG}"
        " AND (allocated, status, status_reason) IS NOT (:allocated, :status, :reason)",
        {
            **rows.key_params(function),
            "qualifier": qualifier,
            "allocated": allocated,
            "status": status.value,
            "reason": reason,
        },
    ).rowcount
    return changed > 0
