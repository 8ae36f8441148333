"""The platform's home directory: owner-only permissions, and one platform at a time.

``embedded.run`` calls ``make_private`` first thing: from then on everything the process
(and every agent and runtime it starts, which inherit the umask) creates is owner-only,
and what an earlier version left readable under the home is repaired. The home holds
functions' environment values (``state.db`` and its WAL), their code, logs, the event
queue and the admin keys; nobody else on the host has any business reading them.

``lock`` then takes an ``flock`` on ``<home>/platform.lock`` for the rest of the
process's life (the kernel drops it when the process dies, ``kill -9`` included, so a
stale lock cannot exist). A second ``kubelambda up`` on the same home is refused with
the pid and URL of the running one instead of serving the same ``state.db`` twice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from kubelambda.launch.errors import PlatformStartError

__all__ = ["LOCK_FILE", "lock", "make_private"]

LOCK_FILE = "platform.lock"
_UMASK = 0o077


def make_private(home: Path) -> None:
    """Owner-only from now on (umask 077), the home itself 0700, and group and other
    permissions removed from everything already under it (symlinks left alone)."""
    os.umask(_UMASK)
    home.mkdir(parents=True, exist_ok=True)
    for path in (home, *_tree(home)):
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & _UMASK:
            continue
        # Only bits are taken away: a read-only code tree stays read-only.
        with contextlib.suppress(FileNotFoundError):
            path.chmod(stat.S_IMODE(mode) & ~_UMASK)


def _tree(home: Path) -> Iterator[Path]:
    for directory, subdirectories, files in os.walk(home):
        for name in (*subdirectories, *files):
            yield Path(directory, name)


@contextlib.contextmanager
def lock(home: Path, *, url_file: Path) -> Iterator[None]:
    """Hold the home's lock while the block runs; ``PlatformStartError`` naming the
    running platform when another process holds it."""
    path = home / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise PlatformStartError(_running_one(fd, home, url_file)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _running_one(fd: int, home: Path, url_file: Path) -> str:
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
    try:
        where = f"serving at {url_file.read_text().strip()}"
    except OSError:
        where = "still starting"
    return (
        f"another kubelambda platform (pid {pid}) is already running on {home}, {where}; "
        "stop it first, or start this one with another --home"
    )
