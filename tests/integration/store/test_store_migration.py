"""A state.db written by an earlier release (schema version 1) is migrated in place at open.

The v1 file is built here from v1's own DDL (as ``kubelambda/store/schema.py`` had it
before namespaces) and filled with rows covering every table and column that matters.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from kubelambda.models import (
    DEFAULT_NAMESPACE,
    LATEST,
    Alias,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    LastUpdateStatus,
    ProvisionedConcurrency,
    ProvisionedStatus,
    State,
    Target,
)
from kubelambda.store import SqliteStore
from tests import factories

V1_DDL = """
CREATE TABLE functions (
    function_name TEXT PRIMARY KEY,
    tags TEXT NOT NULL DEFAULT '{}',
    reserved_concurrency INTEGER,
    last_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE versions (
    function_name TEXT NOT NULL REFERENCES functions(function_name) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    version TEXT NOT NULL,
    runtime TEXT NOT NULL,
    handler TEXT NOT NULL,
    role TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size INTEGER NOT NULL,
    code_path TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    memory_size INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    description TEXT NOT NULL,
    environment TEXT NOT NULL,
    package_type TEXT NOT NULL,
    state TEXT NOT NULL,
    last_update_status TEXT NOT NULL,
    state_reason TEXT NOT NULL DEFAULT '',
    last_update_status_reason TEXT NOT NULL DEFAULT '',
    serving_code_sha256 TEXT,
    serving_code_size INTEGER,
    serving_code_path TEXT,
    PRIMARY KEY (function_name, number)
);
CREATE TABLE aliases (
    function_name TEXT NOT NULL REFERENCES functions(function_name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    function_version TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    description TEXT NOT NULL,
    weights TEXT NOT NULL,
    PRIMARY KEY (function_name, name)
);
CREATE TABLE provisioned (
    function_name TEXT NOT NULL REFERENCES functions(function_name) ON DELETE CASCADE,
    qualifier TEXT NOT NULL,
    requested INTEGER NOT NULL,
    allocated INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (function_name, qualifier)
);
PRAGMA user_version = 1;
"""

REGION = "eu-north-1"
T0 = "2025-06-01T10:00:00.000+0000"


def code(content: str) -> CodePackage:
    data = content.encode()
    return CodePackage(hashlib.sha256(data).hexdigest(), len(data))


OLD = code("old")
NEW = code("new")
BROKEN = code("broken")


def v1_version(
    name: str,
    version: str,
    package: CodePackage,
    *,
    state: str = "Active",
    status: str = "Successful",
    status_reason: str = "",
    serving: CodePackage | None = None,
) -> dict[str, object]:
    return {
        "function_name": name,
        "number": 0 if version == LATEST else int(version),
        "version": version,
        "runtime": "python3.11",
        "handler": "app.handler",
        "role": "arn:aws:iam::123456789012:role/r",
        "code_sha256": package.code_sha256,
        "code_size": package.size,
        "code_path": f"/home/u/.kubelambda/code/unpacked/{package.sha256_hex}",
        "revision_id": f"rev-{name}-{version}",
        "last_modified": T0,
        "memory_size": 256,
        "timeout": 7,
        "description": f"{name} {version}",
        "environment": '{"COLOR": "red"}',
        "package_type": "Zip",
        "state": state,
        "last_update_status": status,
        "state_reason": "",
        "last_update_status_reason": status_reason,
        "serving_code_sha256": serving.code_sha256 if serving else None,
        "serving_code_size": serving.size if serving else None,
        "serving_code_path": f"/home/u/code/unpacked/{serving.sha256_hex}" if serving else None,
    }


V1_VERSIONS = [
    # f: a code update of $LATEST in progress (still serving OLD); versions 1 and 3
    # remain (2 was deleted, so the next one is 4).
    v1_version("f", LATEST, NEW, status="InProgress", serving=OLD),
    v1_version("f", "1", OLD),
    v1_version("f", "3", OLD),
    # g: a new function whose package is not settled yet.
    v1_version("g", LATEST, NEW, state="Pending", status="InProgress"),
    # h: a code update that failed, still serving the package before it.
    v1_version("h", LATEST, BROKEN, status="Failed", status_reason="bad zip", serving=OLD),
]


def write_v1(path: Path, *, orphan: bool = False) -> None:
    # Autocommit: each statement commits on its own, and the foreign-keys pragma (a no-op
    # inside a transaction) takes effect where it is set.
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.executescript(V1_DDL)
        connection.executemany(
            "INSERT INTO functions VALUES (?, ?, ?, ?)",
            [("f", '{"team": "x"}', 2, 3), ("g", "{}", None, 0), ("h", "{}", None, 0)],
        )
        columns = list(V1_VERSIONS[0])
        connection.executemany(
            f"INSERT INTO versions ({', '.join(columns)})"
            f" VALUES ({', '.join(':' + c for c in columns)})",
            V1_VERSIONS,
        )
        connection.execute(
            "INSERT INTO aliases VALUES ('f', 'live', '3', 'rev-live', 'prod', '{\"1\": 0.2}')"
        )
        connection.execute(
            "INSERT INTO provisioned VALUES ('f', 'live', 2, 1, 'IN_PROGRESS', '', ?)", (T0,)
        )
        if orphan:
            # A row v1's foreign keys would have refused: the migration must not drop it.
            connection.execute("PRAGMA foreign_keys=OFF")
            connection.execute("INSERT INTO aliases VALUES ('gone', 'live', '1', 'r', '', '{}')")
    finally:
        connection.close()


def expected_version(name: str, version: str, package: CodePackage, **changes: object):
    return factories.function_version(
        name,
        version,
        role="arn:aws:iam::123456789012:role/r",
        code_sha256=package.code_sha256,
        code_size=package.size,
        revision_id=f"rev-{name}-{version}",
        last_modified=T0,
        memory_size=256,
        timeout=7,
        description=f"{name} {version}",
        environment={"COLOR": "red"},
        last_update_status=LastUpdateStatus.SUCCESSFUL,
    ).with_changes(**changes)


def target(name: str, version: str) -> Target:
    return Target(DEFAULT_NAMESPACE, name, version)


F = FunctionKey(DEFAULT_NAMESPACE, "f")


async def test_every_v1_row_lands_in_the_default_namespace(tmp_path: Path):
    write_v1(tmp_path / "state.db")
    async with SqliteStore.open(tmp_path, region=REGION) as store:
        catalog = await store.catalog()
    assert dict(catalog.versions) == {
        target("f", LATEST): expected_version(
            "f",
            LATEST,
            NEW,
            last_update_status=LastUpdateStatus.IN_PROGRESS,
            serving_package=OLD,
        ),
        target("f", "1"): expected_version("f", "1", OLD),
        target("f", "3"): expected_version("f", "3", OLD),
        target("g", LATEST): expected_version(
            "g", LATEST, NEW, state=State.PENDING, last_update_status=LastUpdateStatus.IN_PROGRESS
        ),
        target("h", LATEST): expected_version(
            "h",
            LATEST,
            BROKEN,
            last_update_status=LastUpdateStatus.FAILED,
            last_update_status_reason="bad zip",
            serving_package=OLD,
        ),
    }
    assert dict(catalog.aliases) == {
        (F, "live"): Alias(
            DEFAULT_NAMESPACE,
            "f",
            "live",
            "3",
            "rev-live",
            description="prod",
            additional_version_weights={"1": 0.2},
        )
    }
    assert dict(catalog.settings) == {
        F: FunctionSettings(DEFAULT_NAMESPACE, "f", tags={"team": "x"}, reserved_concurrency=2),
        FunctionKey(DEFAULT_NAMESPACE, "g"): FunctionSettings(DEFAULT_NAMESPACE, "g"),
        FunctionKey(DEFAULT_NAMESPACE, "h"): FunctionSettings(DEFAULT_NAMESPACE, "h"),
    }
    assert dict(catalog.provisioned) == {
        (F, "live"): ProvisionedConcurrency(
            DEFAULT_NAMESPACE,
            "f",
            "live",
            requested=2,
            allocated=1,
            status=ProvisionedStatus.IN_PROGRESS,
            last_modified=T0,
        )
    }
    # v1 knew neither: every version keeps the default dead-letter topic (None above).
    assert dict(catalog.event_invoke_configs) == {}


async def test_migrated_versions_have_no_dead_letter_target(tmp_path: Path):
    write_v1(tmp_path / "state.db")
    async with SqliteStore.open(tmp_path, region=REGION):
        pass
    with sqlite3.connect(tmp_path / "state.db") as connection:
        assert connection.execute(
            "SELECT count(*), count(dead_letter_target_arn) FROM versions"
        ).fetchone() == (5, 0)
    connection.close()


async def test_the_migrated_schema_is_the_schema_of_a_new_file(tmp_path: Path):
    migrated, new = tmp_path / "migrated", tmp_path / "new"
    migrated.mkdir()
    write_v1(migrated / "state.db")
    for home in (migrated, new):
        async with SqliteStore.open(home, region=REGION):
            pass
    assert _schema(migrated / "state.db") == _schema(new / "state.db")


def _schema(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every table's columns and foreign keys, as SQLite reports them."""
    with sqlite3.connect(path) as connection:
        tables = [
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        schema = {
            table: [
                *connection.execute(f"PRAGMA table_info({table})"),
                *connection.execute(f"PRAGMA foreign_key_list({table})"),
            ]
            for table in tables
        }
    connection.close()
    return schema


async def test_the_migrated_file_has_the_v2_schema(tmp_path: Path):
    write_v1(tmp_path / "state.db")
    async with SqliteStore.open(tmp_path, region=REGION):
        pass
    with sqlite3.connect(tmp_path / "state.db") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        assert tables == [
            "aliases",
            "event_invoke_configs",
            "functions",
            "provisioned",
            "versions",
        ]
        for table in tables:
            columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
            assert "namespace" in columns
            assert not {"code_path", "serving_code_path"} & columns
    connection.close()


async def test_the_migrated_store_keeps_working_where_v1_left_off(tmp_path: Path):
    write_v1(tmp_path / "state.db")
    async with SqliteStore.open(tmp_path, region=REGION) as store:
        assert await store.finish_package(F, NEW.code_sha256, error=None)
        latest = await store.get_version(F, LATEST)
        assert (latest.last_update_status, latest.running_package) == (
            LastUpdateStatus.SUCCESSFUL,
            NEW,
        )
        published = await store.publish_version(
            F, description=None, expected_revision_id=None, code_sha256=None
        )
        assert published.version == "4"  # the v1 counter, not a reused number
        await store.delete_function(F)
        catalog = await store.catalog()
    # The foreign keys cascade in the new tables as they did in the old.
    assert {t.function_name for t in catalog.versions} == {"g", "h"}
    assert (catalog.aliases, catalog.provisioned) == ({}, {})


async def test_a_v1_file_that_cannot_migrate_whole_is_left_untouched(tmp_path: Path):
    path = tmp_path / "state.db"
    write_v1(path, orphan=True)
    with pytest.raises(sqlite3.IntegrityError):
        async with SqliteStore.open(tmp_path, region=REGION):
            pass
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (1,)
        assert connection.execute("SELECT count(*) FROM versions").fetchone() == (5,)
        assert connection.execute("SELECT count(*) FROM aliases").fetchone() == (2,)
        assert (
            connection.execute("SELECT name FROM sqlite_master WHERE name LIKE 'v1_%'").fetchall()
            == []
        )
    connection.close()
