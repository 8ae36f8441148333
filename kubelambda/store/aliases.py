"""Aliases in SQLite: create, read, update, delete and list, with their routing weights.

Called by ``SqliteStore`` on the store thread inside a transaction. The store checks
what needs stored state (the alias and the versions it points to exist, revision ids);
the shape rules of a routing configuration are checked by the gateway beforehand.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable

from kubelambda import errors, names
from kubelambda.models import LATEST, Alias
from kubelambda.store import functions, schema

__all__ = ["delete_alias", "insert_alias", "list_aliases", "select_alias", "update_alias"]


def insert_alias(connection: sqlite3.Connection, alias: Alias) -> Alias:
    functions.require_function(connection, alias.function_name)
    _require_targets(connection, alias)
    created = alias.with_changes(revision_id=str(uuid.uuid4()))
    try:
        connection.execute(
            "INSERT INTO aliases (function_name, name, function_version, revision_id,"
            " description, weights) VALUES (?, ?, ?, ?, ?, ?)",
            _values(created),
        )
    except sqlite3.IntegrityError as exc:
        raise errors.ResourceConflict(f"Alias already exists: {_arn(alias)}") from exc
    return created


def select_alias(connection: sqlite3.Connection, function_name: str, name: str) -> Alias:
    functions.require_function(connection, function_name)
    row = connection.execute(
        "SELECT * FROM aliases WHERE function_name = ? AND name = ?", (function_name, name)
    ).fetchone()
    if row is None:
        arn = names.function_arn(function_name, name)
        raise errors.ResourceNotFound(f"Cannot find alias arn: {arn}")
    return schema.alias_from_row(row)


def update_alias(
    connection: sqlite3.Connection,
    function_name: str,
    name: str,
    change: Callable[[Alias], Alias],
    *,
    expected_revision_id: str | None,
) -> Alias:
    current = select_alias(connection, function_name, name)
    if expected_revision_id is not None and expected_revision_id != current.revision_id:
        raise errors.PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
        )
    updated = change(current).with_changes(revision_id=str(uuid.uuid4()))
    _require_targets(connection, updated)
    connection.execute(
        "UPDATE aliases SET function_version = ?, revision_id = ?, description = ?, weights = ?"
        " WHERE function_name = ? AND name = ?",
        (*_values(updated)[2:], function_name, name),
    )
    return updated


def delete_alias(connection: sqlite3.Connection, function_name: str, name: str) -> None:
    select_alias(connection, function_name, name)
    connection.execute(
        "DELETE FROM aliases WHERE function_name = ? AND name = ?", (function_name, name)
    )
    # Provisioned instances kept warm for this alias have nothing to serve any more.
    connection.execute(
        "DELETE FROM provisioned WHERE function_name = ? AND qualifier = ?", (function_name, name)
    )


def list_aliases(
    connection: sqlite3.Connection,
    function_name: str,
    *,
    function_version: str | None,
    after: str,
    limit: int,
) -> list[Alias]:
    functions.require_function(connection, function_name)
    rows = connection.execute(
        "SELECT * FROM aliases WHERE function_name = ? AND name > ?"
        " AND (? IS NULL OR function_version = ?) ORDER BY name LIMIT ?",
        (function_name, after, function_version, function_version, limit),
    ).fetchall()
    return [schema.alias_from_row(row) for row in rows]


def _require_targets(connection: sqlite3.Connection, alias: Alias) -> None:
    for version in (alias.function_version, *alias.additional_version_weights):
        if version != LATEST:
            functions.select_version(connection, alias.function_name, version)


def _values(alias: Alias) -> tuple[str, str, str, str, str, str]:
    weights = json.dumps(dict(alias.additional_version_weights), sort_keys=True)
    return (
        alias.function_name,
        alias.name,
        alias.function_version,
        alias.revision_id,
        alias.description,
        weights,
    )


def _arn(alias: Alias) -> str:
    return names.function_arn(alias.function_name, alias.name)
