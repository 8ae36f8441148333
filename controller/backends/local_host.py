"""What this host has for local instances: memory and cores, container limits included.

Read once by the embedded launcher (``kubelambda.launch.embedded``) to build the local
backend's ``local_capacity.Budget``. Memory is the lower of the kernel's MemTotal and the
memory limit of our own cgroup or any cgroup above it (v2 ``memory.max``, v1
``memory.limit_in_bytes``): installed in a container, the platform must budget what the
container may use, not what the machine has. Cores are the CPUs this process may run
on (``sched_getaffinity``, which a cpuset narrows), else ``os.cpu_count()``.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from controller.backends.local_capacity import HostResources

__all__ = ["cgroup_memory_limit", "meminfo_total_mb", "read_host"]

_MB = 1024 * 1024


def read_host(root: Path = Path("/")) -> HostResources:
    """The host's memory and cores, reading ``/proc`` and ``/sys/fs/cgroup`` under ``root``."""
    memory = meminfo_total_mb((root / "proc/meminfo").read_text())
    limit = cgroup_memory_limit(root)
    if limit is not None:
        memory = min(memory, limit // _MB)
    return HostResources(memory_mb=memory, cores=_cores())


def meminfo_total_mb(meminfo: str) -> int:
    """MemTotal of a ``/proc/meminfo`` text, in MB."""
    for line in meminfo.splitlines():
        name, _, value = line.partition(":")
        if name == "MemTotal":
            return int(value.split()[0]) // 1024
    raise ValueError("no MemTotal in /proc/meminfo")


def cgroup_memory_limit(root: Path = Path("/")) -> int | None:
    """The lowest memory limit, in bytes, of our cgroup and those above it (``None``
    when none is set or no cgroup file can be read)."""
    try:
        membership = (root / "proc/self/cgroup").read_text()
    except OSError:
        return None
    limits: list[int] = []
    for line in membership.splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            limits += _limits_up(root / "sys/fs/cgroup", path, "memory.max")
        elif "memory" in controllers.split(","):
            limits += _limits_up(root / "sys/fs/cgroup/memory", path, "memory.limit_in_bytes")
    return min(limits) if limits else None


def _limits_up(mount: Path, path: str, name: str) -> list[int]:
    """The numeric values of file ``name`` in the cgroup at ``path`` and its ancestors
    (``max``, the v2 word for none, and unreadable files are left out)."""
    found = []
    cgroup = PurePosixPath(path)
    for directory in (cgroup, *cgroup.parents):
        try:
            text = (mount / str(directory).lstrip("/") / name).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            found.append(int(text))
    return found


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        # Not on Linux: all the CPUs the machine has.
        return os.cpu_count() or 1
