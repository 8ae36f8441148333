"""Fetch a function's code package into its task root, before anything else starts.

In Kubernetes mode the agent's first step in a pod (``__main__``, when the variables
below are set) is ``main``, which reads

    KUBELAMBDA_CODE_URL     http(s) URL the platform serves the zip at
    KUBELAMBDA_CODE_SHA256  the package's SHA-256, hex
    KUBELAMBDA_CODE_TOKEN   bearer token for that URL (from a Secret; never printed)
    KUBELAMBDA_CODE_DIR     where to unpack (the ``code`` emptyDir, ``/var/task``)

It streams the zip into a temporary file (``/tmp``, the pod's ``tmp`` emptyDir) while
hashing it, stops past Lambda's 50 MB direct-upload limit, retries what may pass
(connection failures, 5xx, a cut-off body) for about 30 s, refuses a digest mismatch,
then unpacks into the code directory. The zip was inspected at upload, but it is
untrusted here all the same: absolute names, ``..``, links and special files are refused,
the unpacked size is capped at Lambda's 250 MB whatever the archive claims, and files
keep their executable bit but lose every write bit. Whatever is already in the code
directory (a previous attempt of this init container) is removed first.

Every failure makes the agent exit 1 with one line on stderr (the container's last log
line, which the pod's status and ``kubectl logs`` show); a bad setting exits 2. It runs
in the agent's container rather than an init container of its own because a pod's next
container starts only at the kubelet's next relist (up to a second later), on every cold
start; the files it writes lose every write bit. Standard library only, like the rest of
the agent.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import ssl
import stat
import sys
import tempfile
import time
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from kubelambda_agent.config import CODE_URL_VARIABLE as URL_VARIABLE

__all__ = [
    "MAX_UNZIPPED_BYTES",
    "MAX_ZIPPED_BYTES",
    "URL_VARIABLE",
    "VARIABLES",
    "CodeSource",
    "FetchError",
    "download",
    "fetch",
    "main",
    "parse_environment",
    "unpack",
]

# Everything this step reads, which the agent removes from the function's environment.
VARIABLES = (URL_VARIABLE, "KUBELAMBDA_CODE_SHA256", "KUBELAMBDA_CODE_TOKEN", "KUBELAMBDA_CODE_DIR")

# Lambda's limits: a directly uploaded zip, and a function's unzipped size.
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 262_144_000
# How long transient failures are retried: the platform's code server may still be
# starting (or restarting) when the first pods of a version are scheduled.
RETRY_SECONDS = 30.0
_FIRST_DELAY = 0.25
_MAX_DELAY = 4.0
_CONNECT_TIMEOUT = 10.0
_MAX_ENTRIES = 100_000
_CHUNK = 1 << 16
_PREFIX = "fetch-code:"


class FetchError(Exception):
    """The package cannot be had; the message is the one line the agent prints.

    ``retriable``: the same request may succeed later (connection refused, 5xx)."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


