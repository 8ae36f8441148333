"""Function-wide settings in SQLite: tags and reserved concurrency.

Called by ``SqliteStore`` on the store thread inside a transaction. These live apart
from versions (as on Lambda): publishing a version neither copies nor freezes them.
``region`` only renders the ARNs of error messages.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping

from kubelambda.models import FunctionKey, FunctionSettings
from kubelambda.store import functions, rows

__all__ = ["delete_reserved", "put_reserved", "tag", "untag"]


def tag(
    connection: sqlite3.Connection,
    function: FunctionKey,
    tags: Mapping[str, str],
    *,
    region: str,
) -> FunctionSettings:
    current = functions.select_settings(connection, function, region=region)
    return _write_tags(connection, function, {**current.tags, **tags}, region=region)


def untag(
    connection: sqlite3.Connection, function: FunctionKey, keys: Iterable[str], *, region: str
) -> FunctionSettings:
    current = functions.select_settings(connection, function, region=region)
    removed = set(keys)
    kept = {key: value for key, value in current.tags.items() if key not in removed}
    return _write_tags(connection, function, kept, region=region)


def put_reserved(
    connection: sqlite3.Connection, function: FunctionKey, reserved: int, *, region: str
) -> None:
    functions.require_function(connection, function, region=region)
    connection.execute(
        f"UPDATE functions SET reserved_concurrency = :reserved WHERE {functions.KEY}",
        {**rows.key_params(function), "reserved": reserved},
    )


def delete_reserved(connection: sqlite3.Connection, function: FunctionKey, *, region: str) -> None:
    functions.require_function(connection, function, region=region)
    connection.execute(
        f"UPDATE functions SET reserved_concurrency = NULL WHERE {functions.KEY}",
        rows.key_params(function),
    )


def _write_tags(
    connection: sqlite3.Connection,
    function: FunctionKey,
    tags: Mapping[str, str],
    *,
    region: str,
) -> FunctionSettings:
    connection.execute(
        f"UPDATE functions SET tags = :tags WHERE {functions.KEY}",
        {**rows.key_params(function), "tags": json.dumps(dict(tags), sort_keys=True)},
    )
    return functions.select_settings(connection, function, region=region)
