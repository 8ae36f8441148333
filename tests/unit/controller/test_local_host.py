"""Reading the host's memory: MemTotal, and the cgroup limit (v2 or v1) when it is lower.

Each case builds a small ``/proc`` and ``/sys/fs/cgroup`` under a temporary root, as a
container install would see them.
"""

from __future__ import annotations

from pathlib import Path

from controller.backends import local_host

MEMINFO = "MemTotal:        8388608 kB\nMemFree:         1000000 kB\n"  # 8,192 MB
GIB = 1024**3


def host_root(tmp_path: Path, cgroup: str, files: dict[str, str]) -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/meminfo").write_text(MEMINFO)
    (tmp_path / "proc/self/cgroup").write_text(cgroup)
    for name, text in files.items():
        path = tmp_path / "sys/fs/cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_memtotal_is_read_in_megabytes() -> None:
    assert local_host.meminfo_total_mb(MEMINFO) == 8192


def test_a_cgroup_v2_limit_below_memtotal_is_the_memory(tmp_path: Path) -> None:
    root = host_root(tmp_path, "0::/kubepods/pod1\n", {"kubepods/pod1/memory.max": f"{GIB}\n"})

    assert local_host.read_host(root).memory_mb == 1024


def test_a_limit_on_a_parent_cgroup_counts_too(tmp_path: Path) -> None:
    root = host_root(
        tmp_path,
        "0::/kubepods/pod1\n",
        {"kubepods/memory.max": f"{2 * GIB}\n", "kubepods/pod1/memory.max": "max\n"},
    )

    assert local_host.read_host(root).memory_mb == 2048


def test_a_cgroup_v1_limit_is_read_from_the_memory_hierarchy(tmp_path: Path) -> None:
    root = host_root(
        tmp_path,
        "5:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n",
        {"memory/docker/abc/memory.limit_in_bytes": f"{3 * GIB}\n"},
    )

    assert local_host.read_host(root).memory_mb == 3072


def test_no_limit_leaves_memtotal(tmp_path: Path) -> None:
    # v1 writes "no limit" as a number near 2**63, v2 as "max".
    root = host_root(
        tmp_path,
        "4:memory:/\n0::/\n",
        {"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory.max": "max\n"},
    )

    assert local_host.read_host(root).memory_mb == 8192


def test_a_limit_above_memtotal_leaves_memtotal(tmp_path: Path) -> None:
    root = host_root(tmp_path, "0::/big\n", {"big/memory.max": f"{64 * GIB}\n"})

    assert local_host.read_host(root).memory_mb == 8192


def test_cores_are_those_this_process_may_run_on(tmp_path: Path) -> None:
    root = host_root(tmp_path, "0::/\n", {})

    assert local_host.read_host(root).cores >= 1
