"""Zip packages as untrusted input: cheap checks before one is accepted, and a safe unpack.

The management API calls ``inspect`` on every upload before answering (the archive's
directory only); an instance backend calls ``unpack`` to make the read-only directory a
runtime starts in. Entries that would land outside the package directory (absolute
names, ``..``, links pointing out, directly or through other links of the package, entries
under a link, names used twice) are refused at both steps, and so are archives that unpack
past Lambda's size limit, whatever their directory claims. ``unpack`` writes directories,
then files, then links, never opening anything through a link.
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
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from kubelambda import errors

__all__ = ["MAX_UNZIPPED_BYTES", "UnpackError", "inspect", "remove_tree", "unpack"]

# Lambda's limit on a function's unzipped size.
MAX_UNZIPPED_BYTES = 262_144_000
_MAX_ENTRIES = 100_000
_CHUNK = 1 << 20
_MAX_LINK_BYTES = 4096
# As the kernel's limit on links followed in one lookup.
_MAX_LINK_HOPS = 40


class UnpackError(ValueError):
    """The package could not be unpacked; the message becomes the version's state reason."""


def inspect(data: bytes, *, require: str | None = None) -> None:
    """Refuse a zip that cannot be read, escapes its directory, is too big, or lacks
    ``require`` (a top-level file such as ``bootstrap``). Reads the directory, and the
    targets of symbolic links (a few bytes each), never the files."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if len(entries) > _MAX_ENTRIES:
                raise errors.InvalidParameterValue(
                    f"The zip file has more than {_MAX_ENTRIES} entries"
                )
            unzipped = sum(entry.file_size for entry in entries)
            if unzipped > MAX_UNZIPPED_BYTES:
                raise errors.InvalidParameterValue(
                    f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"
                )
            try:
                plan = _plan(archive)
            except UnpackError as exc:
                raise errors.InvalidParameterValue(f"The zip file is refused: {exc}") from exc
    except (
        zipfile.BadZipFile,
        binascii.Error,
        zlib.error,
        NotImplementedError,
        ValueError,
        EOFError,
    ) as exc:
        if isinstance(exc, errors.LambdaError):
            raise
        raise errors.InvalidParameterValue(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from exc
    if require is not None and require not in plan.files:
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
        if isinstance(exc, UnpackError):
            raise
        raise UnpackError(f"Could not unpack the deployment package: {exc}") from exc
    return target


@dataclass(frozen=True, slots=True)
class _Plan:
    """What an archive unpacks to, checked as a whole: directories, regular files (name ->
    entry) and links (name -> target). No name is two of these, no entry lies under a
    link, and every link resolves inside the package through all the others."""

    directories: frozenset[str]
    files: dict[str, zipfile.ZipInfo]
    links: dict[str, str]


def _plan(archive: zipfile.ZipFile) -> _Plan:
    directories: set[str] = set()
    files: dict[str, zipfile.ZipInfo] = {}
    links: dict[str, str] = {}
    for entry in archive.infolist():
        name = _safe_name(entry.filename)
        if name is None:
            raise UnpackError(f"entry outside the package: {entry.filename!r}")
        if name == ".":
            continue
        if entry.is_dir():
            directories.add(name)
        elif stat.S_ISLNK(entry.external_attr >> 16):
            if entry.file_size > _MAX_LINK_BYTES:
                raise UnpackError(f"link target too long: {entry.filename!r}")
            if name in links or name in files:
                raise UnpackError(f"entry appears twice in the package: {entry.filename!r}")
            links[name] = archive.read(entry).decode("utf-8", errors="replace")
        else:
            if name in files or name in links:
                raise UnpackError(f"entry appears twice in the package: {entry.filename!r}")
            files[name] = entry
    # Parents are made as directories: none may also be a file or a link.
    for name in (*directories, *files, *links):
        parent = posixpath.dirname(name)
        while parent:
            if parent in links:
                raise UnpackError(f"entry under a link in the package: {name!r}")
            if parent in files:
                raise UnpackError(f"entry under a file in the package: {name!r}")
            directories.add(parent)
            parent = posixpath.dirname(parent)
    for name in directories:
        if name in files or name in links:
            raise UnpackError(f"entry appears twice in the package: {name!r}")
    for name, link in links.items():
        if _resolve(links, posixpath.dirname(name), link) is None:
            raise UnpackError(f"link pointing outside the package: {name!r} -> {link!r}")
    return _Plan(frozenset(directories), files, links)


def _resolve(links: dict[str, str], directory: str, path: str) -> str | None:
    """Where ``path``, relative to the package's ``directory``, ends up once every link of
    the package on the way is followed (as the kernel would), or None if it leaves the
    package, is absolute or loops."""
    if not path or path.startswith("/") or "\x00" in path:
        return None
    parts = [part for part in directory.split("/") if part]
    pending = deque(path.split("/"))
    hops = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        candidate = "/".join((*parts, part))
        link = links.get(candidate)
        if link is None:
            parts.append(part)
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS or not link or link.startswith("/"):
            return None
        pending.extendleft(reversed(link.split("/")))
    return "/".join(parts)


def _extract(archive: zipfile.ZipFile, staging: Path, *, stop: threading.Event | None) -> None:
    """Directories, then files, then links: nothing is written once a link exists, and
    nothing is ever opened through one (O_NOFOLLOW, O_EXCL, parents checked by lstat)."""
    plan = _plan(archive)
    root = os.path.realpath(staging)
    for name in sorted(plan.directories, key=lambda name: name.count("/")):
        _check_stop(stop)
        os.mkdir(_inside(root, name), 0o755)
    written = 0
    for name, entry in plan.files.items():
        _check_stop(stop)
        destination = _inside(root, name)
        mode = (entry.external_attr >> 16) & 0o777
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(destination, flags, 0o600)
        with archive.open(entry) as source, os.fdopen(descriptor, "wb") as out:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                # The directory's sizes were checked, but they are the archive's own claim.
                if written > MAX_UNZIPPED_BYTES:
                    raise UnpackError("unzipped size exceeds the limit")
                out.write(chunk)
            # Zips made on Windows carry no unix mode: default to rw-r--r--.
            os.fchmod(out.fileno(), mode or 0o644)
    for name, link in plan.links.items():
        _check_stop(stop)
        destination = _inside(root, name)
        os.symlink(link, destination)
        # The plan resolved every link inside; the disk must agree.
        if not _within(root, os.path.realpath(destination)):
            raise UnpackError(f"link pointing outside the package: {name!r}")


def _inside(root: str, name: str) -> str:
    """The absolute path of ``name`` under ``root``, refusing one whose parents are not
    plain directories of the package (a link planted by anything would show here)."""
    destination = os.path.join(root, name)
    if not _within(root, os.path.normpath(destination)):
        raise UnpackError(f"entry outside the package: {name!r}")
    parent = os.path.dirname(destination)
    while parent != root:
        if not stat.S_ISDIR(os.lstat(parent).st_mode):
            raise UnpackError(f"entry under a link in the package: {name!r}")
        parent = os.path.dirname(parent)
    return destination


def _within(root: str, path: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def _check_stop(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise UnpackError("unpacking was interrupted by a shutdown")


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
