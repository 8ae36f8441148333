"""Event invoke configs in SQLite: how asynchronous invocations of a qualifier are retried
and where their outcome goes.

Called by ``SqliteStore`` on the store thread inside a transaction. A config belongs to
``$LATEST``, a published version or an alias, which must exist when it is put; deleting
the function (foreign key), the version (``functions.delete_version``) or the alias
(``aliases.delete_alias``) deletes it. The gateway has validated the values beforehand.
``region`` only renders the ARNs of error messages.
"""

from __future__ import annotations

import sqlite3

from kubelambda import errors, names
from kubelambda.models import LATEST, EventInvokeConfig, FunctionKey
from kubelambda.store import functions, rows

__all__ = [
    "delete_event_invoke_config",
    "list_event_invoke_configs",
    "put_event_invoke_config",
    "select_event_invoke_config",
]

_CONFIG = f"{functions.KEY} AND qualifier = :qualifier"


def put_event_invoke_config(
    connection: sqlite3.Connection, config: EventInvokeConfig, *, now: str, region: str
) -> EventInvokeConfig:
    """Create or replace the config of ``config.qualifier``, stamped ``now``."""
    _require_qualifier(connection, config.key, config.qualifier, region=region)
    stamped = config.with_changes(last_modified=now)
    connection.execute(
        "INSERT INTO event_invoke_configs (namespace, function_name, qualifier,"
        " maximum_retry_attempts, maximum_event_age_seconds, on_success, on_failure,"
        " last_modified) VALUES (:namespace, :function_name, :qualifier,"
        " :maximum_retry_attempts, :maximum_event_age_seconds, :on_success, :on_failure,"
        " :last_modified)"
        " ON CONFLICT (namespace, function_name, qualifier) DO UPDATE SET"
        " maximum_retry_attempts = excluded.maximum_retry_attempts,"
        " maximum_event_age_seconds = excluded.maximum_event_age_seconds,"
        " on_success = excluded.on_success, on_failure = excluded.on_failure,"
        " last_modified = excluded.last_modified",
        {
            **rows.key_params(stamped.key),
            "qualifier": stamped.qualifier,
            "maximum_retry_attempts": stamped.maximum_retry_attempts,
            "maximum_event_age_seconds": stamped.maximum_event_age_seconds,
            "on_success": stamped.on_success,
            "on_failure": stamped.on_failure,
            "last_modified": stamped.last_modified,
        },
    )
    return stamped


def select_event_invoke_config(
    connection: sqlite3.Connection, function: FunctionKey, qualifier: str, *, region: str
) -> EventInvokeConfig:
    # Lambda answers the same whether the function, the qualifier or only the config is
    # missing: the qualified ARN has no config.
    row = connection.execute(
        f"SELECT * FROM event_invoke_configs WHERE {_CONFIG}",
        {**rows.key_params(function), "qualifier": qualifier},
    ).fetchone()
    if row is None:
        arn = names.function_arn(function.name, qualifier, region=region)
        raise errors.ResourceNotFound(f"The function {arn} doesn't have an EventInvokeConfig")
    return rows.event_invoke_config_from_row(row)


def delete_event_invoke_config(
    connection: sqlite3.Connection, function: FunctionKey, qualifier: str, *, region: str
) -> None:
    select_event_invoke_config(connection, function, qualifier, region=region)
    connection.execute(
        f"DELETE FROM event_invoke_configs WHERE {_CONFIG}",
        {**rows.key_params(function), "qualifier": qualifier},
    )


def list_event_invoke_configs(
    connection: sqlite3.Connection, function: FunctionKey, *, after: str, limit: int, region: str
) -> list[EventInvokeConfig]:
    """The function's configs by qualifier, after ``after``."""
    functions.require_function(connection, function, region=region)
    found = connection.execute(
        f"SELECT * FROM event_invoke_configs WHERE {functions.KEY} AND qualifier > :after"
        " ORDER BY qualifier LIMIT :limit",
        {**rows.key_params(function), "after": after, "limit": limit},
    ).fetchall()
    return [rows.event_invoke_config_from_row(row) for row in found]


def _require_qualifier(
    connection: sqlite3.Connection, function: FunctionKey, qualifier: str, *, region: str
) -> None:
    """``$LATEST``, a published version or an alias of an existing function."""
    functions.require_function(connection, function, region=region)
    if qualifier == LATEST:
        return
    if qualifier.isdigit():
        functions.select_version(connection, function, qualifier, region=region)
        return
    alias = connection.execute(
        f"SELECT 1 FROM aliases WHERE {functions.KEY} AND name = :name",
        {**rows.key_params(function), "name": qualifier},
    ).fetchone()
    if alias is None:
        arn = names.function_arn(function.name, qualifier, region=region)
        raise errors.ResourceNotFound(f"Function not found: {arn}")