@dataclass(frozen=True, slots=True)
class CodeSource:
    """Where the package is and how to check it. ``repr`` hides the token."""

    url: str
    sha256: str
    token: str

    def __repr__(self) -> str:
        return f"CodeSource(url={self.url!r}, sha256={self.sha256!r})"

    @property
    def shown_url(self) -> str:
        """The URL as printed: without credentials, query or fragment."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_environment(environ: Mapping[str, str]) -> tuple[CodeSource, str]:
    """The package's source and the directory to unpack it in; ``ValueError`` names the
    variable that is missing or wrong (never its value, for the token)."""
    url = environ.get(URL_VARIABLE, "")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"KUBELAMBDA_CODE_URL={url!r} is not an http(s) URL")
    sha256 = environ.get("KUBELAMBDA_CODE_SHA256", "").lower()
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("KUBELAMBDA_CODE_SHA256 must be 64 hex digits")
    token = environ.get("KUBELAMBDA_CODE_TOKEN", "")
    # A header value: anything but printable ASCII would break the request (or split it).
    if not token or not token.isascii() or not token.isprintable():
        raise ValueError("KUBELAMBDA_CODE_TOKEN must be set to printable ASCII")
    directory = environ.get("KUBELAMBDA_CODE_DIR", "")
    # Its contents are removed before unpacking: never a relative path or the root.
    if not os.path.isabs(directory) or os.path.realpath(directory) == "/":
        raise ValueError(f"KUBELAMBDA_CODE_DIR={directory!r} must be an absolute directory")
    if not os.path.isdir(directory):
        raise ValueError(f"KUBELAMBDA_CODE_DIR={directory!r} is not a directory")
    return CodeSource(url=url, sha256=sha256, token=token), directory


def download(
    source: CodeSource,
    out: BinaryIO,
    *,
    retry_seconds: float = RETRY_SECONDS,
    max_bytes: int = MAX_ZIPPED_BYTES,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Write the package into ``out`` and check its digest; return its size in bytes.

    Transient failures are retried with a doubling delay until ``retry_seconds`` have
    passed; anything else fails at once. Raises ``FetchError``."""
    deadline = clock() + retry_seconds
    delay = _FIRST_DELAY
    attempts = 0
    while True:
        attempts += 1
        try:
            size, digest = _get(source, out, max_bytes=max_bytes)
            break
        except FetchError as exc:
            if not exc.retriable:
                raise
            if clock() + delay > deadline:
                raise FetchError(f"{exc} (gave up after {attempts} attempts)") from exc
        sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)
    if digest != source.sha256:
        raise FetchError(
            f"SHA-256 mismatch for {source.shown_url}: got {digest}, expected {source.sha256}"
        )
    return size


def _get(source: CodeSource, out: BinaryIO, *, max_bytes: int) -> tuple[int, str]:
    """One GET into ``out`` (from its start): the body's size and hex SHA-256."""
    parts = urllib.parse.urlsplit(source.url)
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=_CONNECT_TIMEOUT
        )
    else:
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=_CONNECT_TIMEOUT
        )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        # http.client follows no redirect: the token is never sent to another place.
        connection.request(
            "GET",
            target,
            headers={"Authorization": f"Bearer {source.token}", "Accept": "application/zip"},
        )
        response = connection.getresponse()
        if response.status != 200:
            raise FetchError(
                f"GET {source.shown_url} answered {response.status} {response.reason}",
                retriable=response.status >= 500,
            )
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise _too_big(source, max_bytes)
        out.seek(0)
        out.truncate()
        digest = hashlib.sha256()
        size = 0
        while chunk := response.read(_CHUNK):
            size += len(chunk)
            # The length header is the server's claim; the bytes are what counts.
            if size > max_bytes:
                raise _too_big(source, max_bytes)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        return size, digest.hexdigest()
    except ssl.SSLCertVerificationError as exc:
        raise FetchError(f"cannot fetch {source.shown_url}: {exc.verify_message}") from exc
    except (OSError, http.client.HTTPException) as exc:
        # Refused, reset, timed out, or the body was cut short: all may pass.
        reason = str(exc) or type(exc).__name__
        raise FetchError(f"cannot fetch {source.shown_url}: {reason}", retriable=True) from exc
    finally:
        connection.close()


def _too_big(source: CodeSource, max_bytes: int) -> FetchError:
    return FetchError(
        f"the package at {source.shown_url} is larger than {max_bytes} bytes "
        "(Lambda's limit for a zipped package)"
    )


def unpack(archive_file: BinaryIO, directory: str, *, max_bytes: int = MAX_UNZIPPED_BYTES) -> int:
    """Empty ``directory`` and unpack the zip into it, read-only; return the file count.

    Every entry is checked before anything is written; the unpacked size is counted
    again while writing, since the archive's directory is only its own claim.
    Raises ``FetchError``."""
    try:
        with zipfile.ZipFile(archive_file) as archive:
            entries = _checked_entries(archive, max_bytes=max_bytes)
            _empty(directory)
            return _extract(archive, entries, directory, max_bytes=max_bytes)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as exc:
        raise FetchError(f"the package is not a readable zip: {exc}") from exc
    except OSError as exc:
        raise FetchError(f"cannot unpack the package into {directory}: {exc}") from exc


