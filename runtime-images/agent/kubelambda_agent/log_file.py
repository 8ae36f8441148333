"""The instance log file, rotated at a size so a chatty function cannot fill the disk.

``agent`` writes every function log line through ``LogFile.write``. With
``KUBELAMBDA_AGENT_LOG_FILE`` set (embedded mode: the local backend names the instance's
log file) the agent appends to that file and, before a write would take it past
``KUBELAMBDA_AGENT_LOG_MAX_BYTES``, renames it to ``<file>.1`` (replacing the previous
one) and starts a new one, so an instance never holds more than twice the bound on disk.
A single write larger than the bound keeps only its newest bytes: the older ones would
have been rotated out anyway. Without a file (in a pod, where the kubelet collects and
rotates stdout) it writes to stdout as it is.

The agent's own stderr follows the file across rotations (both are pointed at it).
"""

from __future__ import annotations

import os

__all__ = ["LogFile"]


class LogFile:
    __slots__ = ("_max_bytes", "_path", "_size")

    def __init__(self, path: str | None, max_bytes: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._size = 0
        if path is not None:
            self._size = self._reopen(truncate=False)

    def write(self, data: bytes) -> None:
        """Append ``data`` to the log, rotating first if it would not fit."""
        if self._path is not None:
            if len(data) > self._max_bytes:
                data = data[-self._max_bytes :]
            if self._size + len(data) > self._max_bytes:
                self._rotate()
            self._size += len(data)
        _write_all(data)

    def _rotate(self) -> None:
        assert self._path is not None
        try:
            os.replace(self._path, self._path + ".1")
            self._size = self._reopen(truncate=True)
        except OSError:
            # Cannot rotate (the directory went away?): stop logging rather than grow.
            self._size = self._max_bytes

    def _reopen(self, *, truncate: bool) -> int:
        assert self._path is not None
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        fd = os.open(self._path, flags, 0o600)
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(1, view)
        except OSError:
            # Nobody reads our stdout any more: the logs are lost, invocations go on.
            return
        view = view[written:]
