"""The package settler with small in-test ports: what it prepares, reports and collects.

The store, code store and backend here record calls; the settler against the real SQLite
store, code store and local backend is in tests/integration/controller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from controller.metrics import ControllerMetrics
from controller.packages.settler import PackageSettler
from kubelambda import errors
from kubelambda.models import (
    LATEST,
    CodePackage,
    FunctionKey,
    FunctionVersion,
    LastUpdateStatus,
    ProvisionedStatus,
    State,
    Target,
)
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.instances import BackendClosed, PackageRejected, StartFailure
from tests import factories

OLD = CodePackage(sha256_hex="aa" * 32, size=10)
NEW = CodePackage(sha256_hex="bb" * 32, size=20)
OTHER = CodePackage(sha256_hex="cc" * 32, size=30)
NOW = 1_700_000_000.0
GRACE = 120.0


def version(
    name: str = "f", number: str = LATEST, *, package: CodePackage, **changes: object
) -> FunctionVersion:
    return factories.function_version(
        name, number, code_sha256=package.code_sha256, code_size=package.size, **changes
    )


def pending(name: str = "f", number: str = LATEST, *, package: CodePackage) -> FunctionVersion:
    return version(name, number, package=package, state=State.PENDING)


def catalog(*versions: FunctionVersion) -> Catalog:
    return Catalog(versions={v.target: v for v in versions})


@dataclass
class Store:
    current: Catalog
    listeners: list[Callable[[Catalog], None]] = field(default_factory=list)
    finished: list[tuple[FunctionKey, str, str | None]] = field(default_factory=list)
    refuse: errors.LambdaError | None = None

    async def catalog(self) -> Catalog:
        return self.current

    def subscribe(self, listener: Callable[[Catalog], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def publish(self, catalog: Catalog) -> None:
        self.current = catalog
        for listener in list(self.listeners):
            listener(catalog)

    async def finish_package(
        self, function: FunctionKey, code_sha256: str, *, error: str | None
    ) -> bool:
        self.finished.append((function, code_sha256, error))
        if self.refuse is not None:
            raise self.refuse
        return True

    async def set_provisioned_status(
        self,
        function: FunctionKey,
        qualifier: str,
        *,
        allocated: int,
        status: ProvisionedStatus,
        reason: str = "",
    ) -> None:
        raise AssertionError("the settler reports no provisioned status")


@dataclass
class Code:
    """Removes what ``removable`` names (once), recording what it was asked to keep."""

    removable: list[str] = field(default_factory=list)
    collections: list[tuple[frozenset[str], float, float]] = field(default_factory=list)

    async def put(self, data: bytes) -> CodePackage:
        raise AssertionError("the settler stores no package")

    async def open(self, sha256_hex: str) -> AsyncIterator[bytes]:
        raise AssertionError("the settler reads no package")
        yield b""

    async def location(self, sha256_hex: str) -> str:
        raise AssertionError("the settler needs no location")

    async def collect(
        self, keep: Collection[str], *, now: float, grace_seconds: float
    ) -> list[str]:
        self.collections.append((frozenset(keep), now, grace_seconds))
        removed = [digest for digest in self.removable if digest not in keep]
        self.removable = [digest for digest in self.removable if digest in keep]
        return removed


@dataclass
class Backend:
    """``prepare`` fails as ``failures`` says, and waits for ``release`` when it is set."""

    failures: dict[str, Exception] = field(default_factory=dict)
    release: asyncio.Event | None = None
    prepared: list[CodePackage] = field(default_factory=list)
    prepared_for: list[FunctionKey] = field(default_factory=list)
    cancelled: list[CodePackage] = field(default_factory=list)
    discarded: list[list[str]] = field(default_factory=list)

    async def scale(
        self, version: FunctionVersion, *, replicas: int, concurrency: int, provisioned: int = 0
    ) -> None:
        raise AssertionError("the settler scales nothing")

    async def prepare(self, package: CodePackage, *, function: FunctionKey) -> None:
        self.prepared.append(package)
        self.prepared_for.append(function)
        if self.release is not None:
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.append(package)
                raise
        if (failure := self.failures.get(package.sha256_hex)) is not None:
            raise failure

    async def discard(self, sha256_hexes: Collection[str]) -> None:
        self.discarded.append(sorted(sha256_hexes))

    def ready_instances(self, target: Target) -> int:
        return 0

    def starts_deferred(self) -> Collection[Target]:
        return ()

    def start_failure(self, target: Target) -> StartFailure | None:
        return None

    async def aclose(self) -> None:
        return None


def settler(store: Store, backend: Backend, code: Code | None = None) -> PackageSettler:
    # Collection every hour: only the start and a finished settle trigger one here.
    return PackageSettler(
        store,
        code or Code(),
        backend,
        grace_seconds=GRACE,
        collect_every=3600.0,
        clock=lambda: NOW,
    )


async def eventually(condition: Callable[[], bool], *, turns: int = 100) -> None:
    """Let the settler's tasks run until ``condition`` holds: the fakes never block on
    I/O, so a few turns of the event loop are enough (no real waiting involved)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"condition not met within {turns} turns of the event loop")


