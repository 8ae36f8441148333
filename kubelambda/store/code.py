"""``LocalCodeStore``: the embedded adapter of the ``CodeStore`` port, zips on the local disk.

The management API ``put``s an upload (after ``kubelambda.zips.inspect``) and streams
GetFunction's download from ``open``; the local instance backend asks ``location`` for
the zip it unpacks itself (with ``kubelambda.zips.unpack``: this store never unpacks);
the controller ``collect``s the packages no version uses any more. Layout:

    <root>/zips/<sha256 hex>.zip        the package as uploaded, written atomically
    <root>/zips/.<random>.partial       an upload being written (left over by a crash)

File work runs in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import BinaryIO

from kubelambda.models import CodePackage
from kubelambda.ports.code import PackageMissing

__all__ = ["LocalCodeStore"]

_DIGEST = re.compile(r"[0-9a-f]{64}")
_PARTIAL = ".partial"
_CHUNK = 1 << 20


class LocalCodeStore:
    """Code packages under ``root``, one zip per SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._zips = root / "zips"
        # Serialises "is it there? touch it" in ``put`` with "is it stale? remove it" in
        # ``collect``: otherwise a re-upload could be told its zip is stored just before
        # collection removes it.
        self._lock = threading.Lock()

    async def put(self, data: bytes) -> CodePackage:
        """Store ``data`` under its digest. An identical upload keeps the stored zip and
        renews its modification time, so ``collect`` spares it until a version uses it."""
        return await asyncio.to_thread(self._put, data)

    async def open(self, sha256_hex: str) -> AsyncIterator[bytes]:
        """The zip's bytes in chunks. Raises ``PackageMissing`` on first iteration."""
        file = await asyncio.to_thread(self._open_file, sha256_hex)
        try:
            while chunk := await asyncio.to_thread(file.read, _CHUNK):
                yield chunk
        finally:
            file.close()

    async def location(self, sha256_hex: str) -> str:
        """The zip's absolute path. Raises ``PackageMissing``."""
        path = self._path(sha256_hex)
        if not await asyncio.to_thread(path.is_file):
            raise PackageMissing(sha256_hex)
        return str(path.absolute())

    async def collect(
        self, keep: Collection[str], *, now: float, grace_seconds: float
    ) -> list[str]:
        """Remove the zips not in ``keep`` and untouched for ``grace_seconds`` (and stale
        partial uploads). Returns the removed digests."""
        return await asyncio.to_thread(self._collect, frozenset(keep), now, grace_seconds)

    def _path(self, sha256_hex: str) -> Path:
        # A digest is also a file name: anything else names no package (and no path).
        if not _DIGEST.fullmatch(sha256_hex):
            raise PackageMissing(sha256_hex)
        return self._zips / f"{sha256_hex}.zip"

    def _put(self, data: bytes) -> CodePackage:
        package = CodePackage(sha256_hex=hashlib.sha256(data).hexdigest(), size=len(data))
        target = self._path(package.sha256_hex)
        with self._lock:
            if target.exists():
                os.utime(target)
                return package
        self._zips.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=self._zips, prefix=".", suffix=_PARTIAL, delete=False
        ) as out:
            try:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                Path(out.name).unlink(missing_ok=True)
                raise
        with self._lock:
            os.replace(out.name, target)
        _sync_directory(self._zips)
        return package

    def _open_file(self, sha256_hex: str) -> BinaryIO:
        try:
            return self._path(sha256_hex).open("rb")
        except FileNotFoundError as exc:
            raise PackageMissing(sha256_hex) from exc

    def _collect(self, keep: frozenset[str], now: float, grace_seconds: float) -> list[str]:
        if not self._zips.is_dir():
            return []
        removed = []
        for path in sorted(self._zips.iterdir()):
            digest = path.name.removesuffix(".zip")
            is_package = path.name.endswith(".zip") and digest not in keep
            if not (is_package or path.name.endswith(_PARTIAL)):
                continue
            with self._lock:
                try:
                    if now - path.stat().st_mtime < grace_seconds:
                        continue
                    path.unlink()
                except FileNotFoundError:
                    continue
            if is_package:
                removed.append(digest)
        return removed


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable, not only the renamed file's content."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
