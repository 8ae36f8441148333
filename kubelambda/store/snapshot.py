"""Catalog snapshots of the SQLite store: built whole at open, refreshed per function.

``SqliteStore`` calls ``build`` once when it opens and ``refresh`` on the store thread
after every commit. Every write touches one function, so a refresh re-reads that
function's rows and reuses every other entry of the previous (immutable) catalog: the
cost of a write stays proportional to one function, not to the whole store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import TypeVar

from kubelambda.models import Target
from kubelambda.ports import Catalog
from kubelambda.store import schema

__all__ = ["build", "refresh"]

K = TypeVar("K")
V = TypeVar("V")


def build(connection: sqlite3.Connection) -> Catalog:
    return _read(connection, "", ())


def refresh(connection: sqlite3.Connection, function_name: str, previous: Catalog) -> Catalog:
    fresh = _read(connection, " WHERE function_name = ?", (function_name,))
    return Catalog(
        versions=_merged(
            previous.versions, fresh.versions, lambda t: t.function_name, function_name
        ),
        aliases=_merged(previous.aliases, fresh.aliases, lambda k: k[0], function_name),
        settings=_merged(previous.settings, fresh.settings, lambda k: k, function_name),
        provisioned=_merged(previous.provisioned, fresh.provisioned, lambda k: k[0], function_name),
    )


def _read(connection: sqlite3.Connection, where: str, params: tuple[str, ...]) -> Catalog:
    versions = {}
    for row in connection.execute(f"SELECT * FROM versions{where}", params):
        # The catalog feeds invocations: it carries the package being served.
        version = schema.version_from_row(row, serving=True)
        versions[Target(version.function_name, version.version)] = version
    aliases = {
        (alias.function_name, alias.name): alias
        for alias in map(
            schema.alias_from_row, connection.execute(f"SELECT * FROM aliases{where}", params)
        )
    }
    settings = {
        entry.function_name: entry
        for entry in map(
            schema.settings_from_row, connection.execute(f"SELECT * FROM functions{where}", params)
        )
    }
    provisioned = {
        (entry.function_name, entry.qualifier): entry
        for entry in map(
            schema.provisioned_from_row,
            connection.execute(f"SELECT * FROM provisioned{where}", params),
        )
    }
    return Catalog(versions=versions, aliases=aliases, settings=settings, provisioned=provisioned)


def _merged(
    previous: Mapping[K, V],
    fresh: Mapping[K, V],
    owner: Callable[[K], str],
    function_name: str,
) -> dict[K, V]:
    """``previous`` without ``function_name``'s entries (``owner`` names an entry's
    function), plus that function's ``fresh`` entries."""
    kept = {key: value for key, value in previous.items() if owner(key) != function_name}
    kept.update(fresh)
    return kept
