"""Writes of the Kubernetes store to the apiserver, each confirmed by its own informer.

``KubernetesStore`` writes through one ``ObjectWriter``. ``replace`` applies an edit to
the cached object and PUTs it (or its status) under its resourceVersion; a 409 means
another writer came first, so it re-reads the object and applies the edit again, where
the edit re-checks what it depends on (an expected RevisionId, a state). Every write
returns once the store's informer has seen it (``ResourceCache.seen``). Refusals of
bad values become ``InvalidParameterValue``, anything else not the caller's fault a
retriable ``ServiceError``; a 404 (the object went away) is ``Gone``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from kubelambda import errors
from kubelambda.kubernetes import rest
from kubelambda.kubernetes.cache import ResourceCache
from kubelambda.kubernetes.informer import ObjectKey, Resource
from kubelambda.kubernetes.manifests import Mutation

__all__ = ["Gone", "ObjectWriter", "object_path"]

Obj = dict[str, Any]
# Writers racing on one object each get a turn; past this many 409s something is wrong.
_ATTEMPTS = 10


class Gone(LookupError):
    """The object was deleted while the store was writing it."""


class ObjectWriter:
    def __init__(self, api: client.ApiClient, cache: ResourceCache) -> None:
        self._api = api
        self._cache = cache

    async def replace(
        self,
        resource: Resource,
        object_key: ObjectKey,
        mutate: Mutation,
        *,
        status: bool = False,
        wait: bool = True,
    ) -> Obj | None:
        """Apply ``mutate`` to the object and write it (its status subresource when
        ``status``); ``None`` when ``mutate`` found nothing to change. ``wait=False``
        skips waiting for the informer (a write made while the catalog rebuilds)."""
        cached = self._cache.get(resource, object_key)
        if cached is None:
            raise Gone(object_key)
        obj = copy.deepcopy(dict(cached))
        for _ in range(_ATTEMPTS):
            if not mutate(obj):
                return None
            path = object_path(resource, obj) + ("/status" if status else "")
            try:
                written = await self.call("PUT", path, body=obj)
            except rest.ApiError as exc:
                if exc.status == 404:
                    raise Gone(object_key) from exc
                obj = await self._reread(resource, obj)
                continue
            if wait:
                await self._cache.seen(resource, written)
            return written
        raise errors.ResourceConflict(
            "The operation cannot be performed at this time: the resource kept changing."
        )

    async def create(self, resource: Resource, manifest: Obj) -> Obj:
        """POST ``manifest``; raises ``rest.ApiError`` 409 when the name is taken."""
        collection = rest.resource_path(
            resource.group,
            resource.version,
            resource.plural,
            namespace=manifest["metadata"]["namespace"],
        )
        created = await self.call("POST", collection, body=manifest)
        await self._cache.seen(resource, created)
        return created

    async def delete(self, resource: Resource, obj: Mapping[str, Any]) -> None:
        """Delete this object (a precondition on its uid spares a namesake created
        since) and wait until the informer no longer has it."""
        body = {"preconditions": {"uid": obj["metadata"]["uid"]}}
        try:
            await self.call("DELETE", object_path(resource, obj), body=body)
        except rest.ApiError as exc:
            if exc.status not in (404, 409):
                raise
        await self._cache.gone(resource, obj)

    async def delete_all(self, resource: Resource, *, namespace: str, selector: str) -> None:
        """Delete every object of ``resource`` in ``namespace`` matching ``selector``."""
        path = rest.resource_path(
            resource.group, resource.version, resource.plural, namespace=namespace
        )
        await self.call("DELETE", path, query=[("labelSelector", selector)])

    async def call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Obj:
        """One apiserver call. Raises ``rest.ApiError`` for 404 and 409, which callers
        decide about; maps the rest to ``kubelambda.errors``."""
        try:
            return await rest.request(self._api, method, path, query=query or (), body=body)
        except rest.ApiError as exc:
            if exc.status in (404, 409):
                raise
            if exc.status == 422:
                raise errors.InvalidParameterValue(exc.message) from exc
            raise errors.ServiceError(f"The Kubernetes API refused the change: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            raise errors.ServiceError(f"The Kubernetes API is unreachable: {exc!r}") from exc

    async def _reread(self, resource: Resource, obj: Mapping[str, Any]) -> Obj:
        try:
            return await self.call("GET", object_path(resource, obj))
        except rest.ApiError as exc:
            if exc.status == 404:
                raise Gone((obj["metadata"]["namespace"], obj["metadata"]["name"])) from exc
            raise


def object_path(resource: Resource, obj: Mapping[str, Any]) -> str:
    return rest.resource_path(
        resource.group,
        resource.version,
        resource.plural,
        namespace=obj["metadata"]["namespace"],
        name=obj["metadata"]["name"],
    )
