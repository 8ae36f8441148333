"""What a function instance may reach on disk when it runs as a user of its own.

``controller.backends.local.LocalProcessBackend`` uses this only when the platform runs
as root and its instances as the users of ``local_users``. The home stays closed to
them: it is root's and 0700, and its parent directories are whatever the host made them
(``/root`` is 0700 itself), so nothing an instance needs can be reached by a path through
it. What an instance needs lives in a directory of the platform's own instead:
``mkdtemp`` under the system's temporary directory, root's and 0711 (entered by anyone,
listed by nobody), its path recorded in ``<home>/instance-files`` so that the next start
on the home removes what a killed run left there (``remove_leftovers``). Inside:

``code/<gid>-<sha256>/``
    A copy of the unpacked package (``LAMBDA_TASK_ROOT``), root's with the function's
    group, 0750 and 0640 (executables stay executable): the function reads its code,
    cannot change it (as on Lambda), and no other function reads it. One copy per
    function and package, made while its version is Pending (or at its first instance,
    when the platform restarted since); copying per function is what lets two functions
    run the same package without sharing a group.
``tmp/<instance id>/``
    The instance's ``TMPDIR`` and ``HOME``, its user's and 0700, removed when the instance
    goes.
``runtime/``
    A copy of the python runtimes' bootstrap (``KUBELAMBDA_AGENT_RUNTIME_DIR``), readable
    by all: the agent's own package may be installed where they cannot reach it.

An instance's log stays in the home (``logs/<function>/<version>/``, served from there):
``share_log_directory`` gives that one directory to the function's group (root's, 0770),
so the agent can create and rotate its log in it, and the agent reaches it through its
working directory (``agent_shim`` enters it before giving up root), not through the
closed path above it.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import stat
import tempfile
from pathlib import Path

from kubelambda_agent import config as agent_config

from controller.backends.local_users import InstanceUser

__all__ = ["RECORD_FILE", "InstanceFiles", "recorded", "remove_leftovers", "share_log_directory"]

RECORD_FILE = "instance-files"
_TRAVERSE_ONLY = 0o711


class InstanceFiles:
    """The platform's directory for its instances' files, made at its first use."""

    def __init__(self, home: Path, *, parent: Path | None = None) -> None:
        self._home = home
        self._parent = parent
        self._root: Path | None = None

    @property
    def root(self) -> Path:
        """The directory (created, and recorded in the home, on first use)."""
        if self._root is None:
            root = Path(tempfile.mkdtemp(prefix="kubelambda-", dir=self._parent))
            root.chmod(_TRAVERSE_ONLY)
            for part in ("code", "tmp", "runtime"):
                (root / part).mkdir(mode=_TRAVERSE_ONLY)
                (root / part).chmod(_TRAVERSE_ONLY)  # mkdir's mode passes the umask
            bootstrap = root / "runtime" / agent_config.BOOTSTRAP_SCRIPT
            source = importlib.resources.files("kubelambda_agent") / agent_config.BOOTSTRAP_SCRIPT
            bootstrap.write_bytes(source.read_bytes())
            bootstrap.chmod(0o444)
            (self._home / RECORD_FILE).write_text(f"{root}\n")
            self._root = root
        return self._root

    @property
    def runtime(self) -> Path:
        """The directory with the python runtimes' bootstrap."""
        return self.root / "runtime"

    def copied_code(self, *, sha256_hex: str, user: InstanceUser) -> Path | None:
        """``user``'s copy of the package, if ``code`` made it already."""
        copy = self._code_copy(sha256_hex, user)
        return copy if copy.exists() else None

    def code(self, unpacked: Path, *, sha256_hex: str, user: InstanceUser) -> Path:
        """The copy of the unpacked package ``unpacked`` that ``user`` runs (made now,
        unless it was already)."""
        copy = self._code_copy(sha256_hex, user)
        if copy.exists():
            return copy
        staging = Path(tempfile.mkdtemp(dir=copy.parent, prefix=f".{copy.name}-"))
        try:
            shutil.copytree(unpacked, staging, symlinks=True, dirs_exist_ok=True)
            _readable_by_group(staging, user.gid)
            try:
                staging.rename(copy)
            except OSError:
                # Another instance of the function made it meanwhile; theirs is the same.
                if not copy.exists():
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return copy

    def _code_copy(self, sha256_hex: str, user: InstanceUser) -> Path:
        return self.root / "code" / f"{user.gid}-{sha256_hex}"

    def discard_code(self, sha256_hex: str) -> None:
        """Remove every function's copy of a package the code store collected."""
        if self._root is not None:
            for copy in (self._root / "code").glob(f"*-{sha256_hex}"):
                shutil.rmtree(copy, ignore_errors=True)

    def private_directory(self, instance_id: str, user: InstanceUser) -> Path:
        """A new directory only ``user`` may enter, for one instance."""
        directory = self.root / "tmp" / instance_id
        directory.mkdir(mode=0o700)
        os.chown(directory, user.uid, user.gid)
        return directory

    def release(self, instance_id: str) -> None:
        """Remove an instance's private directory (once its processes are gone)."""
        if self._root is not None:
            # rmtree never follows a link the function may have left in there.
            shutil.rmtree(self._root / "tmp" / instance_id, ignore_errors=True)

    def remove(self) -> None:
        """Remove the directory and its record (the platform is stopping)."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            (self._home / RECORD_FILE).unlink(missing_ok=True)
            self._root = None


def recorded(home: Path) -> Path | None:
    """The instance files an earlier run on ``home`` recorded, if they are still there
    and still the platform's (not something put at that path since)."""
    try:
        root = Path((home / RECORD_FILE).read_text().strip())
        status = root.lstat()
    except (OSError, ValueError):
        return None
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid():
        return None
    return root


def remove_leftovers(home: Path) -> None:
    """Remove the instance files an earlier run on ``home`` left (after its processes)."""
    root = recorded(home)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
    (home / RECORD_FILE).unlink(missing_ok=True)


def share_log_directory(directory: Path, user: InstanceUser) -> None:
    """Let the function's group create and rename files in its log directory."""
    os.chown(directory, -1, user.gid)
    directory.chmod(0o770)


def _readable_by_group(root: Path, gid: int) -> None:
    """Give the tree to ``gid`` read-only: the group gets the owner's read and execute
    bits, nobody gets write (links keep theirs: they have none of their own)."""
    for path in (root, *(Path(d, n) for d, ds, fs in os.walk(root) for n in (*ds, *fs))):
        os.chown(path, -1, gid, follow_symlinks=False)
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            readable = stat.S_IMODE(mode) & 0o500
            path.chmod(readable | readable >> 3)
