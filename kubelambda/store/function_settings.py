"""Function-wide settings in SQLite: tags and reserved concurrency.

Called by ``SqliteStore`` on the store thread inside a transaction. These live apart
from versions (as on Lambda): publishing a version neither copies nor freezes them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping

from kubelambda.models import FunctionSettings
from kubelambda.store import functions

__all__ = ["delete_reserved", "put_reserved", "tag", "untag"]


def tag(connection: sqlite3.Connection, name: str, tags: Mapping[str, str]) -> FunctionSettings:
    current = functions.select_settings(connection, name)
    return _write_tags(connection, name, {**current.tags, **tags})


def untag(connection: sqlite3.Connection, name: str, keys: Iterable[str]) -> FunctionSettings:
    current = functions.select_settings(connection, name)
    removed = set(keys)
    return _write_tags(
        connection, name, {key: value for key, value in current.tags.items() if key not in removed}
    )


def put_reserved(connection: sqlite3.Connection, name: str, reserved: int) -> None:
    functions.require_function(connection, name)
    connection.execute(
        "UPDATE functions SET reserved_concurrency = ? WHERE function_name = ?", (reserved, name)
    )


def delete_reserved(connection: sqlite3.Connection, name: str) -> None:
    functions.require_function(connection, name)
    connection.execute(
        "UPDATE functions SET reserved_concurrency = NULL WHERE function_name = ?", (name,)
    )


def _write_tags(
    connection: sqlite3.Connection, name: str, tags: Mapping[str, str]
) -> FunctionSettings:
    connection.execute(
        "UPDATE functions SET tags = ? WHERE function_name = ?",
        (json.dumps(dict(tags), sort_keys=True), name),
    )
    return functions.select_settings(connection, name)
