"""Start, watch and stop the test daemons; pick and remember their ports; install Debian packages.

Called by the infrastructure modules (`kubelambda_testbed.kafka`, `kubelambda_testbed.prometheus`,
and `kubelambda_testbed.k8s` if it wants to): each one describes its daemon as a `Daemon` (a pid
file, a log file and a marker that must appear in the process's command line) and uses these
helpers so that `python -m kubelambda_testbed up` is idempotent and `down` leaves no process behind.

Daemons run in their own session (process group), detached from the caller, so they outlive
`python -m kubelambda_testbed up` and are stopped as a whole group, children included.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Daemon",
    "InfraError",
    "ensure_debian_packages",
    "locked",
    "persistent_ports",
    "port_open",
    "wait_until",
]

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40

# Daemons this process started. A daemon started from a long-lived process (a pytest session)
# stays its child: we keep its Popen to reap it once it exits, since an unreaped child lingers
# as a zombie (and Popen warns when dropped while the child runs).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class InfraError(RuntimeError):
    """A piece of test infrastructure could not be installed, started or stopped."""


@dataclass(frozen=True)
class Daemon:
    """A background process known by its pid file.

    `marker` must occur in the process's command line (typically its config file path, which
    lives in the state dir): a pid file left over from a reboot may name a pid that now belongs
    to an unrelated process, and we must never report that as running, let alone signal it.
    """

    name: str
    pid_file: Path
    log_file: Path
    marker: str

    def start(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> int:
        """Start argv detached, output appended to the log file; return its pid."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            try:
                process = subprocess.Popen(
                    list(argv),
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise InfraError(f"{self.name} could not be started: {exc}") from exc
        _CHILDREN[process.pid] = process
        self.pid_file.write_text(f"{process.pid}\n")
        log.info("event=started daemon=%s pid=%d log=%s", self.name, process.pid, self.log_file)
        return process.pid

    def pid(self) -> int | None:
        """The pid of the running daemon, or None if it is not running."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        if pid in _CHILDREN:
            # Our own child: poll() is the truth. Its /proc cmdline can read empty for a
            # moment while it execs (the vfork parent resumes before the new argv is set up).
            return pid
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return None
        return pid if self.marker in cmdline else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def stop(self, *, timeout: float = 30.0) -> None:
        """SIGTERM the daemon's process group, SIGKILL it after timeout; remove the pid file."""
        pid = self.pid()
        if pid is not None:
            log.info("event=stopping daemon=%s pid=%d", self.name, pid)
            _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                log.warning(
                    "event=kill daemon=%s pid=%d after_seconds=%.0f", self.name, pid, timeout
                )
                _signal_group(pid, signal.SIGKILL)
                while _alive(pid):
                    time.sleep(0.05)
            log.info("event=stopped daemon=%s pid=%d", self.name, pid)
        self.pid_file.unlink(missing_ok=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    """Whether pid is a live process (an exited child of ours is reaped, not counted)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself contain spaces.
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError as exc:
        raise InfraError(f"not allowed to signal process group {pid}") from exc


def wait_until(
    ready: Callable[[], bool], *, what: str, daemon: Daemon, timeout: float, interval: float = 0.2
) -> float:
    """Poll ready() until it is true; return the seconds waited.

    Fails fast, with the end of the daemon's log, when the daemon dies while we wait.
    """
    started = time.monotonic()
    while not ready():
        if not daemon.is_running():
            raise InfraError(f"{daemon.name} exited while waiting for {what}:\n{daemon.log_tail()}")
        if time.monotonic() - started > timeout:
            raise InfraError(
                f"{daemon.name}: {what} not reached after {timeout:.0f}s:\n{daemon.log_tail()}"
            )
        time.sleep(interval)
    return time.monotonic() - started


def persistent_ports(path: Path, names: Sequence[str]) -> dict[str, int]:
    """Ports for the given names: read from path, or probed free on 127.0.0.1 and saved there.

    Saved so that `up`, `env` and the test fixtures agree on them for as long as the state dir
    lives; probing instead of fixed numbers lets several checkouts run their stacks side by side.
    A name the file lacks (one added since it was written) gets a new port and the others keep
    theirs, so clients already pointed at them stay right.
    """
    saved: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError, ValueError):
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            saved = {n: loaded[n] for n in names if isinstance(loaded.get(n), int)}
    if len(saved) == len(names):
        return saved
    # All sockets stay open until every port is chosen, so the kernel hands out distinct ones;
    # a saved port whose daemon is stopped is free, so a probe may return it: probe again.
    with contextlib.ExitStack() as stack:
        ports = dict(saved)
        for name in names:
            while name not in ports:
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                sock.bind(("127.0.0.1", 0))
                if (port := sock.getsockname()[1]) not in ports.values():
                    ports[name] = port
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ports) + "\n")
    return {n: ports[n] for n in names}


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path, so that concurrent `up`/`down` calls take turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_debian_packages(packages: Sequence[str]) -> None:
    """apt-get install the packages that are not installed yet.

    `apt-get update` runs only when apt knows no installable version of a missing package
    (a fresh machine whose package lists are empty or stale), because it is slow.
    """
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise InfraError(f"Debian packages {missing} are missing and installing them needs root")
    if shutil.which("apt-get") is None:
        raise InfraError(f"Debian packages {missing} are missing and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    updated = False
    if not all(_apt_candidate(p) for p in missing):
        log.info("event=apt-update reason=no-candidate packages=%s", ",".join(missing))
        _run(["apt-get", "update", "-q"], env=env)
        updated = True
    started = time.monotonic()
    log.info("event=apt-install packages=%s", ",".join(missing))
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    try:
        _run(install, env=env)
    except InfraError:
        if updated:
            raise
        # Stale package lists name versions the mirror no longer has: refresh them, retry once.
        log.info("event=apt-update reason=install-failed packages=%s", ",".join(missing))
        _run(["apt-get", "update", "-q"], env=env)
        _run(install, env=env)
    log.info("event=apt-installed packages=%s seconds=%.1f", ",".join(missing), _since(started))


def _dpkg_installed(package: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return result.returncode == 0 and result.stdout.endswith(" installed")


def _apt_candidate(package: str) -> bool:
    result = subprocess.run(
        ["apt-cache", "policy", package], capture_output=True, text=True, check=False
    )
    return "Candidate:" in result.stdout and "Candidate: (none)" not in result.stdout


def _run(argv: Sequence[str], *, env: dict[str, str]) -> None:
    result = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = "\n".join((result.stdout + result.stderr).splitlines()[-LOG_TAIL_LINES:])
        raise InfraError(f"{' '.join(argv)} failed with exit code {result.returncode}:\n{output}")


def _since(started: float) -> float:
    return time.monotonic() - started
