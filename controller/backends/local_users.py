"""The unprivileged users function instances run as when the platform runs as root.

``kubelambda.launch.embedded`` calls ``for_platform``, which gives ``InstanceUsers`` only
when the platform's effective uid is 0, and hands it to
``controller.backends.local.LocalProcessBackend``. The backend asks ``user_for`` which
user a function's instances run as (``agent_shim`` switches to it before the agent
starts) and, through ``kubelambda.runtimes.find_python``, whether such a user
``can_run`` an interpreter at all: an interpreter installed under a directory only root
may enter (pyenv under ``/root``, say) cannot start as anyone else.

Each function has a user (uid, and the gid of the same number) of its own, so functions
can neither read each other's files nor signal each other's processes. The uid is
``base + 1 + sha256(namespace/function) mod (COUNT - 1)``: the same across restarts, and
nobody's on the host as long as ``base`` starts an unused range
(``KUBELAMBDA_INSTANCE_UID_BASE``; its default is far above regular and system users and
below the ids some tools take for negative). Two
functions of one run that hash to the same uid are told apart: the later one takes the
next free uid. ``base`` itself is kept for probing interpreters. The kernel needs no
``/etc/passwd`` entry for any of this; without one, ``getpass.getuser()`` fails unless
``USER`` or ``LOGNAME`` is set, and ``~`` is ``$HOME``, which the backend points at the
instance's private directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from dataclasses import dataclass

__all__ = ["COUNT", "InstanceUser", "InstanceUsers", "for_platform"]

logger = logging.getLogger(__name__)

# How many uids the range holds: functions, plus the probing one at its start.
COUNT = 1_000_000

# Starts the interpreter as the bootstrap would (its standard library, json, sockets).
_PROBE = ("-I", "-c", "import encodings, json, socket")
_PROBE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class InstanceUser:
    uid: int
    gid: int


class InstanceUsers:
    """Hands out one user per function from ``[base, base + COUNT)``."""

    def __init__(self, base: int) -> None:
        if base < 1 or base + COUNT > 2**31:
            raise ValueError(f"uids {base}..{base + COUNT - 1} are not all in 1..2147483647")
        self._base = base
        self._users: dict[tuple[str, str], InstanceUser] = {}
        self._taken: set[int] = set()
        self._runnable: dict[str, bool] = {}

    def user_for(self, namespace: str, function_name: str) -> InstanceUser:
        """The user of this function's instances (the same for the whole run)."""
        key = (namespace, function_name)
        user = self._users.get(key)
        if user is None:
            digest = hashlib.sha256(f"{namespace}/{function_name}".encode()).digest()
            offset = int.from_bytes(digest[:8], "big") % (COUNT - 1)
            while self._base + 1 + offset in self._taken:
                offset = (offset + 1) % (COUNT - 1)
            uid = self._base + 1 + offset
            self._taken.add(uid)
            user = self._users[key] = InstanceUser(uid, uid)
        return user

    def can_run(self, executable: str) -> bool:
        """Whether an instance's user can start the Python interpreter ``executable``
        (asked once per interpreter: it takes a process start)."""
        runnable = self._runnable.get(executable)
        if runnable is None:
            runnable = self._runnable[executable] = self._probe(executable)
        return runnable

    def _probe(self, executable: str) -> bool:
        try:
            probe = subprocess.run(
                [executable, *_PROBE],
                user=self._base,
                group=self._base,
                extra_groups=[],
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = str(exc)
        else:
            if probe.returncode == 0:
                return True
            last_lines = probe.stderr.decode(errors="replace").strip().splitlines()[-1:]
            reason = last_lines[0] if last_lines else f"exit status {probe.returncode}"
        # Not a warning: another interpreter of the version may do (the runtimes the
        # platform offers in the end are logged when it starts).
        logger.info(
            "interpreter skipped: function instances run as other users, who cannot start "
            "it interpreter=%s reason=%r",
            executable,
            reason,
        )
        return False


def for_platform(base: int) -> InstanceUsers | None:
    """Users for the instances when this process runs as root; ``None`` otherwise (the
    instances then run as the platform's own user)."""
    return InstanceUsers(base) if os.geteuid() == 0 else None
