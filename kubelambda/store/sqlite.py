"""``SqliteStore``: the embedded adapter of the ``Store`` port, plus the management writes.

Opened by the embedded launcher (``async with SqliteStore.open(home) as store``) and
handed to the gateway's management services, the invoke path (through ``subscribe``)
and the controller. Every write runs one transaction on the store thread
(``database``), rebuilds the ``Catalog`` from the committed state, and hands it to the
subscribers: that is the watch the invoke path and the autoscaler are fed by. Reads of
the catalog never touch the disk.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from kubelambda.models import (
    Alias,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    ProvisionedStatus,
)
from kubelambda.ports import Catalog
from kubelambda.store import aliases, function_settings, functions, provisioned, schema, snapshot
from kubelambda.store.database import Database
from kubelambda.store.packages import CodePackages

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[Catalog], None]


class SqliteStore:
    """Functions, versions, aliases and settings in ``<home>/state.db``; code in ``<home>/code``."""

    def __init__(
        self, database: Database, packages: CodePackages, *, clock: Callable[[], datetime]
    ) -> None:
        self.packages = packages
        self._database = database
        self._clock = clock
        self._listeners: list[Listener] = []
        self._catalog = Catalog()
        # The catalog as of the last commit, kept by the store thread (``_write``).
        self._committed = Catalog()
        self._generation = 0
        self._published = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls, home: Path, *, clock: Callable[[], datetime] | None = None
    ) -> AsyncIterator[SqliteStore]:
        database = await Database.open(home / "state.db")
        store = cls(database, CodePackages(home / "code"), clock=clock or _utc_now)
        try:
            store._committed = store._catalog = await database.read(snapshot.build)
            yield store
        finally:
            await database.aclose()

    # -- the Store port -------------------------------------------------------------

    async def catalog(self) -> Catalog:
        return self._catalog

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def set_provisioned_status(
        self,
        function_name: str,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        await self._write(
            function_name,
            lambda c: provisioned.set_status(
                c, function_name, qualifier, allocated=allocated, status=status, reason=reason
            ),
            # The controller repeats its report every tick: an unchanged one is no news.
            changed=bool,
        )

    # -- functions and versions ------------------------------------------------------

    async def create_function(
        self, latest: FunctionVersion, settings: FunctionSettings, *, publish: bool
    ) -> FunctionVersion:
        """Insert ``latest`` (stamped here) and its settings; version 1 too when ``publish``.
        Returns what the API reports: version 1 if published, else ``$LATEST``."""
        now = self.now()
        stamped = latest.with_changes(last_modified=now, revision_id=_new_revision())
        return await self._write(
            latest.function_name,
            lambda c: functions.insert_function(c, stamped, settings, publish=publish, now=now),
        )

    async def get_version(self, name: str, version: str) -> FunctionVersion:
        return await self._database.read(lambda c: functions.select_version(c, name, version))

    async def get_settings(self, name: str) -> FunctionSettings:
        return await self._database.read(lambda c: functions.select_settings(c, name))

    async def list_functions(
        self, *, after: tuple[str, int] | None, limit: int, all_versions: bool
    ) -> list[FunctionVersion]:
        return await self._database.read(
            lambda c: functions.list_functions(
                c, after=after, limit=limit, all_versions=all_versions
            )
        )

    async def list_versions(self, name: str, *, after: int, limit: int) -> list[FunctionVersion]:
        return await self._database.read(
            lambda c: functions.list_versions(c, name, after=after, limit=limit)
        )

    async def update_configuration(
        self,
        name: str,
        change: Callable[[FunctionVersion], FunctionVersion],
        *,
        expected_revision_id: str | None,
    ) -> FunctionVersion:
        now = self.now()
        return await self._write(
            name,
            lambda c: functions.update_latest(
                c, name, change, expected_revision_id=expected_revision_id, now=now
            ),
        )

    async def begin_code_update(
        self,
        name: str,
        *,
        code_sha256: str,
        code_size: int,
        code_path: str,
        expected_revision_id: str | None,
        publish: bool,
    ) -> FunctionVersion:
        now = self.now()
        return await self._write(
            name,
            lambda c: functions.begin_code_update(
                c,
                name,
                code_sha256=code_sha256,
                code_size=code_size,
                code_path=code_path,
                expected_revision_id=expected_revision_id,
                publish=publish,
                now=now,
            ),
        )

    async def finish_package(self, name: str, code_sha256: str, *, error: str | None) -> bool:
        """Settle the versions of ``name`` waiting for this package (see ``functions``)."""
        return await self._write(
            name,
            lambda c: functions.finish_package(c, name, code_sha256, error=error),
            changed=bool,
        )

    async def publish_version(
        self,
        name: str,
        *,
        description: str | None,
        expected_revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion:
        now = self.now()
        return await self._write(
            name,
            lambda c: functions.publish(
                c,
                name,
                description=description,
                expected_revision_id=expected_revision_id,
                code_sha256=code_sha256,
                now=now,
            ),
        )

    async def delete_function(self, name: str) -> None:
        await self._write(name, lambda c: functions.delete_function(c, name))

    async def delete_version(self, name: str, version: str) -> None:
        await self._write(name, lambda c: functions.delete_version(c, name, version))

    # -- aliases ---------------------------------------------------------------------

    async def create_alias(self, alias: Alias) -> Alias:
        return await self._write(alias.function_name, lambda c: aliases.insert_alias(c, alias))

    async def get_alias(self, function_name: str, name: str) -> Alias:
        return await self._database.read(lambda c: aliases.select_alias(c, function_name, name))

    async def update_alias(
        self,
        function_name: str,
        name: str,
        change: Callable[[Alias], Alias],
        *,
        expected_revision_id: str | None,
    ) -> Alias:
        return await self._write(
            function_name,
            lambda c: aliases.update_alias(
                c, function_name, name, change, expected_revision_id=expected_revision_id
            ),
        )

    async def delete_alias(self, function_name: str, name: str) -> None:
        await self._write(function_name, lambda c: aliases.delete_alias(c, function_name, name))

    async def list_aliases(
        self, function_name: str, *, function_version: str | None, after: str, limit: int
    ) -> list[Alias]:
        return await self._database.read(
            lambda c: aliases.list_aliases(
                c, function_name, function_version=function_version, after=after, limit=limit
            )
        )

    # -- settings: tags, reserved and provisioned concurrency -------------------------

    async def tag(self, name: str, tags: Mapping[str, str]) -> FunctionSettings:
        return await self._write(name, lambda c: function_settings.tag(c, name, tags))

    async def untag(self, name: str, keys: Iterable[str]) -> FunctionSettings:
        keys = tuple(keys)
        return await self._write(name, lambda c: function_settings.untag(c, name, keys))

    async def put_reserved_concurrency(self, name: str, reserved: int) -> None:
        await self._write(name, lambda c: function_settings.put_reserved(c, name, reserved))

    async def delete_reserved_concurrency(self, name: str) -> None:
        await self._write(name, lambda c: function_settings.delete_reserved(c, name))

    async def put_provisioned(
        self, name: str, qualifier: str, *, requested: int
    ) -> ProvisionedConcurrency:
        now = self.now()
        return await self._write(
            name,
            lambda c: provisioned.put_provisioned(c, name, qualifier, requested=requested, now=now),
        )

    async def get_provisioned(self, name: str, qualifier: str) -> ProvisionedConcurrency:
        return await self._database.read(
            lambda c: provisioned.select_provisioned(c, name, qualifier)
        )

    async def delete_provisioned(self, name: str, qualifier: str) -> None:
        await self._write(name, lambda c: provisioned.delete_provisioned(c, name, qualifier))

    async def list_provisioned(
        self, name: str, *, after: str, limit: int
    ) -> list[ProvisionedConcurrency]:
        return await self._database.read(
            lambda c: provisioned.list_provisioned(c, name, after=after, limit=limit)
        )

    # -- internals --------------------------------------------------------------------

    def now(self) -> str:
        """The current time in Lambda's ``LastModified`` form, from the injected clock."""
        return schema.format_timestamp(self._clock())

    async def _write(
        self,
        function_name: str,
        change: Callable[[sqlite3.Connection], T],
        *,
        changed: Callable[[T], bool] = lambda _: True,
    ) -> T:
        """Commit ``change`` (which touches ``function_name`` only), then publish the
        catalog with that function's entries re-read."""
        self._generation += 1
        generation = self._generation

        def refresh(connection: sqlite3.Connection) -> Catalog:
            # Runs on the store thread right after the commit, in commit order, so each
            # refresh starts from the catalog of the commit before it.
            self._committed = snapshot.refresh(connection, function_name, self._committed)
            return self._committed

        result, refreshed = await self._database.write(change, refresh)
        # Writes commit in submission order on the store thread, but the awaiting
        # coroutines may resume in any order: never replace a newer catalog by an older.
        if changed(result) and generation > self._published:
            self._published = generation
            self._catalog = refreshed
            self._notify(refreshed)
        return result

    def _notify(self, catalog: Catalog) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(catalog)
            except Exception:
                # One broken subscriber must not starve the others of the new catalog.
                log.exception("catalog listener failed listener=%r", listener)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _new_revision() -> str:
    return str(uuid.uuid4())
