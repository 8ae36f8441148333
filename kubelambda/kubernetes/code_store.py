"""``KubernetesCodeStore``: the Kubernetes adapter of the ``CodeStore`` port, zips kept
as Secrets on the apiserver, the one durable store every replica shares.

Each gateway replica opens one (the management API puts uploads; the code route streams
them to GetFunction's links and to pods fetching their package), and so does the
controller (its backend asks ``location`` whether a package is there; its settler
collects). All of them use one namespace. ``code_secrets`` builds and reads the objects:
a manifest Secret per package and chunk Secrets of at most ``CHUNK_BYTES`` it owns.

``put``  creates the manifest in state ``writing`` (its uid is what the chunks' owner
         references need, so it comes first), then the chunks, then marks it
         ``complete``: only a complete manifest is a stored package. Names follow from
         the digest, so identical puts from two replicas meet on the same objects: a
         409 on the manifest means read it and touch it (and finish it if still being
         written), a 409 on a chunk means reuse it if it is this manifest's and holds
         the same bytes, else replace it (a leftover of a removed namesake).
``open`` reads the chunks in order, checks each against the manifest's digests and the
         whole against the package's before handing over the last one, so it never
         yields bytes that do not match: a chunk lost or altered raises
         ``PackageCorrupt`` and sends the package back to ``writing`` (an upload of the
         same zip rewrites it). Verified packages up to ``cache_bytes`` are kept in an
         LRU cache, and concurrent opens of one package read it from the apiserver once
         (pods of a new version all start at once and fetch the same zip).
``collect`` deletes manifests untouched for the grace (conditional on the resourceVersion
         read, so a put's touch in between wins), then the chunks they owned, and any
         chunk whose manifest is gone: it relies on no garbage collector's timing.

Apiserver failures other than the ones each step decides about are ``ServiceError``.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from datetime import datetime
from typing import Any, NoReturn

from kubernetes_asyncio import client

from kubelambda import errors
from kubelambda.kubernetes import code_secrets, rest
from kubelambda.kubernetes.code_secrets import StoredPackage
from kubelambda.models import CodePackage
from kubelambda.ports.code import PackageCorrupt, PackageMissing

__all__ = ["DEFAULT_CACHE_BYTES", "KubernetesCodeStore"]

log = logging.getLogger(__name__)

# Room for the largest package: the gateway's 70 MB limit on a management request body
# holds a zip of about 52 MB in base64.
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
# Puts racing each other or a collection get this many turns; past it something is wrong.
_ATTEMPTS = 10
# Cached packages are handed out in pieces of this size, as files are.
_SLICE = 1 << 20
_MERGE_PATCH = "application/merge-patch+json"
_PAGE = "500"
_DIGEST_CHARS = frozenset("0123456789abcdef")

Obj = dict[str, Any]


class KubernetesCodeStore:
    """Code packages as Secrets in ``namespace``; ``clock`` stamps puts (epoch seconds,
    compared with the ``now`` that ``collect`` is given)."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._clock = clock
        self._cache = _PackageCache(cache_bytes)
        # Digests being read whole into the cache; opens of the same one wait for it.
        self._loading: dict[str, asyncio.Event] = {}
        self._secrets = rest.resource_path("", "v1", "secrets", namespace=namespace)

    async def put(self, data: bytes) -> CodePackage:
        """Store ``data`` under its digest; an identical upload renews the stored one's
        ``touched`` time (so ``collect`` spares it until a version uses it)."""
        # Hashing 50 MB takes a while: not on the event loop, which serves invokes too.
        package, pieces, digests = await asyncio.to_thread(_cut, data)
        for _ in range(_ATTEMPTS):
            stored = await self._claim(package, digests)
            if stored is None:
                continue
            if stored.complete:
                log.info("event=code_reused sha256=%s size=%d", package.sha256_hex, package.size)
                return package
            layout, layout_digests = pieces, digests
            if stored.chunk_bytes != code_secrets.CHUNK_BYTES:
                # Begun by a replica cutting chunks another size (during an upgrade):
                # finished in its size.
                layout = code_secrets.split(data, stored.chunk_bytes)
                layout_digests = await asyncio.to_thread(code_secrets.digests, layout)
            if layout_digests != stored.chunk_digests:
                raise errors.ServiceError(f"Code package manifest {stored.name} is inconsistent")
            for index, piece in enumerate(layout):
                await self._write_chunk(stored, index, piece)
            if await self._patch(stored.name, code_secrets.complete_patch(stored, self._clock())):
                log.info(
                    "event=code_stored sha256=%s size=%d chunks=%d",
                    package.sha256_hex,
                    package.size,
                    len(layout),
                )
                return package
        raise errors.ServiceError("The code package could not be stored: it kept changing.")

    async def open(self, sha256_hex: str) -> AsyncIterator[bytes]:
        """The zip's bytes, checked against the digest. Raises ``PackageMissing`` on
        first iteration, ``PackageCorrupt`` before yielding a byte that does not match."""
        stored = await self._stored(sha256_hex)
        data = self._cache.get(sha256_hex)
        if data is None and stored.size <= self._cache.limit:
            data = await self._load(stored)
        if data is None:
            async for piece in self._read(stored):
                yield piece
            return
        for offset in range(0, len(data), _SLICE):
            yield data[offset : offset + _SLICE]

    async def location(self, sha256_hex: str) -> str:
        """``kubernetes://<namespace>/<manifest Secret>``: not an address instances use
        (pods fetch the zip through the gateway's code route), only proof the package
        is stored. Raises ``PackageMissing``."""
        stored = await self._stored(sha256_hex)
        return f"kubernetes://{self._namespace}/{stored.name}"

    async def collect(
        self, keep: Collection[str], *, now: float, grace_seconds: float
    ) -> list[str]:
        """Remove the packages not in ``keep`` and untouched for ``grace_seconds`` (and
        puts abandoned half-way as long ago, unreported). Returns the removed digests."""
        live: set[str] = set()
        removed: list[str] = []
        deleted: set[str] = set()
        for item in await self._list(code_secrets.PACKAGE_SELECTOR):
            try:
                stored = code_secrets.read_package(item)
            except ValueError as exc:
                # Not ours to judge: leave it and its chunks alone.
                log.warning("event=code_manifest_unreadable error=%s", exc)
                live.add(item["metadata"]["uid"])
                continue
            if stored.sha256_hex in keep or now - stored.touched < grace_seconds:
                live.add(stored.uid)
                continue
            if not await self._delete(stored.name, uid=stored.uid, version=stored.resource_version):
                live.add(stored.uid)
                continue
            deleted.add(stored.uid)
            if stored.complete:
                removed.append(stored.sha256_hex)
                log.info("event=code_collected sha256=%s size=%d", stored.sha256_hex, stored.size)
            else:
                log.info("event=code_abandoned_removed sha256=%s", stored.sha256_hex)
        for item in await self._list(code_secrets.CHUNK_SELECTOR):
            owner = code_secrets.chunk_owner(item)
            # A chunk is either its removed manifest's, or an orphan (its manifest was
            # removed by a collection that stopped half-way). An orphan is also waited
            # on for the grace: its manifest may be younger than the list just read.
            orphan = owner not in live and _created(item) < now - grace_seconds
            if owner in deleted or orphan:
                metadata = item["metadata"]
                await self._delete(metadata["name"], uid=metadata["uid"])
        return removed

    # -- put ----------------------------------------------------------------------------

    async def _claim(self, package: CodePackage, digests: tuple[str, ...]) -> StoredPackage | None:
        """The package's manifest, created in state ``writing`` or, when another put
        came first, read and touched; ``None`` when it vanished meanwhile (try again)."""
        manifest = code_secrets.package_secret(
            package,
            namespace=self._namespace,
            chunk_bytes=code_secrets.CHUNK_BYTES,
            chunk_digests=digests,
            now=self._clock(),
        )
        try:
            return code_secrets.read_package(await self._call("POST", self._secrets, body=manifest))
        except rest.ApiError as exc:
            if exc.status != 409:
                raise _service_error(exc) from exc
        for _ in range(_ATTEMPTS):
            found = await self._get(code_secrets.package_name(package.sha256_hex))
            if found is None:
                return None
            stored = self._read_manifest(found, package.sha256_hex)
            touch = code_secrets.touch_patch(stored, self._clock())
            touched = await self._patch(stored.name, touch)
            if touched is not None:
                return code_secrets.read_package(touched)
        return None

    async def _write_chunk(self, stored: StoredPackage, index: int, piece: bytes) -> None:
        chunk = code_secrets.chunk_secret(stored, index, piece, namespace=self._namespace)
        for _ in range(_ATTEMPTS):
            try:
                await self._call("POST", self._secrets, body=chunk)
                return
            except rest.ApiError as exc:
                if exc.status != 409:
                    raise _service_error(exc) from exc
            found = await self._get(chunk["metadata"]["name"])
            if found is None:
                continue
            if code_secrets.chunk_owner(found) == stored.uid and _chunk_bytes(found) == piece:
                return
            # A leftover of a removed namesake (or altered): replace it. The uid
            # precondition spares a chunk another put has just written in its place.
            await self._delete(chunk["metadata"]["name"], uid=found["metadata"]["uid"])
        raise errors.ServiceError("The code package could not be stored: a chunk kept changing.")

    # -- open ---------------------------------------------------------------------------

    async def _stored(self, sha256_hex: str) -> StoredPackage:
        """The complete package's manifest. Raises ``PackageMissing``."""
        # A digest is also part of object names: anything else names no package.
        if len(sha256_hex) != 64 or not _DIGEST_CHARS.issuperset(sha256_hex):
            raise PackageMissing(sha256_hex)
        found = await self._get(code_secrets.package_name(sha256_hex))
        if found is None:
            raise PackageMissing(sha256_hex)
        stored = self._read_manifest(found, sha256_hex)
        if not stored.complete:
            raise PackageMissing(sha256_hex)
        return stored

    async def _load(self, stored: StoredPackage) -> bytes:
        """The whole package, verified and cached, read once however many ask at once
        (a caller that finds the cache let it go again reads it itself)."""
        while (loading := self._loading.get(stored.sha256_hex)) is not None:
            await loading.wait()
            if (data := self._cache.get(stored.sha256_hex)) is not None:
                return data
        loading = self._loading[stored.sha256_hex] = asyncio.Event()
        try:
            data = b"".join([piece async for piece in self._read(stored)])
        finally:
            del self._loading[stored.sha256_hex]
            loading.set()
        self._cache.put(stored.sha256_hex, data)
        return data

    async def _read(self, stored: StoredPackage) -> AsyncIterator[bytes]:
        """The chunks in order, each checked against its digest; the last is handed over
        only once the whole hashes to the package's digest."""
        whole = hashlib.sha256()
        size = 0
        last = len(stored.chunk_digests) - 1
        for index, expected in enumerate(stored.chunk_digests):
            piece = await self._read_chunk(stored, index, expected)
            whole.update(piece)
            size += len(piece)
            if index == last:
                await self._check_whole(stored, whole.hexdigest(), size)
            yield piece
        if last < 0:
            await self._check_whole(stored, whole.hexdigest(), size)

    async def _read_chunk(self, stored: StoredPackage, index: int, expected: str) -> bytes:
        name = code_secrets.chunk_name(stored.sha256_hex, index)
        found = await self._get(name)
        if found is None:
            manifest = await self._get(stored.name)
            if manifest is None or manifest["metadata"]["uid"] != stored.uid:
                # Collected (and maybe put anew) while being read: gone, not damaged.
                raise PackageMissing(stored.sha256_hex)
            await self._corrupt(stored, f"chunk {name} is missing")
        try:
            piece = code_secrets.chunk_data(found)
        except ValueError as exc:
            await self._corrupt(stored, f"chunk {name} holds no data ({exc})")
        if hashlib.sha256(piece).hexdigest() != expected:
            await self._corrupt(stored, f"chunk {name} does not match its digest")
        return piece

    async def _check_whole(self, stored: StoredPackage, digest: str, size: int) -> None:
        if (digest, size) != (stored.sha256_hex, stored.size):
            await self._corrupt(stored, "its chunks do not hash to the package's digest")

    async def _corrupt(self, stored: StoredPackage, reason: str) -> NoReturn:
        """Log, send the package back to ``writing`` so an upload repairs it, raise."""
        log.error("event=code_corrupt sha256=%s reason=%s", stored.sha256_hex, reason)
        self._cache.drop(stored.sha256_hex)
        await self._patch(stored.name, code_secrets.writing_patch(stored))
        raise PackageCorrupt(f"code package {stored.sha256_hex}: {reason}")

    def _read_manifest(self, found: Mapping[str, Any], sha256_hex: str) -> StoredPackage:
        try:
            stored = code_secrets.read_package(found)
        except ValueError as exc:
            raise errors.ServiceError(f"Unreadable code package manifest: {exc}") from exc
        if stored.sha256_hex != sha256_hex:
            # Two digests sharing the 160 bits in the name: never expected to happen.
            raise errors.ServiceError(f"Code package {stored.name} holds another digest")
        return stored

    # -- apiserver calls ----------------------------------------------------------------

    async def _get(self, name: str) -> Obj | None:
        try:
            return await self._call("GET", f"{self._secrets}/{name}")
        except rest.ApiError as exc:
            if exc.status == 404:
                return None
            raise _service_error(exc) from exc

    async def _patch(self, name: str, patch: Mapping[str, Any]) -> Obj | None:
        """Apply a merge patch; ``None`` when its precondition failed (409 on the
        resourceVersion, 422 on the uid) or the object is gone (404)."""
        try:
            return await self._call(
                "PATCH", f"{self._secrets}/{name}", body=patch, content_type=_MERGE_PATCH
            )
        except rest.ApiError as exc:
            if exc.status in (404, 409, 422):
                return None
            raise _service_error(exc) from exc

    async def _delete(self, name: str, *, uid: str, version: str | None = None) -> bool:
        """Delete ``name`` if it still is that object (and that version of it)."""
        preconditions = {"uid": uid} | ({"resourceVersion": version} if version else {})
        body = {"preconditions": preconditions, "propagationPolicy": "Background"}
        try:
            await self._call("DELETE", f"{self._secrets}/{name}", body=body)
        except rest.ApiError as exc:
            if exc.status in (404, 409):
                return False
            raise _service_error(exc) from exc
        return True

    async def _list(self, selector: str) -> list[Obj]:
        """Every Secret matching ``selector``, metadata only, page by page."""
        items: list[Obj] = []
        token = ""
        while True:
            query = [("labelSelector", selector), ("limit", _PAGE)]
            if token:
                query.append(("continue", token))
            try:
                page = await self._call("GET", self._secrets, query=query, metadata_only=True)
            except rest.ApiError as exc:
                raise _service_error(exc) from exc
            items.extend(page.get("items") or ())
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        metadata_only: bool = False,
    ) -> Obj:
        """One call; ``rest.ApiError`` for the caller to decide about, an unreachable
        apiserver as ``ServiceError``."""
        try:
            return await rest.request(
                self._api,
                method,
                path,
                query=query or (),
                body=body,
                content_type=content_type,
                accept=rest.METADATA_ONLY if metadata_only else "application/json",
            )
        except (OSError, TimeoutError) as exc:
            raise errors.ServiceError(f"The Kubernetes API is unreachable: {exc!r}") from exc


