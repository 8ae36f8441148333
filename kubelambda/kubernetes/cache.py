"""The Kubernetes store's view of the cluster: informers on Function, FunctionVersion and
Alias, the catalog snapshot built from them, and waits for the store's own writes.

``KubernetesStore`` owns one ``ResourceCache``. Every informer change marks the snapshot
stale and schedules a rebuild, which runs ``prepare`` first (the controller's store
imports inline code there) and then hands the new catalog to the subscribers. Readers
ask for ``current()``, which rebuilds first when stale, so a read never sees a catalog
older than the informers. After a write, the store waits (``seen`` / ``gone``) until the
informer has the object's new resourceVersion: what a caller wrote, it reads back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from kubernetes_asyncio import client

from kubelambda import errors
from kubelambda.kubernetes import snapshot
from kubelambda.kubernetes.informer import Informer, ObjectKey, Resource
from kubelambda.models import CodePackage
from kubelambda.ports.catalog import Catalog, CatalogListener

__all__ = ["ALIASES", "FUNCTIONS", "FUNCTION_VERSIONS", "ResourceCache"]

log = logging.getLogger(__name__)

FUNCTIONS = Resource("kubelambda.io", "v1alpha1", "functions")
FUNCTION_VERSIONS = Resource("kubelambda.io", "v1alpha1", "functionversions")
ALIASES = Resource("kubelambda.io", "v1alpha1", "aliases")
_RESOURCES = (FUNCTIONS, FUNCTION_VERSIONS, ALIASES)
# How long a write waits for its own echo from the watch before it reports an error.
_SEEN_SECONDS = 30.0


class ResourceCache:
    """Informers on the three resources in ``namespaces`` (all when ``None``)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespaces: tuple[str, ...] | None,
        package_of: Callable[[Mapping[str, Any]], CodePackage],
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._informers = {
            resource: [
                Informer(api, resource, namespace=namespace)
                for namespace in (namespaces if namespaces is not None else (None,))
            ]
            for resource in _RESOURCES
        }
        self._package_of = package_of
        self._prepare = prepare
        self._memo = snapshot.Memo()
        self._snapshot = snapshot.Snapshot(Catalog(), snapshot.Index())
        self._stale = True
        self._lock = asyncio.Lock()
        self._rebuilder: asyncio.Task[Any] | None = None
        self._listeners: list[CatalogListener] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._rebuild: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for informers in self._informers.values():
            for informer in informers:
                informer.subscribe(self._changed)
                await informer.start()
        await self.current()

    async def aclose(self) -> None:
        for informers in self._informers.values():
            for informer in informers:
                await informer.aclose()
        if self._rebuild is not None:
            self._rebuild.cancel()
            await asyncio.gather(self._rebuild, return_exceptions=True)

    def objects(self, resource: Resource) -> dict[ObjectKey, Mapping[str, Any]]:
        """Every cached object of ``resource`` (the informers of all namespaces merged)."""
        merged: dict[ObjectKey, Mapping[str, Any]] = {}
        for informer in self._informers[resource]:
            merged.update(informer.objects())
        return merged

    def get(self, resource: Resource, key: ObjectKey) -> Mapping[str, Any] | None:
        for informer in self._informers[resource]:
            found = informer.objects().get(key)
            if found is not None:
                return found
        return None

    @property
    def latest(self) -> snapshot.Snapshot:
        """The last snapshot built (what subscribers were last handed)."""
        return self._snapshot

    async def current(self) -> snapshot.Snapshot:
        """The snapshot of what the informers hold now. A rebuild under way (which has
        cleared the stale flag but not yet published) is waited for: its snapshot, not
        the one before it, is what the informers hold."""
        # ...unless asked from inside that rebuild (``prepare`` writing a status), which
        # would wait for itself.
        if asyncio.current_task() is not self._rebuilder:
            await self.rebuild()
        return self._snapshot

    async def rebuild(self) -> None:
        """Rebuild while stale, then notify; one rebuild at a time."""
        async with self._lock:
            self._rebuilder = asyncio.current_task()
            try:
                while self._stale:
                    self._stale = False
                    if self._prepare is not None:
                        await self._prepare()
                    self._snapshot = snapshot.build(
                        self.objects(FUNCTIONS),
                        self.objects(FUNCTION_VERSIONS),
                        self.objects(ALIASES),
                        memo=self._memo,
                        package_of=self._package_of,
                    )
                    self._notify(self._snapshot.catalog)
            finally:
                self._rebuilder = None

    def subscribe(self, listener: CatalogListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def seen(self, resource: Resource, written: Mapping[str, Any]) -> None:
        """Wait until the informer holds ``written`` or a later version of it."""
        key = _object_key(written)
        version = int(written["metadata"]["resourceVersion"])

        def caught_up() -> bool:
            cached = self.get(resource, key)
            return cached is not None and int(cached["metadata"]["resourceVersion"]) >= version

        await self._wait_until(caught_up, f"{resource.plural} {key}")

    async def gone(self, resource: Resource, deleted: Mapping[str, Any]) -> None:
        """Wait until the informer no longer holds the object ``deleted`` (by uid)."""
        key, uid = _object_key(deleted), deleted["metadata"]["uid"]

        def removed() -> bool:
            cached = self.get(resource, key)
            return cached is None or cached["metadata"]["uid"] != uid

        await self._wait_until(removed, f"{resource.plural} {key} deleted")

    async def _wait_until(self, condition: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SEEN_SECONDS
        while not condition():
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(0.0, deadline - loop.time()))
            except TimeoutError as exc:
                raise errors.ServiceError(
                    f"The store did not observe its own write in time: {what}"
                ) from exc

    def _changed(self) -> None:
        self._stale = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._rebuild is None or self._rebuild.done():
            self._rebuild = asyncio.create_task(self._rebuild_logged())

    async def _rebuild_logged(self) -> None:
        try:
            await self.rebuild()
        except Exception:
            # The next change (or read) rebuilds again; the loop must not lose the task.
            log.exception("event=catalog_rebuild_failed")
            self._stale = True

    def _notify(self, catalog: Catalog) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(catalog)
            except Exception:
                # One broken subscriber must not starve the others of the new catalog.
                log.exception("catalog listener failed listener=%r", listener)


def _object_key(obj: Mapping[str, Any]) -> ObjectKey:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]
