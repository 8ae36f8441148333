"""Aliases in SQLite: create, read, update, delete and list, with their routing weights.

Called by ``SqliteStore`` on the store thread inside a transaction. The store checks
what needs stored state (the alias and the versions it points to exist, revision ids);
the shape rules of a routing configuration are checked by the gateway beforehand.
``region`` only renders the ARNs of error messages.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable

from kubelambda import errors, names
from kubelambda.models import LATEST, Alias, FunctionKey
from kubelambda.store import functions, rows

__all__ = ["delete_alias", "insert_alias", "list_aliases", "select_alias", "update_alias"]

_ALIAS = f"{functions.KEY} AND name = :name"


def insert_alias(connection: sqlite3.Connection, alias: Alias, *, region: str) -> Alias:
    functions.require_function(connection, alias.key, region=region)
    _require_targets(connection, alias, region=region)
    created = alias.with_changes(revision_id=str(uuid.uuid4()))
    try:
        connection.execute(
            "INSERT INTO aliases (namespace, function_name, name, function_version,"
            " revision_id, description, weights) VALUES (:namespace, :function_name, :name,"
            " :function_version, :revision_id, :description, :weights)",
            _values(created),
        )
    except sqlite3.IntegrityError as exc:
        arn = names.function_arn(alias.function_name, alias.name, region=region)
        raise errors.ResourceConflict(f"Alias already exists: {arn}") from exc
    return created


def select_alias(
    connection: sqlite3.Connection, function: FunctionKey, name: str, *, region: str
) -> Alias:
    functions.require_function(connection, function, region=region)
    row = connection.execute(
        f"SELECT * FROM aliases WHERE {_ALIAS}", {**rows.key_params(function), "name": name}
    ).fetchone()
    if row is None:
        arn = names.function_arn(function.name, name, region=region)
        raise errors.ResourceNotFound(f"Cannot find alias arn: {arn}")
    return rows.alias_from_row(row)


def update_alias(
    connection: sqlite3.Connection,
    function: FunctionKey,
    name: str,
    change: Callable[[Alias], Alias],
    *,
    expected_revision_id: str | None,
    region: str,
) -> Alias:
    """Replace the alias with ``change(current)``; its identity is kept whatever
    ``change`` returns."""
    current = select_alias(connection, function, name, region=region)
    if expected_revision_id is not None and expected_revision_id != current.revision_id:
        raise errors.PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
        )
    updated = change(current).with_changes(
        namespace=current.namespace,
        function_name=current.function_name,
        name=current.name,
        revision_id=str(uuid.uuid4()),
    )
    _require_targets(connection, updated, region=region)
    connection.execute(
        "UPDATE aliases SET function_version = :function_version, revision_id = :revision_id,"
        f" description = :description, weights = :weights WHERE {_ALIAS}",
        _values(updated),
    )
    return updated


def delete_alias(
    connection: sqlite3.Connection, function: FunctionKey, name: str, *, region: str
) -> None:
    select_alias(connection, function, name, region=region)
    params = {**rows.key_params(function), "name": name}
    connection.execute(f"DELETE FROM aliases WHERE {_ALIAS}", params)
    # Provisioned instances kept warm for this alias have nothing to serve any more, and
    # no event can be invoked through it any more.
    for table in ("provisioned", "event_invoke_configs"):
        connection.execute(
            f"DELETE FROM {table} WHERE {functions.KEY} AND qualifier = :name", params
        )


def list_aliases(
    connection: sqlite3.Connection,
    function: FunctionKey,
    *,
    function_version: str | None,
    after: str,
    limit: int,
    region: str,
) -> list[Alias]:
    functions.require_function(connection, function, region=region)
    found = connection.execute(
        f"SELECT * FROM aliases WHERE {functions.KEY} AND name > :after"
        " AND (:version IS NULL OR function_version = :version) ORDER BY name LIMIT :limit",
        {**rows.key_params(function), "after": after, "version": function_version, "limit": limit},
    ).fetchall()
    return [rows.alias_from_row(row) for row in found]


def _require_targets(connection: sqlite3.Connection, alias: Alias, *, region: str) -> None:
    for version in (alias.function_version, *alias.additional_version_weights):
        if version != LATEST:
            functions.select_version(connection, alias.key, version, region=region)


def _values(alias: Alias) -> dict[str, str]:
    return {
        **rows.key_params(alias.key),
        "name": alias.name,
        "function_version": alias.function_version,
        "revision_id": alias.revision_id,
        "description": alias.description,
        "weights": json.dumps(dict(alias.additional_version_weights), sort_keys=True),
    }