async def test_a_pending_version_is_prepared_then_reported_settled() -> None:
    store, backend = Store(catalog(pending(package=NEW))), Backend()
    running = settler(store, backend)
    await running.start()
    try:
        await eventually(lambda: bool(store.finished))
    finally:
        await running.aclose()

    assert (backend.prepared, backend.prepared_for) == ([NEW], [FunctionKey("default", "f")])
    assert store.finished == [(FunctionKey("default", "f"), NEW.code_sha256, None)]


async def test_an_in_progress_update_settles_its_new_package() -> None:
    updating = version(
        package=NEW, last_update_status=LastUpdateStatus.IN_PROGRESS, serving_package=OLD
    )
    store, backend = Store(catalog(updating)), Backend()
    running = settler(store, backend)
    await running.start()
    try:
        await eventually(lambda: bool(store.finished))
    finally:
        await running.aclose()

    assert (backend.prepared, store.finished[0][1:]) == ([NEW], (NEW.code_sha256, None))


async def test_versions_that_await_nothing_are_left_alone() -> None:
    store = Store(catalog(version(package=NEW), version(number="1", package=OLD)))
    backend = Backend()
    running = settler(store, backend)
    await running.start()
    await asyncio.sleep(0)
    await running.aclose()

    assert (backend.prepared, store.finished) == ([], [])


async def test_each_awaited_package_is_settled_once_even_when_catalogs_repeat() -> None:
    # $LATEST and version 1 of one function wait for the same package.
    waiting = catalog(pending(package=NEW), pending(number="1", package=NEW))
    store, backend = Store(waiting), Backend(release=asyncio.Event())
    running = settler(store, backend)
    await running.start()
    try:
        await eventually(lambda: bool(backend.prepared))
        for _ in range(3):
            store.publish(waiting)
        assert backend.release is not None
        backend.release.set()
        await eventually(lambda: bool(store.finished))
        await asyncio.sleep(0)
    finally:
        await running.aclose()

    assert (backend.prepared, len(store.finished)) == ([NEW], 1)


async def test_one_package_in_two_functions_is_settled_for_each() -> None:
    store = Store(catalog(pending("f", package=NEW), pending("g", package=NEW)))
    running = settler(store, Backend())
    await running.start()
    try:
        await eventually(lambda: len(store.finished) == 2)
    finally:
        await running.aclose()

    assert sorted(function.name for function, _, _ in store.finished) == ["f", "g"]


async def test_a_package_awaited_again_after_it_settled_is_settled_again() -> None:
    # A restart, or a re-upload of the same zip: the catalog is what counts.
    store, backend = Store(catalog(pending(package=NEW))), Backend()
    running = settler(store, backend)
    await running.start()
    try:
        await eventually(lambda: len(store.finished) == 1)
        store.publish(catalog(pending(package=NEW)))
        await eventually(lambda: len(store.finished) == 2)
    finally:
        await running.aclose()

    assert backend.prepared == [NEW, NEW]


async def test_a_rejected_package_is_reported_failed_with_its_message() -> None:
    message = "Could not unpack the deployment package: entry outside the package: '../x'"
    store = Store(catalog(pending(package=NEW)))
    backend = Backend(failures={NEW.sha256_hex: PackageRejected(message)})
    running = settler(store, backend)
    await running.start()
    try:
        await eventually(lambda: bool(store.finished))
    finally:
        await running.aclose()

    assert store.finished == [(FunctionKey("default", "f"), NEW.code_sha256, message)]


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), OSError(28, "No space")])
async def test_an_unexpected_error_never_leaves_the_version_pending(failure: Exception) -> None:
    store = Store(catalog(pending(package=NEW)))
    running = settler(store, Backend(failures={NEW.sha256_hex: failure}))
    await running.start()
    try:
        await eventually(lambda: bool(store.finished))
    finally:
        await running.aclose()

    [(_, _, error)] = store.finished
    assert error == "Could not unpack the deployment package."


async def test_a_store_refusing_one_settle_does_not_stop_the_next() -> None:
    store = Store(catalog(pending(package=NEW)))
    store.refuse = errors.ResourceNotFound("Function not found")
    running = settler(store, Backend())
    await running.start()
    try:
        await eventually(lambda: len(store.finished) == 1)
        store.refuse = None
        store.publish(catalog(pending("g", package=OTHER)))
        await eventually(lambda: len(store.finished) == 2)
    finally:
        await running.aclose()

    assert store.finished[1] == (FunctionKey("default", "g"), OTHER.code_sha256, None)


