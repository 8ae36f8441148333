"""The SQLite store on disk: durability across reopen, WAL, schema guard, concurrent writes."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from kubelambda.models import (
    DEFAULT_NAMESPACE,
    LATEST,
    Alias,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    Target,
)
from kubelambda.store import SqliteStore
from tests import factories

REGION = "us-west-2"


def version(name: str, namespace: str = DEFAULT_NAMESPACE) -> FunctionVersion:
    return factories.function_version(name, namespace=namespace, revision_id="", last_modified="")


def key(name: str, namespace: str = DEFAULT_NAMESPACE) -> FunctionKey:
    return FunctionKey(namespace, name)


async def test_state_survives_a_reopen(tmp_path: Path):
    f = key("f")
    async with SqliteStore.open(tmp_path, region=REGION) as store:
        await store.create_function(
            version("f"), FunctionSettings(DEFAULT_NAMESPACE, "f", tags={"a": "b"}), publish=True
        )
        await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""))
        await store.put_reserved_concurrency(f, 3)
    async with SqliteStore.open(tmp_path, region=REGION) as reopened:
        catalog = await reopened.catalog()
    assert set(catalog.versions) == {
        Target(DEFAULT_NAMESPACE, "f", LATEST),
        Target(DEFAULT_NAMESPACE, "f", "1"),
    }
    assert catalog.aliases[(f, "live")].function_version == "1"
    assert (catalog.settings[f].reserved_concurrency, dict(catalog.settings[f].tags)) == (
        3,
        {"a": "b"},
    )


async def test_database_is_in_wal_mode(tmp_path: Path):
    async with SqliteStore.open(tmp_path, region=REGION):
        pass
    with sqlite3.connect(tmp_path / "state.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_a_new_database_is_at_schema_version_2(tmp_path: Path):
    async with SqliteStore.open(tmp_path, region=REGION):
        pass
    with sqlite3.connect(tmp_path / "state.db") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)


async def test_a_database_from_a_newer_schema_is_refused(tmp_path: Path):
    with sqlite3.connect(tmp_path / "state.db") as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="schema version 99"):
        async with SqliteStore.open(tmp_path, region=REGION):
            pass


async def test_concurrent_writes_all_land_and_the_last_catalog_has_them_all(tmp_path: Path):
    async with SqliteStore.open(tmp_path, region=REGION) as store:
        seen = []
        store.subscribe(seen.append)
        names = [f"fn{i}" for i in range(20)]
        await asyncio.gather(
            *(
                store.create_function(
                    version(n), FunctionSettings(DEFAULT_NAMESPACE, n), publish=False
                )
                for n in names
            )
        )
        assert {t.function_name for t in (await store.catalog()).versions} == set(names)
        assert [len(c.versions) for c in seen] == sorted(len(c.versions) for c in seen)
        assert len(seen[-1].versions) == 20


async def test_catalog_reads_do_not_wait_for_the_disk(tmp_path: Path):
    async with SqliteStore.open(tmp_path, region=REGION) as store:
        await store.create_function(
            version("f"), FunctionSettings(DEFAULT_NAMESPACE, "f"), publish=False
        )
        first = await store.catalog()
        assert await store.catalog() is first


async def test_refreshed_catalog_equals_one_built_from_scratch(tmp_path: Path):
    async with SqliteStore.open(tmp_path, region=REGION) as store:
        for namespace in ("default", "other"):
            for name in ("a", "b", "c"):
                await store.create_function(
                    version(name, namespace), FunctionSettings(namespace, name), publish=True
                )
        b = key("b")
        await store.create_alias(Alias(DEFAULT_NAMESPACE, "b", "live", "1", ""))
        await store.put_provisioned(b, "live", requested=2)
        await store.tag(key("c", "other"), {"team": "x"})
        await store.update_configuration(
            key("a"), lambda v: v.with_changes(timeout=30), expected_revision_id=None
        )
        await store.delete_function(key("c"))
        refreshed = await store.catalog()
    async with SqliteStore.open(tmp_path, region=REGION) as reopened:
        assert await reopened.catalog() == refreshed
    assert Target("other", "c", LATEST) in refreshed.versions
    assert Target(DEFAULT_NAMESPACE, "c", LATEST) not in refreshed.versions
