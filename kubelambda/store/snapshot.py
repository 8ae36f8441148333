"""Catalog snapshots of the SQLite store: built whole at open, refreshed per function.

``SqliteStore`` calls ``build`` once when it opens and ``refresh`` on the store thread
after every commit. Every write touches one function (a ``FunctionKey``), so a refresh
re-reads that function's rows and reuses every other entry of the previous (immutable)
catalog: the cost of a write stays proportional to one function, not to the whole store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from typing import TypeVar

from kubelambda.models import FunctionKey
from kubelambda.ports.catalog import Catalog
from kubelambda.store import functions, rows

__all__ = ["build", "refresh"]

K = TypeVar("K")
V = TypeVar("V")


def build(connection: sqlite3.Connection) -> Catalog:
    return _read(connection, "", {})


def refresh(connection: sqlite3.Connection, function: FunctionKey, previous: Catalog) -> Catalog:
    fresh = _read(connection, f" WHERE {functions.KEY}", rows.key_params(function))
    return Catalog(
        versions=_merged(previous.versions, fresh.versions, lambda t: t.function, function),
        aliases=_merged(previous.aliases, fresh.aliases, lambda k: k[0], function),
        settings=_merged(previous.settings, fresh.settings, lambda k: k, function),
        provisioned=_merged(previous.provisioned, fresh.provisioned, lambda k: k[0], function),
        event_invoke_configs=_merged(
            previous.event_invoke_configs, fresh.event_invoke_configs, lambda k: k[0], function
        ),
    )


def _read(connection: sqlite3.Connection, where: str, params: Mapping[str, str]) -> Catalog:
    versions = {
        version.target: version
        for version in map(
            rows.version_from_row, connection.execute(f"SELECT * FROM versions{where}", params)
        )
    }
    aliases = {
        (alias.key, alias.name): alias
        for alias in map(
            rows.alias_from_row, connection.execute(f"SELECT * FROM aliases{where}", params)
        )
    }
    settings = {
        entry.key: entry
        for entry in map(
            rows.settings_from_row, connection.execute(f"SELECT * FROM functions{where}", params)
        )
    }
    provisioned = {
        (entry.key, entry.qualifier): entry
        for entry in map(
            rows.provisioned_from_row,
            connection.execute(f"SELECT * FROM provisioned{where}", params),
        )
    }
    event_invoke_configs = {
        (entry.key, entry.qualifier): entry
        for entry in map(
            rows.event_invoke_config_from_row,
            connection.execute(f"SELECT * FROM event_invoke_configs{where}", params),
        )
    }
    return Catalog(
        versions=versions,
        aliases=aliases,
        settings=settings,
        provisioned=provisioned,
        event_invoke_configs=event_invoke_configs,
    )


def _merged(
    previous: Mapping[K, V],
    fresh: Mapping[K, V],
    owner: Callable[[K], FunctionKey],
    function: FunctionKey,
) -> dict[K, V]:
    """``previous`` without ``function``'s entries (``owner`` names an entry's function),
    plus that function's ``fresh`` entries."""
    kept = {key: value for key, value in previous.items() if owner(key) != function}
    kept.update(fresh)
    return kept
