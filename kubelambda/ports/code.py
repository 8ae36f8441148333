"""Code packages: zips stored once by SHA-256, and where an instance fetches one from.

The management API puts an upload (after ``kubelambda.zips.inspect``) and serves
GetFunction's download; the controller settles and collects packages; an instance
backend asks ``location`` for the address its instances read the zip from. Adapters:
a directory on the local disk (``location`` is a file path) and, in Kubernetes mode,
a store served over authenticated HTTP (``location`` is a URL). Digests are hex.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Protocol

from kubelambda.models import CodePackage

__all__ = ["CodeStore", "PackageMissing"]


class PackageMissing(LookupError):
    """No package is stored under that digest (never uploaded, or collected)."""


class CodeStore(Protocol):
    async def put(self, data: bytes) -> CodePackage:
        """Store ``data`` durably under its digest; an identical upload reuses it."""
        ...

    def open(self, sha256_hex: str) -> AsyncIterator[bytes]:
        """The zip's bytes in chunks. Raises ``PackageMissing`` on first iteration."""
        ...

    async def location(self, sha256_hex: str) -> str:
        """Where an instance fetches the zip from. Raises ``PackageMissing``."""
        ...

    async def collect(
        self, keep: Collection[str], *, now: float, grace_seconds: float
    ) -> list[str]:
        """Remove packages not in ``keep`` and untouched for ``grace_seconds`` (a package
        put but not yet referenced, or still run by a draining instance, is kept).
        Returns the removed digests."""
        ...