async def test_collection_keeps_every_package_a_version_reports_or_runs() -> None:
    updating = version(
        package=NEW, last_update_status=LastUpdateStatus.IN_PROGRESS, serving_package=OLD
    )
    code = Code()
    running = settler(Store(catalog(updating)), Backend(release=asyncio.Event()), code)
    await running.start()
    try:
        await eventually(lambda: bool(code.collections))
    finally:
        await running.aclose()

    assert code.collections[0] == (frozenset({NEW.sha256_hex, OLD.sha256_hex}), NOW, GRACE)


async def test_collect_discards_what_the_code_store_removed() -> None:
    code = Code(removable=[OLD.sha256_hex, OTHER.sha256_hex])
    backend = Backend()
    running = settler(Store(catalog(version(package=NEW))), backend, code)

    removed = await running.collect()
    again = await running.collect()

    assert sorted(removed) == [OLD.sha256_hex, OTHER.sha256_hex]
    assert backend.discarded == [[OLD.sha256_hex, OTHER.sha256_hex]]
    assert again == []


async def test_a_finished_update_collects_the_package_it_replaced() -> None:
    updating = version(
        package=NEW, last_update_status=LastUpdateStatus.IN_PROGRESS, serving_package=OLD
    )
    store, backend = Store(catalog(updating)), Backend(release=asyncio.Event())
    code = Code(removable=[OLD.sha256_hex])
    running = settler(store, backend, code)
    await running.start()
    try:
        await eventually(lambda: bool(backend.prepared))
        # The store settles the update: $LATEST runs the new package only.
        store.publish(catalog(version(package=NEW)))
        assert backend.release is not None
        backend.release.set()
        await eventually(lambda: bool(backend.discarded))
    finally:
        await running.aclose()

    assert backend.discarded == [[OLD.sha256_hex]]


async def test_aclose_cancels_in_flight_settles() -> None:
    store = Store(catalog(pending(package=NEW), pending("g", package=OTHER)))
    backend = Backend(release=asyncio.Event())
    running = settler(store, backend)
    await running.start()
    await eventually(lambda: len(backend.prepared) == 2)

    async with asyncio.timeout(2.0):
        await running.aclose()
    store.publish(catalog(pending("h", package=OLD)))
    await asyncio.sleep(0)

    assert sorted(p.sha256_hex for p in backend.cancelled) == [NEW.sha256_hex, OTHER.sha256_hex]
    # Nothing was reported (the versions stay Pending for the next start), and a closed
    # settler no longer follows the catalog.
    assert (store.finished, store.listeners, len(backend.prepared)) == ([], [], 2)


async def test_a_settle_the_store_refused_is_retried_on_the_next_period() -> None:
    store = Store(catalog(pending(package=NEW)))
    store.refuse = errors.ServiceError("database is locked")
    running = PackageSettler(
        store, Code(), Backend(), grace_seconds=GRACE, collect_every=0.01, clock=lambda: NOW
    )
    await running.start()
    try:
        await eventually(lambda: len(store.finished) == 1)
        store.refuse = None
        # The fake store keeps the version Pending, so each period settles it again.
        for _ in range(200):
            if len(store.finished) >= 2:
                break
            await asyncio.sleep(0.01)
    finally:
        await running.aclose()

    assert store.finished[1] == (FunctionKey("default", "f"), NEW.code_sha256, None)


async def test_a_prepare_cut_short_by_a_shutdown_reports_nothing() -> None:
    store = Store(catalog(pending(package=NEW)))
    backend = Backend(failures={NEW.sha256_hex: BackendClosed("closing")})
    running = settler(store, backend)
    await running.start()
    try:
        await eventually(lambda: backend.prepared == [NEW])
        for _ in range(20):  # turns in which a report would have been made
            await asyncio.sleep(0)
    finally:
        await running.aclose()

    assert store.finished == []


async def test_an_unexpected_error_counts_as_a_reconcile_error() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    store = Store(catalog(pending(package=NEW)))
    failing = Backend(failures={NEW.sha256_hex: RuntimeError("disk on fire")})
    running = PackageSettler(
        store, Code(), failing, grace_seconds=GRACE, metrics=metrics, collect_every=3600.0
    )
    await running.start()
    try:
        await eventually(lambda: bool(store.finished))
    finally:
        await running.aclose()

    errors_total = registry.get_sample_value(
        "kubelambda_reconcile_errors_total", {"reconciler": "packages"}
    )
    assert errors_total == 1.0
