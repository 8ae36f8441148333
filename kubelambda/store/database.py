"""A SQLite connection of the embedded mode, owned by one worker thread.

``SqliteStore`` (``state.db``) and ``SqliteQueue`` (``queue.db``) each run every read and
write through their own ``Database``. All SQL runs on a single
dedicated thread that owns the one ``sqlite3`` connection: the event loop never waits on
disk (a WAL commit, a cold page read, or a catalog rebuild over many functions can take
milliseconds), sqlite's one-thread-per-connection rule holds without locks, and writes
are serialised in submission order, which is what makes "one write, one new catalog"
easy to reason about. A write runs as one ``BEGIN IMMEDIATE`` transaction; an error
raised inside it, or by its commit (a full disk), rolls it back and reaches the caller
unchanged. Opening creates the file, or migrates an older one (the owner's ``migrate``:
``schema`` or ``queue_schema``), before anything else runs.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

__all__ = ["Database"]

T = TypeVar("T")
U = TypeVar("U")


class Database:
    """One connection on one thread; open with ``await Database.open(path, migrate=...)``."""

    def __init__(self, executor: ThreadPoolExecutor, connection: sqlite3.Connection) -> None:
        self._executor = executor
        self._connection = connection

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        migrate: Callable[[sqlite3.Connection], None],
        busy_timeout: float = 5.0,
    ) -> Database:
        """Open ``path``; a write waits up to ``busy_timeout`` seconds for another
        process's to finish before it fails."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kubelambda-{path.stem}")
        loop = asyncio.get_running_loop()
        connect = functools.partial(_connect, path, migrate=migrate, busy_timeout=busy_timeout)
        try:
            connection = await loop.run_in_executor(executor, connect)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(executor, connection)

    async def read(self, query: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(lambda: query(self._connection))

    async def write(
        self,
        change: Callable[[sqlite3.Connection], T],
        then: Callable[[sqlite3.Connection], U],
    ) -> tuple[T, U]:
        """Apply ``change`` in one transaction, then read ``then`` from the committed state.

        Both run back to back on the store thread, so ``then`` (the catalog rebuild) sees
        exactly this commit and nothing later.
        """

        def run() -> tuple[T, U]:
            return _transact(self._connection, change), then(self._connection)

        return await self._run(run)

    async def transaction(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """Apply ``change`` in one transaction: all of it is committed, or none of it."""
        return await self._run(lambda: _transact(self._connection, change))

    async def aclose(self) -> None:
        await self._run(self._connection.close)
        self._executor.shutdown(wait=True)

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


def _transact(connection: sqlite3.Connection, change: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = change(connection)
        connection.commit()
    except BaseException:
        # A failed COMMIT may already have rolled back (an I/O error) or may not (busy).
        if connection.in_transaction:
            connection.rollback()
        raise
    return result


def _connect(
    path: Path, *, migrate: Callable[[sqlite3.Connection], None], busy_timeout: float
) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are begun explicitly (BEGIN IMMEDIATE takes the
    # write lock up front, so a read-modify-write cannot be overtaken by another writer).
    connection = sqlite3.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives a process crash; only an OS crash can lose
    # the last commits, never corrupt the file.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
    try:
        migrate(connection)
    except BaseException:
        connection.close()
        raise
    return connection
