"""The package settler over the real SQLite store, the real code store and the real local
backend: a created function goes from Pending to Active (or Failed), and a package
nothing uses any more is collected from the code store and the backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from controller_testkit import HANDLER, REGION, make_zip, zip_with_entry

from controller.autoscaler.loop import Autoscaler
from controller.backends.local import LocalProcessBackend
from controller.packages.settler import PackageSettler
from kubelambda.models import (
    LATEST,
    CodePackage,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
    Target,
)
from kubelambda.ports.code import PackageMissing
from kubelambda.ports.endpoints import Endpoint
from kubelambda.store import LocalCodeStore, SqliteStore

Until = Callable[..., Awaitable[None]]
Invoke = Callable[[Endpoint, dict[str, object]], Coroutine[Any, Any, httpx.Response]]
MakeVersion = Callable[..., FunctionVersion]

GRACE_SECONDS = 60.0


class Clock:
    """Wall-clock time (the code store compares it with file times), shifted on demand."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore.open(tmp_path / "state", region=REGION) as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def settler(
    store: SqliteStore,
    code_store: LocalCodeStore,
    backend: LocalProcessBackend,
    clock: Clock,
) -> AsyncIterator[PackageSettler]:
    running = PackageSettler(store, code_store, backend, grace_seconds=GRACE_SECONDS, clock=clock)
    await running.start()
    try:
        yield running
    finally:
        await running.aclose()


async def create_pending(
    store: SqliteStore, make_version: MakeVersion, package: CodePackage, *, publish: bool
) -> FunctionVersion:
    """Create a function as the management API does: Pending until its package settles."""
    latest = make_version(
        version=LATEST,
        code_sha256=package.code_sha256,
        code_size=package.size,
        state=State.PENDING,
    )
    settings = FunctionSettings(latest.namespace, latest.function_name)
    return await store.create_function(latest, settings, publish=publish)


async def settled(store: SqliteStore, target: Target, within: float = 20.0) -> FunctionVersion:
    """The version once it no longer awaits its package, as the store's watch reports it."""
    changed = asyncio.Event()
    unsubscribe = store.subscribe(lambda _: changed.set())
    try:
        async with asyncio.timeout(within):
            while (version := (await store.catalog()).versions[target]).awaits_package:
                await changed.wait()
                changed.clear()
    finally:
        unsubscribe()
    return version


def unpacked(tmp_path: Path, package: CodePackage) -> Path:
    return tmp_path / "home" / "code" / "unpacked" / package.sha256_hex


async def test_a_created_function_becomes_active_with_its_package_unpacked(
    tmp_path: Path,
    store: SqliteStore,
    settler: PackageSettler,
    handler_package: CodePackage,
    make_version: MakeVersion,
) -> None:
    published = await create_pending(store, make_version, handler_package, publish=True)
    pending_at_first = published.state

    latest = await settled(store, Target(published.namespace, published.function_name, LATEST))
    one = await settled(store, published.target)

    assert pending_at_first is State.PENDING
    assert [(v.state, v.last_update_status, v.state_reason) for v in (latest, one)] == [
        (State.ACTIVE, LastUpdateStatus.SUCCESSFUL, ""),
        (State.ACTIVE, LastUpdateStatus.SUCCESSFUL, ""),
    ]
    assert (unpacked(tmp_path, handler_package) / "app.py").read_text() == HANDLER


async def test_a_broken_package_leaves_the_function_failed_with_a_reason(
    tmp_path: Path,
    store: SqliteStore,
    settler: PackageSettler,
    code_store: LocalCodeStore,
    make_version: MakeVersion,
) -> None:
    broken = await code_store.put(zip_with_entry("../escaped.py"))
    created = await create_pending(store, make_version, broken, publish=False)

    failed = await settled(store, created.target)

    assert (failed.state, failed.last_update_status) == (State.FAILED, LastUpdateStatus.FAILED)
    assert "outside the package" in failed.state_reason
    assert failed.last_update_status_reason == failed.state_reason
    assert not unpacked(tmp_path, broken).exists()
    assert not (tmp_path / "home" / "code" / "escaped.py").exists()


async def test_a_settled_function_runs_once_the_autoscaler_is_poked(
    store: SqliteStore,
    settler: PackageSettler,
    backend: LocalProcessBackend,
    handler_package: CodePackage,
    make_version: MakeVersion,
    until: Until,
    invoke: Invoke,
) -> None:
    created = await create_pending(store, make_version, handler_package, publish=False)
    async with Autoscaler(store, backend, tick_seconds=0.2) as autoscaler:
        await settled(store, created.target)
        autoscaler.poke(created.target)
        await until(lambda: bool(backend.endpoints(created.target)))
        answer = await invoke(backend.endpoints(created.target)[0], {})

    assert (answer.status_code, answer.json()["function"]) == (200, created.function_name)


async def test_a_settled_code_update_has_the_replaced_package_collected(
    tmp_path: Path,
    store: SqliteStore,
    settler: PackageSettler,
    code_store: LocalCodeStore,
    handler_package: CodePackage,
    make_version: MakeVersion,
    clock: Clock,
    until: Until,
) -> None:
    created = await create_pending(store, make_version, handler_package, publish=False)
    await settled(store, created.target)
    newer = await code_store.put(make_zip({"app.py": HANDLER, "extra.txt": "v2"}))
    updating = await store.begin_code_update(
        created.key, newer, expected_revision_id=None, publish=False
    )
    # Both zips are past the grace from here on; only references keep one. (Not before
    # the update: until then nothing refers to the newer zip.)
    clock.ahead = 2 * GRACE_SECONDS

    updated = await settled(store, created.target)
    # The settle itself asks for a collection: no tick needed (collect_every is 300 s).
    await until(lambda: not unpacked(tmp_path, handler_package).exists())

    assert (updating.last_update_status, updating.running_package) == (
        LastUpdateStatus.IN_PROGRESS,
        handler_package,
    )
    assert (updated.last_update_status, updated.running_package) == (
        LastUpdateStatus.SUCCESSFUL,
        newer,
    )
    with pytest.raises(PackageMissing):
        await code_store.location(handler_package.sha256_hex)
    assert (unpacked(tmp_path, newer) / "extra.txt").read_text() == "v2"
    assert await settler.collect() == []
