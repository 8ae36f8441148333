"""Code packages: zips stored once by SHA-256, and where an instance fetches one from.

The management API puts an upload (after ``kubelambda.zips.inspect``) and serves
GetFunction's download; the controller settles and collects packages; an instance
backend asks ``location`` for the address its instances read the zip from, or only
whether the package is there. Adapters: a directory on the local disk (``location`` is
a file path) and, in Kubernetes mode, Secrets on the apiserver (``location`` names the
package's manifest; pods fetch the zip through the gateway). Digests are hex.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Protocol

from kubelambda.models import CodePackage

__all__ = ["CodeStore", "PackageCorrupt", "PackageMissing"]


class PackageMissing(LookupError):
    """No package is stored under that digest (never uploaded, or collected)."""


class PackageCorrupt(RuntimeError):
    """The stored bytes do not hash to the digest (a part lost or altered behind the
    store's back). Raised by ``open`` before it yields any byte that does not match;
    putting the same zip again repairs the package."""


class CodeStore(Protocol):
    async def put(self, data: bytes) -> CodePackage:
        """Store ``data`` durably under its digest; an identical upload reuses it."""
        ...

    def open(self, sha256_hex: str) -> AsyncIterator[bytes]:
        """The zip's bytes in chunks. Raises ``PackageMissing`` on first iteration; a
        store that checks what it reads raises ``PackageCorrupt`` rather than yield bytes
        that do not match the digest."""
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
