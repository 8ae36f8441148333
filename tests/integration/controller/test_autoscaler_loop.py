"""The autoscaler loop with the real SQLite store, the real local backend and real agents.

Functions are created Active here (their package is in the code store already); settling
a Pending one is the package settler's job, tested in test_package_settler_store.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from controller_testkit import REGION

from controller.autoscaler.loop import Autoscaler
from controller.backends.local import LocalProcessBackend
from kubelambda.models import (
    IDLE_TIMEOUT_TAG,
    FunctionSettings,
    FunctionVersion,
    ProvisionedStatus,
    Target,
    frozen_mapping,
)
from kubelambda.ports.catalog import Catalog
from kubelambda.store import SqliteStore

Until = Callable[..., Awaitable[None]]
PidsOf = Callable[[str], list[int]]
MakeVersion = Callable[..., FunctionVersion]

# So long that only a poke, not the tick, can explain a prompt reaction.
SLOW_TICK_SECONDS = 60.0
FAST_TICK_SECONDS = 0.2
GATEWAY = "gateway-0"


class Watched:
    """The store's latest catalog, kept current by its own watch."""

    def __init__(self, store: SqliteStore) -> None:
        self.catalog = Catalog()
        store.subscribe(self._update)

    def _update(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def status(self, target: Target) -> ProvisionedStatus | None:
        config = self.catalog.provisioned.get((target.function, target.version))
        return None if config is None else config.status


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore.open(tmp_path / "state", region=REGION) as opened:
        yield opened


async def create_function(
    store: SqliteStore, version: FunctionVersion, *, idle_timeout: float
) -> Target:
    """Create the function and publish version 1, which is the target returned."""
    settings = FunctionSettings(
        version.namespace,
        version.function_name,
        tags=frozen_mapping({IDLE_TIMEOUT_TAG: str(idle_timeout)}),
    )
    latest = version.with_changes(version="$LATEST")
    created = await store.create_function(latest, settings, publish=True)
    return created.target


async def test_a_poke_scales_from_zero_without_waiting_for_the_tick(
    store: SqliteStore, backend: LocalProcessBackend, make_version: MakeVersion, until: Until
) -> None:
    target = await create_function(store, make_version(), idle_timeout=60.0)
    async with Autoscaler(store, backend, tick_seconds=SLOW_TICK_SECONDS) as autoscaler:
        poked_at = time.monotonic()
        autoscaler.poke(target)
        await until(lambda: bool(backend.endpoints(target)), within=SLOW_TICK_SECONDS / 2)
        ready_after = time.monotonic() - poked_at

    assert ready_after < 10.0


async def test_an_idle_target_returns_to_zero_after_its_idle_timeout(
    store: SqliteStore,
    backend: LocalProcessBackend,
    make_version: MakeVersion,
    until: Until,
    pids_of: PidsOf,
) -> None:
    target = await create_function(store, make_version(), idle_timeout=1.0)
    async with Autoscaler(store, backend, tick_seconds=FAST_TICK_SECONDS) as autoscaler:
        autoscaler.report(GATEWAY, target, in_flight=0, waiting=1)
        autoscaler.poke(target)
        await until(lambda: bool(backend.endpoints(target)))
        # Busy, then idle before the next tick: the tick still sees the busy moment.
        autoscaler.report(GATEWAY, target, in_flight=1, waiting=0)
        idle_from = time.monotonic()
        autoscaler.report(GATEWAY, target, in_flight=0, waiting=0)
        await until(lambda: not backend.endpoints(target), within=10.0)
        idle_for = time.monotonic() - idle_from
        await until(lambda: not pids_of(target.function_name), within=10.0)

    assert idle_for >= 1.0


async def test_a_burst_from_zero_scales_out_at_once_and_the_panic_holds_it(
    store: SqliteStore, backend: LocalProcessBackend, make_version: MakeVersion, until: Until
) -> None:
    target = await create_function(store, make_version(), idle_timeout=300.0)
    async with Autoscaler(store, backend, tick_seconds=FAST_TICK_SECONDS) as autoscaler:
        autoscaler.report(GATEWAY, target, in_flight=1, waiting=2)
        await until(lambda: backend.ready_instances(target) == 3)
        autoscaler.report(GATEWAY, target, in_flight=0, waiting=0)
        await asyncio.sleep(5 * FAST_TICK_SECONDS)  # ticks pass with no demand at all
        held = backend.ready_instances(target)

    assert held == 3


async def test_two_gateways_in_flight_counts_add_up_to_the_instances_started(
    store: SqliteStore, backend: LocalProcessBackend, make_version: MakeVersion, until: Until
) -> None:
    target = await create_function(store, make_version(), idle_timeout=300.0)
    async with Autoscaler(store, backend, tick_seconds=FAST_TICK_SECONDS) as autoscaler:
        # Each gateway holds one invocation: neither alone would need a second instance.
        autoscaler.report("gateway-0", target, in_flight=1, waiting=0)
        autoscaler.report("gateway-1", target, in_flight=1, waiting=0)
        await until(lambda: backend.ready_instances(target) == 2)
        await asyncio.sleep(3 * FAST_TICK_SECONDS)
        held = backend.ready_instances(target)

    assert held == 2


async def test_provisioned_concurrency_goes_ready_with_warm_instances(
    store: SqliteStore, backend: LocalProcessBackend, make_version: MakeVersion, until: Until
) -> None:
    target = await create_function(store, make_version(), idle_timeout=1.0)
    watched = Watched(store)
    await store.put_provisioned(target.function, target.version, requested=2)

    async with Autoscaler(store, backend, tick_seconds=FAST_TICK_SECONDS):
        await until(lambda: watched.status(target) is ProvisionedStatus.READY)
        ready = backend.ready_instances(target)
    config = await store.get_provisioned(target.function, target.version)

    assert (config.status, config.allocated, ready) == (ProvisionedStatus.READY, 2, 2)


async def test_provisioned_concurrency_fails_when_instances_cannot_start(
    store: SqliteStore, backend: LocalProcessBackend, make_version: MakeVersion, until: Until
) -> None:
    # The agent refuses a zero memory size and exits: no instance can ever start.
    target = await create_function(store, make_version(memory_size=0), idle_timeout=1.0)
    watched = Watched(store)
    await store.put_provisioned(target.function, target.version, requested=1)

    async with Autoscaler(store, backend, tick_seconds=FAST_TICK_SECONDS, failures_before_failed=2):
        await until(lambda: watched.status(target) is ProvisionedStatus.FAILED, within=60.0)
    config = await store.get_provisioned(target.function, target.version)

    assert (config.status, config.allocated) == (ProvisionedStatus.FAILED, 0)
    assert "before it was ready" in config.status_reason


async def test_a_deleted_function_is_scaled_to_zero(
    store: SqliteStore,
    backend: LocalProcessBackend,
    make_version: MakeVersion,
    until: Until,
    pids_of: PidsOf,
) -> None:
    target = await create_function(store, make_version(), idle_timeout=300.0)
    async with Autoscaler(store, backend, tick_seconds=SLOW_TICK_SECONDS) as autoscaler:
        autoscaler.poke(target)
        await until(lambda: bool(backend.endpoints(target)))

        await store.delete_function(target.function)
        await until(lambda: not backend.endpoints(target), within=5.0)
        await until(lambda: not pids_of(target.function_name), within=10.0)
