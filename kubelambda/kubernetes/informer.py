"""A watch-fed cache of one kind of Kubernetes object, as raw JSON dicts.

The Kubernetes store keeps one ``Informer`` per custom resource (Function,
FunctionVersion, Alias) and the controller one on its pods. ``start`` lists the objects
and returns once the cache holds them; a background task then watches from the list's
``resourceVersion`` (with bookmarks), resumes from the last one it saw when the apiserver
ends a watch normally, lists again when that version has expired (410 Gone), and backs
off and retries on connection errors, logging them, never ending while the informer is
open. Subscribers are called on the event loop's thread after every change of the cache
(one call per list, and per chunk of watch events received together).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from kubelambda.kubernetes import rest

__all__ = ["Informer", "ObjectKey", "Resource"]

log = logging.getLogger(__name__)

ObjectKey = tuple[str, str]
_LIST_PAGE = 500
_BACKOFF_FIRST, _BACKOFF_MAX = 0.2, 10.0


@dataclass(frozen=True)
class Resource:
    """A kind of object by its REST coordinates: ``Resource("", "v1", "pods")`` or
    ``Resource("kubelambda.io", "v1alpha1", "functions")``."""

    group: str
    version: str
    plural: str


class _Expired(Exception):
    """The resourceVersion to resume from is gone from the apiserver's history."""


class Informer:
    """The objects of ``resource`` in ``namespace`` (all namespaces when ``None``) that
    match ``label_selector``, keyed by ``(namespace, name)`` (namespace ``""`` for
    cluster-scoped objects). ``watch_seconds`` bounds one watch request: the apiserver
    ends it then and the informer resumes where it was."""

    def __init__(
        self,
        api: client.ApiClient,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        watch_seconds: int = 300,
    ) -> None:
        self._api = api
        self._resource = resource
        self._namespace = namespace
        self._label_selector = label_selector
        self._watch_seconds = watch_seconds
        self._cache: dict[ObjectKey, dict[str, Any]] = {}
        self._view = MappingProxyType(self._cache)
        self._listeners: list[Callable[[], None]] = []
        self._resource_version: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """List the objects into the cache, then keep watching in the background."""
        await self._relist()
        self._task = asyncio.create_task(self._run(), name=f"informer {self._resource.plural}")

    def objects(self) -> Mapping[ObjectKey, dict[str, Any]]:
        """The cache as it is now (a read-only view; the dicts are the apiserver's JSON)."""
        return self._view

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    # -- the loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = _BACKOFF_FIRST
        while True:
            try:
                if self._resource_version is None:
                    await self._relist()
                await self._watch()
                backoff = _BACKOFF_FIRST
            except _Expired:
                log.info(
                    "event=watch_expired resource=%s resource_version=%s action=relist",
                    self._resource.plural,
                    self._resource_version,
                )
                self._resource_version = None
            except (aiohttp.ClientError, TimeoutError, OSError, rest.ApiError, ValueError) as exc:
                # The apiserver restarting, a network blip or a CRD being reinstalled: keep
                # the cache (it is stale, not wrong) and try again a little later.
                log.warning(
                    "event=watch_failed resource=%s error=%r retry_in=%.1fs",
                    self._resource.plural,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _relist(self) -> None:
        """Replace the cache by a fresh list (paged), and resume watching from it."""
        items: dict[ObjectKey, dict[str, Any]] = {}
        continue_token = ""
        while True:
            query = [("limit", str(_LIST_PAGE)), *self._selector()]
            if continue_token:
                query.append(("continue", continue_token))
            page = await rest.request(self._api, "GET", self._path(), query=query)
            for item in page.get("items", []):
                items[_key(item)] = item
            continue_token = page["metadata"].get("continue", "")
            if not continue_token:
                break
        self._cache.clear()
        self._cache.update(items)
        self._resource_version = page["metadata"]["resourceVersion"]
        self._notify()

    async def _watch(self) -> None:
        """One watch request, from the last seen resourceVersion until the apiserver
        ends it. Raises ``_Expired`` when that version is too old."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self._resource_version or ""),
            ("timeoutSeconds", str(self._watch_seconds)),
            *self._selector(),
        ]
        # The server ends the watch; the client only gives up on a connection gone silent.
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=self._watch_seconds + 30)
        try:
            response = await rest.stream(
                self._api, self._path(), query=query, request_timeout=timeout
            )
        except rest.ApiError as exc:
            if exc.status == 410:
                raise _Expired from exc
            raise
        async with response:
            pending = bytearray()
            async for chunk in response.content.iter_any():
                pending += chunk
                *lines, rest_of_line = pending.split(b"\n")
                pending = bytearray(rest_of_line)
                changed = False
                for line in lines:
                    if line.strip():
                        changed |= self._apply(json.loads(line))
                if changed:
                    self._notify()

    def _apply(self, event: dict[str, Any]) -> bool:
        """Apply one watch event to the cache; whether the cache changed."""
        kind, obj = event["type"], event["object"]
        if kind == "ERROR":
            error = rest.status_error(obj)
            if error.status == 410:
                raise _Expired(error.message)
            raise error
        self._resource_version = obj["metadata"]["resourceVersion"]
        if kind == "BOOKMARK":
            return False
        if kind == "DELETED":
            self._cache.pop(_key(obj), None)
        else:
            self._cache[_key(obj)] = obj
        return True

    def _notify(self) -> None:
        for listener in tuple(self._listeners):
            try:
                listener()
            except Exception:
                # One broken subscriber must not stop the watch, nor starve the others.
                log.exception("event=listener_failed resource=%s", self._resource.plural)

    def _path(self) -> str:
        resource = self._resource
        return rest.resource_path(
            resource.group, resource.version, resource.plural, namespace=self._namespace
        )

    def _selector(self) -> list[tuple[str, str]]:
        return [("labelSelector", self._label_selector)] if self._label_selector else []


def _key(obj: Mapping[str, Any]) -> ObjectKey:
    metadata = obj["metadata"]
    return metadata.get("namespace", ""), metadata["name"]