def _checked_entries(
    archive: zipfile.ZipFile, *, max_bytes: int
) -> list[tuple[str, zipfile.ZipInfo]]:
    entries = archive.infolist()
    if len(entries) > _MAX_ENTRIES:
        raise FetchError(f"the package has more than {_MAX_ENTRIES} entries")
    if sum(entry.file_size for entry in entries) > max_bytes:
        raise _unzips_too_big(max_bytes)
    checked = []
    for entry in entries:
        name = _safe_name(entry.filename)
        if name is None:
            raise FetchError(f"the package has an entry outside its directory: {entry.filename!r}")
        kind = stat.S_IFMT(entry.external_attr >> 16)
        if stat.S_ISLNK(kind):
            raise FetchError(f"the package has a symbolic link, which is refused: {name!r}")
        if kind and not (stat.S_ISREG(kind) or stat.S_ISDIR(kind)):
            raise FetchError(f"the package has a special file, which is refused: {name!r}")
        if name != ".":
            checked.append((name, entry))
    return checked


def _safe_name(name: str) -> str | None:
    """The entry's path relative to the package root, or None if it could leave it."""
    if name.startswith("/") or "\\" in name or "\x00" in name:
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts) or "."


def _extract(
    archive: zipfile.ZipFile,
    entries: list[tuple[str, zipfile.ZipInfo]],
    directory: str,
    *,
    max_bytes: int,
) -> int:
    created: set[str] = set()
    written = files = 0
    for name, entry in entries:
        path = os.path.join(directory, name)
        if entry.is_dir():
            _make_dirs(path, created)
            continue
        _make_dirs(os.path.dirname(path), created)
        # O_EXCL + O_NOFOLLOW: a name used twice in the archive fails instead of overwriting.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with archive.open(entry) as source, os.fdopen(os.open(path, flags, 0o600), "wb") as out:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise _unzips_too_big(max_bytes)
                out.write(chunk)
            # Keep the read and execute bits (a `bootstrap` must stay executable), drop
            # every write bit and setuid/setgid; a zip made on Windows carries no mode.
            mode = (entry.external_attr >> 16) & 0o555
            os.fchmod(out.fileno(), (mode | 0o400) if mode else 0o444)
        files += 1
    # Deepest first, so each is still writable while its children are made read-only.
    for path in sorted(created, key=len, reverse=True):
        os.chmod(path, 0o555)
    return files


def _make_dirs(path: str, created: set[str]) -> None:
    missing = []
    while path not in created and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for each in reversed(missing):
        os.mkdir(each, 0o755)
        created.add(each)


def _unzips_too_big(max_bytes: int) -> FetchError:
    return FetchError(
        f"the package unzips to more than {max_bytes} bytes (Lambda's limit for a function)"
    )


def _empty(directory: str) -> None:
    """Remove what a previous attempt left (read-only directories included)."""
    for entry in os.scandir(directory):
        if entry.is_dir(follow_symlinks=False):
            for root, _, _ in os.walk(entry.path):
                os.chmod(root, 0o700)
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def fetch(source: CodeSource, directory: str, *, retry_seconds: float = RETRY_SECONDS) -> str:
    """Download, verify and unpack; return the line that reports success."""
    with tempfile.TemporaryFile(prefix="kubelambda-code-") as archive_file:
        size = download(source, archive_file, retry_seconds=retry_seconds)
        files = unpack(archive_file, directory)
    return f"{_PREFIX} {files} files from {size} bytes (sha256 {source.sha256}) in {directory}"


def main(environ: Mapping[str, str]) -> int:
    try:
        source, directory = parse_environment(environ)
    except ValueError as exc:
        print(f"{_PREFIX} invalid configuration: {exc}", file=sys.stderr)
        return 2
    try:
        print(fetch(source, directory), flush=True)
    except FetchError as exc:
        print(f"{_PREFIX} {exc}", file=sys.stderr)
        return 1
    return 0
