"""Settles code packages: Pending → Active (or InProgress → Successful), or Failed.

The management API stores an upload and leaves the version Pending (``$LATEST``
InProgress after an update); this reconciler, fed by the catalog watch, asks the
instance backend to ``prepare`` each package a version awaits (unpack it, in embedded
mode) and reports the outcome through ``ControllerStore.finish_package``. It also
collects packages nothing refers to any more: at start, after each settle or delete, and
every ``collect_every`` seconds (when it also retries settles the store refused),
through the code store (with its grace period) and then the backend's own prepared
copies.

Settling is idempotent: after a restart the catalog still shows what awaits a package,
so nothing is lost when the process stops half-way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from controller.metrics import ControllerMetrics
from kubelambda import errors
from kubelambda.models import CodePackage, FunctionKey
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.code import CodeStore
from kubelambda.ports.control import ControllerStore
from kubelambda.ports.instances import BackendClosed, InstanceBackend, PackageRejected

__all__ = ["PackageSettler", "awaited_packages", "referenced_packages"]

log = logging.getLogger(__name__)


def awaited_packages(catalog: Catalog) -> set[tuple[FunctionKey, CodePackage]]:
    """The (function, package) pairs some version waits for the controller to settle."""
    return {
        (version.key, version.package)
        for version in catalog.versions.values()
        if version.awaits_package
    }


def referenced_packages(catalog: Catalog) -> set[str]:
    """Digests (hex) of every package a version reports or still runs: what to keep."""
    keep = set()
    for version in catalog.versions.values():
        keep.add(version.package.sha256_hex)
        keep.add(version.running_package.sha256_hex)
    return keep


class PackageSettler:
    def __init__(
        self,
        store: ControllerStore,
        code: CodeStore,
        backend: InstanceBackend,
        *,
        grace_seconds: float,
        metrics: ControllerMetrics | None = None,
        collect_every: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._code = code
        self._backend = backend
        self._grace = grace_seconds
        self._collect_every = collect_every
        self._clock = clock
        self._catalog = Catalog()
        self._settling: dict[tuple[FunctionKey, CodePackage], asyncio.Task[None]] = {}
        self._collect_soon = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._collector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._on_catalog(await self._store.catalog())
        self._unsubscribe = self._store.subscribe(self._on_catalog)
        self._collector = asyncio.create_task(self._collect_loop(), name="package collector")

    async def aclose(self) -> None:
        """Stop settling; versions stay Pending and the next start settles them."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [*self._settling.values(), *([self._collector] if self._collector else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            # wait, not gather: our caller's own cancellation must still reach it.
            await asyncio.wait(tasks)
        self._settling.clear()
        self._collector = None

    async def collect(self) -> list[str]:
        """Remove packages nothing refers to (past the grace); returns their digests."""
        keep = referenced_packages(self._catalog)
        removed = await self._code.collect(keep, now=self._clock(), grace_seconds=self._grace)
        if removed:
            await self._backend.discard(removed)
            log.info("packages collected count=%d", len(removed))
        return removed

    def _on_catalog(self, catalog: Catalog) -> None:
        dropped = referenced_packages(self._catalog) - referenced_packages(catalog)
        self._catalog = catalog
        if dropped:
            # A deleted function or version may have left a package unused.
            self._collect_soon.set()
        for key in awaited_packages(catalog) - self._settling.keys():
            function, package = key
            self._settling[key] = asyncio.create_task(
                self._settle(function, package), name=f"settle {function}"
            )

    async def _settle(self, function: FunctionKey, package: CodePackage) -> None:
        try:
            error = await self._prepare(function, package)
        except BackendClosed:
            # Shutting down: the version still awaits its package at the next start.
            self._settling.pop((function, package), None)
            return
        try:
            await self._store.finish_package(function, package.code_sha256, error=error)
        except errors.LambdaError as exc:
            # Deleted or replaced meanwhile, or the store refused: the periodic pass
            # settles again whatever still awaits its package.
            log.info("package settle dropped function=%s error=%s", function, exc.message)
            return
        finally:
            self._settling.pop((function, package), None)
        # A finished code update may have left the previous package unused.
        self._collect_soon.set()

    async def _prepare(self, function: FunctionKey, package: CodePackage) -> str | None:
        """The error to report for ``package`` (``None``: it is ready)."""
        try:
            await self._backend.prepare(package, function=function)
        except PackageRejected as exc:
            log.warning(
                "package failed namespace=%s function=%s code_sha256=%s error=%s",
                function.namespace,
                function.name,
                package.code_sha256,
                exc,
            )
            return str(exc)
        except BackendClosed:
            raise
        except Exception:
            # Never leave the version Pending forever: whatever broke, it failed.
            self._failed()
            log.exception(
                "package failed namespace=%s function=%s code_sha256=%s",
                function.namespace,
                function.name,
                package.code_sha256,
            )
            return "Could not unpack the deployment package."
        return None

    def _failed(self) -> None:
        if self._metrics is not None:
            self._metrics.reconcile_failed("packages")

    async def _collect_loop(self) -> None:
        while True:
            try:
                await self.collect()
            except Exception:
                self._failed()
                log.exception("package collection failed")
            try:
                async with asyncio.timeout(self._collect_every):
                    await self._collect_soon.wait()
            except TimeoutError:
                # Once a period, settle again what a refused report left awaiting (a
                # package being settled is skipped); never right after a settle, which
                # would spin if a store kept answering without changing anything.
                self._on_catalog(self._catalog)
            self._collect_soon.clear()
