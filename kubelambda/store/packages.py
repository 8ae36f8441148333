"""Code packages on disk: each uploaded zip stored once by SHA-256, unpacked once per hash.

The management service calls ``inspect`` (cheap checks on the zip's directory, done
before answering the API call), ``save`` (the zip, written atomically), and later
``unpack`` (off the event loop, while the version is Pending) to make the directory
that ``FunctionVersion.code_path`` names. Layout under ``$KUBELAMBDA_HOME/code``:

    zips/<sha256 hex>.zip      the package as uploaded (GetFunction's download)
    unpacked/<sha256 hex>/     its files, read-only, unix modes kept (``bootstrap`` stays
                               executable)

Entries that would land outside the package directory (absolute names, ``..``, links
pointing out) are refused, and so are archives that unpack past Lambda's size limit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import posixpath
import shutil
import stat
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from kubelambda import errors

__all__ = ["CodePackages", "Package", "PackageError", "hex_digest"]

# Lambda's limit on a function's unzipped size.
MAX_UNZIPPED_BYTES = 262_144_000
_MAX_ENTRIES = 100_000
_CHUNK = 1 << 20


class PackageError(ValueError):
    """The package could not be unpacked; the message becomes the version's state reason."""


@dataclass(frozen=True, slots=True)
class Package:
    """A stored zip: its digest in Lambda's form (base64) and as a path name (hex)."""

    sha256_hex: str
    size: int

    @property
    def code_sha256(self) -> str:
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()


def hex_digest(code_sha256: str) -> str:
    """Lambda's base64 ``CodeSha256`` as the hex name used on disk."""
    return base64.b64decode(code_sha256).hex()


class CodePackages:
    """The ``code/`` directory of one kubelambda home."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._zips = root / "zips"
        self._unpacked = root / "unpacked"

    def zip_path(self, sha256_hex: str) -> Path:
        return self._zips / f"{sha256_hex}.zip"

    def directory(self, sha256_hex: str) -> Path:
        return self._unpacked / sha256_hex

    @staticmethod
    def inspect(data: bytes, *, require: str | None = None) -> None:
        """Refuse a zip that cannot be read, escapes its directory, is too big, or lacks
        ``require`` (a top-level file such as ``bootstrap``). Reads the directory only."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, binascii.Error, ValueError, EOFError) as exc:
            raise errors.InvalidParameterValue(
                "Could not unzip uploaded file. Please check your file, then try to upload again."
            ) from exc
        if len(entries) > _MAX_ENTRIES:
            raise errors.InvalidParameterValue(f"The zip file has more than {_MAX_ENTRIES} entries")
        unzipped = sum(entry.file_size for entry in entries)
        if unzipped > MAX_UNZIPPED_BYTES:
            raise errors.InvalidParameterValue(
                f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"
            )
        for entry in entries:
            if _safe_name(entry.filename) is None:
                raise errors.InvalidParameterValue(
                    f"The zip file contains an entry outside the package: {entry.filename!r}"
                )
        if require is not None and require not in {entry.filename for entry in entries}:
            raise errors.InvalidParameterValue(
                f"The zip file must contain a file named {require!r} at its top level "
                "for this runtime"
            )

    def save(self, data: bytes) -> Package:
        """Store the zip under its digest (once; an identical upload reuses the file)."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.zip_path(digest)
        if target.exists():
            # Fresh again: ``collect`` must not take it before the new version is stored.
            os.utime(target)
        else:
            self._zips.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._zips, delete=False) as out:
                out.write(data)
            os.replace(out.name, target)
        return Package(sha256_hex=digest, size=len(data))

    def collect(self, keep: Collection[str], *, now: float, grace_seconds: float) -> list[str]:
        """Remove the packages (zip and directory) not in ``keep`` and untouched for
        ``grace_seconds``; returns their digests. The grace covers a package saved but not
        yet referenced by a stored version, and instances still draining from old code."""
        removed = []
        for path in sorted(self._zips.glob("*.zip")) if self._zips.exists() else []:
            digest = path.stem
            if digest in keep or now - path.stat().st_mtime < grace_seconds:
                continue
            _remove(self.directory(digest))
            path.unlink(missing_ok=True)
            removed.append(digest)
        return removed

    def unpack(self, sha256_hex: str, *, stop: threading.Event | None = None) -> Path:
        """The package's read-only directory, unpacking the stored zip the first time.
        Setting ``stop`` abandons the unpack between two entries (at shutdown)."""
        target = self.directory(sha256_hex)
        if target.exists():
            return target
        self._unpacked.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._unpacked, prefix=f".{sha256_hex}-"))
        try:
            with zipfile.ZipFile(self.zip_path(sha256_hex)) as archive:
                _extract(archive, staging, stop=stop)
            _make_read_only(staging)
            try:
                staging.rename(target)
            except OSError:
                # Another unpack of the same content won the race; theirs is identical.
                if not target.exists():
                    raise
                _remove(staging)
        except (
            zipfile.BadZipFile,
            zlib.error,
            NotImplementedError,
            OSError,
            EOFError,
            ValueError,
        ) as exc:
            # zlib.error: a damaged deflate stream; NotImplementedError: an unknown method.
            _remove(staging)
            raise PackageError(f"Could not unpack the deployment package: {exc}") from exc
        return target


def _extract(archive: zipfile.ZipFile, root: Path, *, stop: threading.Event | None) -> None:
    written = 0
    for entry in archive.infolist():
        if stop is not None and stop.is_set():
            raise PackageError("unpacking was interrupted by a shutdown")
        name = _safe_name(entry.filename)
        if name is None:
            raise PackageError(f"entry outside the package: {entry.filename!r}")
        target = root / name
        mode = (entry.external_attr >> 16) & 0o7777
        if entry.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(entry.external_attr >> 16):
            link = archive.read(entry).decode()
            if _safe_name(posixpath.join(posixpath.dirname(name), link)) is None:
                raise PackageError(f"link pointing outside the package: {entry.filename!r}")
            target.symlink_to(link)
            continue
        with archive.open(entry) as source, open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                # The directory's sizes were checked, but they are the archive's own claim.
                if written > MAX_UNZIPPED_BYTES:
                    raise PackageError("unzipped size exceeds the limit")
                out.write(chunk)
        # Zips made on Windows carry no unix mode: default to rw-r--r--.
        os.chmod(target, (mode & 0o777) or 0o644)


def _safe_name(name: str) -> str | None:
    """The entry's path relative to the package root, or None if it would leave it."""
    if name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return None
    normal = posixpath.normpath(name)
    if normal == ".." or normal.startswith("../") or posixpath.isabs(normal):
        return None
    return normal


def _make_read_only(root: Path) -> None:
    for directory, subdirectories, files in os.walk(root):
        for item in (*subdirectories, *files):
            path = Path(directory, item)
            if not path.is_symlink():
                path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    root.chmod(0o555)


def _remove(path: Path) -> None:
    # Read-only directories cannot lose their entries until they are writable again.
    for directory, _, _ in os.walk(path):
        os.chmod(directory, 0o755)
    shutil.rmtree(path, ignore_errors=True)
