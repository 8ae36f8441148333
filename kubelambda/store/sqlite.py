"""``SqliteStore``: the embedded adapter of the ``ManagementStore`` and ``ControllerStore``
ports (``kubelambda.ports``), and so of ``CatalogSource``.

Opened by the embedded launcher (``async with SqliteStore.open(home, region=...)``) and
handed to the gateway's management services, the invoke path (through ``subscribe``)
and the controller. Every write runs one transaction on the store thread
(``database``) on one function (a ``FunctionKey``: names are unique per namespace
only), re-reads that function's rows into a new ``Catalog``, and hands it to the
subscribers: that is the watch the invoke path and the autoscaler are fed by. Reads of
the catalog never touch the disk. Code packages are not kept here (``code``).
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
    CodePackage,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    ProvisionedStatus,
)
from kubelambda.ports.catalog import Catalog, CatalogListener
from kubelambda.store import (
    aliases,
    event_invoke_configs,
    function_settings,
    functions,
    provisioned,
    rows,
    schema,
    snapshot,
)
from kubelambda.store.database import Database

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteStore:
    """Functions, versions, aliases and settings of every namespace in ``<home>/state.db``.

    ``region`` renders the ARNs of error messages only (``Function not found: arn:...``).
    """

    def __init__(self, database: Database, *, region: str, clock: Callable[[], datetime]) -> None:
        self._database = database
        self._region = region
        self._clock = clock
        self._listeners: list[CatalogListener] = []
        self._catalog = Catalog()
        # The catalog as of the last commit, kept by the store thread (``_write``).
        self._committed = Catalog()
        self._generation = 0
        self._published = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls, home: Path, *, region: str, clock: Callable[[], datetime] | None = None
    ) -> AsyncIterator[SqliteStore]:
        """Open (creating or migrating) ``<home>/state.db``; closed on exit."""
        database = await Database.open(home / "state.db", migrate=schema.migrate)
        store = cls(database, region=region, clock=clock or _utc_now)
        try:
            store._committed = store._catalog = await database.read(snapshot.build)
            yield store
        finally:
            await database.aclose()

    # -- CatalogSource ------------------------------------------------------------------

    async def catalog(self) -> Catalog:
        return self._catalog

    def subscribe(self, listener: CatalogListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- ControllerStore ----------------------------------------------------------------

    async def finish_package(
        self, function: FunctionKey, code_sha256: str, *, error: str | None
    ) -> bool:
        """Settle the versions of ``function`` waiting for this package (see ``functions``)."""
        return await self._write(
            function,
            lambda c: functions.finish_package(c, function, code_sha256, error=error),
            changed=bool,
        )

    async def set_provisioned_status(
        self,
        function: FunctionKey,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        await self._write(
            function,
            lambda c: provisioned.set_status(
                c, function, qualifier, allocated=allocated, status=status, reason=reason
            ),
            # The controller repeats its report every tick: an unchanged one is no news.
            changed=bool,
        )

    # -- ManagementStore: functions and versions ----------------------------------------

    async def create_function(
        self, latest: FunctionVersion, settings: FunctionSettings, *, publish: bool
    ) -> FunctionVersion:
        """Insert ``latest`` (stamped here) and its settings; version 1 too when ``publish``.
        Returns what the API reports: version 1 if published, else ``$LATEST``."""
        now = self._now()
        stamped = latest.with_changes(last_modified=now, revision_id=_new_revision())
        return await self._write(
            latest.key,
            lambda c: functions.insert_function(c, stamped, settings, publish=publish, now=now),
        )

    async def get_version(self, function: FunctionKey, version: str) -> FunctionVersion:
        return await self._database.read(
            lambda c: functions.select_version(c, function, version, region=self._region)
        )

    async def get_settings(self, function: FunctionKey) -> FunctionSettings:
        return await self._database.read(
            lambda c: functions.select_settings(c, function, region=self._region)
        )

    async def list_functions(
        self,
        namespace: str,
        *,
        after: tuple[str, int] | None,
        limit: int,
        all_versions: bool,
    ) -> list[FunctionVersion]:
        return await self._database.read(
            lambda c: functions.list_functions(
                c, namespace, after=after, limit=limit, all_versions=all_versions
            )
        )

    async def list_versions(
        self, function: FunctionKey, *, after: int, limit: int
    ) -> list[FunctionVersion]:
        return await self._database.read(
            lambda c: functions.list_versions(
                c, function, after=after, limit=limit, region=self._region
            )
        )

    async def update_configuration(
        self,
        function: FunctionKey,
        change: Callable[[FunctionVersion], FunctionVersion],
        *,
        expected_revision_id: str | None,
    ) -> FunctionVersion:
        now = self._now()
        return await self._write(
            function,
            lambda c: functions.update_latest(
                c,
                function,
                change,
                expected_revision_id=expected_revision_id,
                now=now,
                region=self._region,
            ),
        )

    async def begin_code_update(
        self,
        function: FunctionKey,
        package: CodePackage,
        *,
        expected_revision_id: str | None,
        publish: bool,
    ) -> FunctionVersion:
        now = self._now()
        return await self._write(
            function,
            lambda c: functions.begin_code_update(
                c,
                function,
                package,
                expected_revision_id=expected_revision_id,
                publish=publish,
                now=now,
                region=self._region,
            ),
        )

    async def publish_version(
        self,
        function: FunctionKey,
        *,
        description: str | None,
        expected_revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion:
        now = self._now()
        return await self._write(
            function,
            lambda c: functions.publish(
                c,
                function,
                description=description,
                expected_revision_id=expected_revision_id,
                code_sha256=code_sha256,
                now=now,
                region=self._region,
            ),
        )

    async def delete_function(self, function: FunctionKey) -> None:
        await self._write(
            function, lambda c: functions.delete_function(c, function, region=self._region)
        )

    async def delete_version(self, function: FunctionKey, version: str) -> None:
        await self._write(
            function,
            lambda c: functions.delete_version(c, function, version, region=self._region),
        )

    # -- ManagementStore: aliases -------------------------------------------------------

    async def create_alias(self, alias: Alias) -> Alias:
        return await self._write(
            alias.key, lambda c: aliases.insert_alias(c, alias, region=self._region)
        )

    async def get_alias(self, function: FunctionKey, name: str) -> Alias:
        return await self._database.read(
            lambda c: aliases.select_alias(c, function, name, region=self._region)
        )

    async def update_alias(
        self,
        function: FunctionKey,
        name: str,
        change: Callable[[Alias], Alias],
        *,
        expected_revision_id: str | None,
    ) -> Alias:
        return await self._write(
            function,
            lambda c: aliases.update_alias(
                c,
                function,
                name,
                change,
                expected_revision_id=expected_revision_id,
                region=self._region,
            ),
        )

    async def delete_alias(self, function: FunctionKey, name: str) -> None:
        await self._write(
            function, lambda c: aliases.delete_alias(c, function, name, region=self._region)
        )

    async def list_aliases(
        self, function: FunctionKey, *, function_version: str | None, after: str, limit: int
    ) -> list[Alias]:
        return await self._database.read(
            lambda c: aliases.list_aliases(
                c,
                function,
                function_version=function_version,
                after=after,
                limit=limit,
                region=self._region,
            )
        )

    # -- ManagementStore: tags, reserved and provisioned concurrency --------------------

    async def tag(self, function: FunctionKey, tags: Mapping[str, str]) -> FunctionSettings:
        return await self._write(
            function, lambda c: function_settings.tag(c, function, tags, region=self._region)
        )

    async def untag(self, function: FunctionKey, keys: Iterable[str]) -> FunctionSettings:
        keys = tuple(keys)
        return await self._write(
            function, lambda c: function_settings.untag(c, function, keys, region=self._region)
        )

    async def put_reserved_concurrency(self, function: FunctionKey, reserved: int) -> None:
        await self._write(
            function,
            lambda c: function_settings.put_reserved(c, function, reserved, region=self._region),
        )

    async def delete_reserved_concurrency(self, function: FunctionKey) -> None:
        await self._write(
            function,
            lambda c: function_settings.delete_reserved(c, function, region=self._region),
        )

    async def put_provisioned(
        self, function: FunctionKey, qualifier: str, *, requested: int
    ) -> ProvisionedConcurrency:
        now = self._now()
        return await self._write(
            function,
            lambda c: provisioned.put_provisioned(
                c, function, qualifier, requested=requested, now=now, region=self._region
            ),
        )

    async def get_provisioned(
        self, function: FunctionKey, qualifier: str
    ) -> ProvisionedConcurrency:
        return await self._database.read(
            lambda c: provisioned.select_provisioned(c, function, qualifier, region=self._region)
        )

    async def delete_provisioned(self, function: FunctionKey, qualifier: str) -> None:
        await self._write(
            function,
            lambda c: provisioned.delete_provisioned(c, function, qualifier, region=self._region),
        )

    async def list_provisioned(
        self, function: FunctionKey, *, after: str, limit: int
    ) -> list[ProvisionedConcurrency]:
        return await self._database.read(
            lambda c: provisioned.list_provisioned(
                c, function, after=after, limit=limit, region=self._region
            )
        )

    # -- ManagementStore: event invoke configs ------------------------------------------

    async def put_event_invoke_config(self, config: EventInvokeConfig) -> EventInvokeConfig:
        now = self._now()
        return await self._write(
            config.key,
            lambda c: event_invoke_configs.put_event_invoke_config(
                c, config, now=now, region=self._region
            ),
        )

    async def get_event_invoke_config(
        self, function: FunctionKey, qualifier: str
    ) -> EventInvokeConfig:
        return await self._database.read(
            lambda c: event_invoke_configs.select_event_invoke_config(
                c, function, qualifier, region=self._region
            )
        )

    async def delete_event_invoke_config(self, function: FunctionKey, qualifier: str) -> None:
        await self._write(
            function,
            lambda c: event_invoke_configs.delete_event_invoke_config(
                c, function, qualifier, region=self._region
            ),
        )

    async def list_event_invoke_configs(
        self, function: FunctionKey, *, after: str, limit: int
    ) -> list[EventInvokeConfig]:
        return await self._database.read(
            lambda c: event_invoke_configs.list_event_invoke_configs(
                c, function, after=after, limit=limit, region=self._region
            )
        )

    # -- internals ----------------------------------------------------------------------

    def _now(self) -> str:
        """The current time in Lambda's ``LastModified`` form, from the injected clock."""
        return rows.format_timestamp(self._clock())

    async def _write(
        self,
        function: FunctionKey,
        change: Callable[[sqlite3.Connection], T],
        *,
        changed: Callable[[T], bool] = lambda _: True,
    ) -> T:
        """Commit ``change`` (which touches ``function`` only), then publish the catalog
        with that function's entries re-read."""
        self._generation += 1
        generation = self._generation

        def refresh(connection: sqlite3.Connection) -> Catalog:
            # Runs on the store thread right after the commit, in commit order, so each
            # refresh starts from the catalog of the commit before it.
            self._committed = snapshot.refresh(connection, function, self._committed)
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
