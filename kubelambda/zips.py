"""Zip packages as untrusted input: cheap checks before one is accepted, and a safe unpack.

The management API calls ``inspect`` on every upload before answering (the archive's
directory only); an instance backend calls ``unpack`` to make the read-only directory a
runtime starts in. Entries that would land outside the package directory (absolute
names, ``..``, links pointing out) are refused, and so are archives that unpack past
Lambda's size limit, whatever their directory claims.
"""

from __future__ import annotations

import binascii
import io
import os
import posixpath
import shutil
import stat
import tempfile
import threading
import zipfile
import zlib
from pathlib import Path

from kubelambda import errors

__all__ = ["MAX_UNZIPPED_BYTES", "UnpackError", "inspect", "remove_tree", "unpack"]

# Lambda's limit on a function's unzipped size.
MAX_UNZIPPED_BYTES = 262_144_000
_MAX_ENTRIES = 100_000
_CHUNK = 1 << 20


class UnpackError(ValueError):
    """The package could not be unpacked; the message becomes the version's state reason."""


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
            f"The zip file must contain a file named {require!r} at its top level for this runtime"
        )


def unpack(archive_path: Path, target: Path, *, stop: threading.Event | None = None) -> Path:
    """Unpack the zip at ``archive_path`` into the read-only directory ``target`` (once:
    an existing ``target`` is returned as it is). Setting ``stop`` abandons the unpack
    between two entries (at shutdown). Raises ``UnpackError``."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        with zipfile.ZipFile(archive_path) as archive:
            _extract(archive, staging, stop=stop)
        _make_read_only(staging)
        try:
            staging.rename(target)
        except OSError:
            # Another unpack of the same content won the race; theirs is identical.
            if not target.exists():
                raise
            remove_tree(staging)
    except (
        zipfile.BadZipFile,
        zlib.error,
        NotImplementedError,
        OSError,
        EOFError,
        ValueError,
    ) as exc:
        # zlib.error: a damaged deflate stream; NotImplementedError: an unknown method.
        remove_tree(staging)
        raise UnpackError(f"Could not unpack the deployment package: {exc}") from exc
    return target


def _extract(archive: zipfile.ZipFile, root: Path, *, stop: threading.Event | None) -> None:
    written = 0
    for entry in archive.infolist():
        if stop is not None and stop.is_set():
            raise UnpackError("unpacking was interrupted by a shutdown")
        name = _safe_name(entry.filename)
        if name is None:
            raise UnpackError(f"entry outside the package: {entry.filename!r}")
        target = root / name
        mode = (entry.external_attr >> 16) & 0o7777
        if entry.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(entry.external_attr >> 16):
            link = archive.read(entry).decode()
            if _safe_name(posixpath.join(posixpath.dirname(name), link)) is None:
                raise UnpackError(f"link pointing outside the package: {entry.filename!r}")
            target.symlink_to(link)
            continue
        with archive.open(entry) as source, open(target, "wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                # The directory's sizes were checked, but they are the archive's own claim.
                if written > MAX_UNZIPPED_BYTES:
                    raise UnpackError("unzipped size exceeds the limit")
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


def remove_tree(path: Path) -> None:
    # Read-only directories cannot lose their entries until they are writable again.
    for directory, _, _ in os.walk(path):
        os.chmod(directory, 0o755)
    shutil.rmtree(path, ignore_errors=True)