class _PackageCache:
    """Verified packages by digest, least recently used dropped first, at most ``limit``
    bytes in all (0 turns it off)."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"cache_bytes must be at least 0, not {limit}")
        self.limit = limit
        self._entries: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._bytes = 0

    def get(self, sha256_hex: str) -> bytes | None:
        data = self._entries.get(sha256_hex)
        if data is not None:
            self._entries.move_to_end(sha256_hex)
        return data

    def put(self, sha256_hex: str, data: bytes) -> None:
        if len(data) > self.limit:
            return
        self.drop(sha256_hex)
        self._entries[sha256_hex] = data
        self._bytes += len(data)
        while self._bytes > self.limit:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= len(evicted)

    def drop(self, sha256_hex: str) -> None:
        data = self._entries.pop(sha256_hex, None)
        if data is not None:
            self._bytes -= len(data)


def _cut(data: bytes) -> tuple[CodePackage, list[bytes], tuple[str, ...]]:
    """The package ``data`` is, its chunks, and their digests."""
    package = CodePackage(sha256_hex=hashlib.sha256(data).hexdigest(), size=len(data))
    pieces = code_secrets.split(data, code_secrets.CHUNK_BYTES)
    return package, pieces, code_secrets.digests(pieces)


def _chunk_bytes(obj: Mapping[str, Any]) -> bytes | None:
    try:
        return code_secrets.chunk_data(obj)
    except ValueError:
        return None


def _created(obj: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(obj["metadata"]["creationTimestamp"]).timestamp()


def _service_error(exc: rest.ApiError) -> errors.ServiceError:
    return errors.ServiceError(f"The Kubernetes API refused a code package call: {exc}")
