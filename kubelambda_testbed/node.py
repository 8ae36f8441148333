"""The node: containerd + runc + CNI bridge under a real kubelet, kube-proxy, and their teardown.

Called by ``kubelambda_testbed.k8s`` after the control plane is healthy. ``start`` prepares
the host (shared mount propagation, the pod network), starts containerd with every
path under the state dir, loads the locally built images, starts the kubelet
(cgroupfs driver, cgroup v1) and then kube-proxy (iptables mode), which routes Service
ClusterIPs once the kubelet has registered the node it looks up. ``stop`` leaves nothing
behind: kube-proxy's iptables chains (``kube-proxy --cleanup``), pod containers and
their shims, network namespaces, mounts under the state dir, the kubelet's cgroups and
iptables chains, the bridge and its iptables rules.
"""

from __future__ import annotations

import collections.abc
import contextlib
import json
import logging
import os
import pathlib
import re
import signal
import subprocess
import urllib.error
import urllib.request

from kubelambda_testbed import images, k8s_config, k8s_control, k8s_layout, node_network, process

__all__ = ["DEBIAN_PACKAGES", "daemons", "is_ready", "run_all", "start", "stop"]

_log = logging.getLogger(__name__)

DEBIAN_PACKAGES = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "iproute2",
    "debootstrap",
    "umoci",
    # Builds the runtime image from its Containerfile (``images.ensure_runtime_image``).
    "buildah",
)
_CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
# Set to the time of kube-proxy's last successful sync; absent until the first one.
_SYNCED_METRIC = re.compile(
    r"^kubeproxy_sync_proxy_rules_last_timestamp_seconds\{[^}]*\} [1-9]", re.MULTILINE
)
# iptables chains the kubelet makes and no --cleanup removes (kube-proxy makes KUBE-FIREWALL
# too, also for IPv6, but leaves it to the kubelet): (table, chain, built-in chains jumping to it).
_KUBELET_CHAINS = (
    ("filter", "KUBE-FIREWALL", ("INPUT", "OUTPUT")),
    ("filter", "KUBE-KUBELET-CANARY", ()),
    ("nat", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-KUBELET-CANARY", ()),
    ("mangle", "KUBE-IPTABLES-HINT", ()),
)
# containerd 1.6 always makes these for shim sockets and fifos, whatever its state dir.
_CONTAINERD_RUN_DIRS = tuple(
    pathlib.Path("/run/containerd", sub) for sub in ("s", "fifo", "runc/k8s.io", "runc", "")
)


def daemons(layout: k8s_layout.Layout) -> dict[str, process.Daemon]:
    """containerd, the kubelet and kube-proxy, in start order, each known by its config file."""
    config = {
        "containerd": "containerd.toml",
        "kubelet": "kubelet.json",
        "kube-proxy": "kube-proxy.json",
    }
    return {
        name: process.Daemon(
            name=name,
            pid_file=layout.run_dir / f"{name}.pid",
            log_file=layout.log_dir / f"{name}.log",
            marker=str(layout.config_dir / file),
        )
        for name, file in config.items()
    }


def start(layout: k8s_layout.Layout) -> None:
    """Bring the node up to a healthy kubelet (Ready is the caller's wait)."""
    _share_root_mount()
    node_network.setup()
    cfg = layout.config_dir
    (cfg / "containerd.toml").write_text(k8s_config.containerd_config(layout))
    k8s_config.write_json(
        layout.cni_conf_dir / "10-kubelambda.conflist", k8s_config.cni_conflist(layout)
    )
    k8s_config.write_json(cfg / "kubelet.json", k8s_config.kubelet_config(layout))
    k8s_config.write_json(cfg / "kube-proxy.json", k8s_config.kube_proxy_config(layout))

    containerd, kubelet, kube_proxy = daemons(layout).values()
    if not containerd.is_running():
        k8s_control.launch(
            containerd,
            ["containerd", "--config", str(cfg / "containerd.toml"), "--log-level", "warn"],
            cwd=layout.state_dir,
        )
    process.wait_until(
        lambda: _ctr(layout, "version", check=False).returncode == 0,
        what="containerd API",
        daemon=containerd,
        timeout=30,
    )
    images.load_missing(layout)

    if not kubelet.is_running():
        k8s_control.launch(
            kubelet,
            [
                str(layout.k8s_bin_dir / "kubelet"),
                f"--config={cfg / 'kubelet.json'}",
                f"--kubeconfig={cfg / 'kubelet-client.kubeconfig'}",
                f"--root-dir={layout.kubelet_dir}",
                f"--cert-dir={layout.kubelet_dir / 'pki'}",
                f"--hostname-override={k8s_layout.NODE_NAME}",
                f"--node-ip={k8s_layout.NODE_IP}",
                "--v=1",
            ],
            cwd=layout.state_dir,
        )
    process.wait_until(_kubelet_healthy, what="kubelet /healthz", daemon=kubelet, timeout=60)

    if not kube_proxy.is_running():
        k8s_control.launch(
            kube_proxy,
            [
                str(layout.k8s_bin_dir / "kube-proxy"),
                f"--config={cfg / 'kube-proxy.json'}",
                "--v=1",
            ],
            cwd=layout.state_dir,
        )
    # Its first sync prepends its jumps to the built-in chains, above ours: put ours back.
    process.wait_until(
        _kube_proxy_synced, what="kube-proxy's first sync", daemon=kube_proxy, timeout=60
    )
    node_network.keep_rules_first()


def is_ready(layout: k8s_layout.Layout) -> bool:
    """Whether the apiserver reports our node's Ready condition as True."""
    result = subprocess.run(
        [str(layout.client_bin_dir / "kubectl"), "--kubeconfig", str(layout.admin_kubeconfig),
         "get", "node", k8s_layout.NODE_NAME, "-o", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        return False
    conditions = json.loads(result.stdout)["status"].get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def stop(layout: k8s_layout.Layout) -> None:
    """Stop the kubelet, every pod container, containerd; undo all host changes.

    Every step runs even when an earlier one fails, so one stuck piece does not
    leave the rest behind; the first failure is raised at the end.
    """
    containerd, kubelet, kube_proxy = daemons(layout).values()

    def remove_containers() -> None:
        if containerd.is_running():
            _remove_containers(layout)

    def unmount_state() -> None:
        for mount_point in _mounts_under(layout.state_dir):
            _unmount(mount_point)

    steps: list[collections.abc.Callable[[], None]] = [
        lambda: kube_proxy.stop(timeout=15),
        lambda: _clean_kube_proxy_rules(layout),
        lambda: kubelet.stop(timeout=15),
        remove_containers,
        lambda: containerd.stop(timeout=15),
        lambda: _kill_orphan_shims(layout),
        lambda: _remove_empty_dirs(_CONTAINERD_RUN_DIRS),
        node_network.remove_pod_namespaces,
        unmount_state,
        _remove_kubelet_cgroups,
        _remove_kubelet_chains,
        node_network.teardown,
    ]
    run_all(steps)


def run_all(steps: collections.abc.Sequence[collections.abc.Callable[[], None]]) -> None:
    """Run every step; re-raise the first failure (as InfraError) once all have run."""
    failures: list[BaseException] = []
    for step in steps:
        try:
            step()
        except (subprocess.CalledProcessError, OSError, process.InfraError) as exc:
            _log.error("event=teardown-step-failed error=%s", exc)
            failures.append(exc)
    if failures:
        raise process.InfraError(f"teardown failed: {failures[0]}") from failures[0]


def _clean_kube_proxy_rules(layout: k8s_layout.Layout) -> None:
    """Remove every iptables chain and jump of kube-proxy, as its own ``--cleanup`` knows them."""
    binary = layout.k8s_bin_dir / "kube-proxy"
    if not binary.exists():
        # Built with the other binaries: without it, no kube-proxy of this cache ever ran.
        _log.info("event=kube-proxy-cleanup-skipped missing=%s", binary)
        return
    subprocess.run([str(binary), "--cleanup", "--v=0"], capture_output=True, check=True)


def _remove_containers(layout: k8s_layout.Layout) -> None:
    """Kill and delete every container in the k8s.io namespace."""
    for container_id in _ctr(layout, "containers", "ls", "-q").stdout.split():
        _ctr(layout, "tasks", "kill", "--signal", "SIGKILL", container_id, check=False)
        _ctr(layout, "tasks", "delete", "--force", container_id, check=False)
        _ctr(layout, "containers", "delete", container_id, check=False)


def _kill_orphan_shims(layout: k8s_layout.Layout) -> None:
    """Kill shims of our containerd that outlived it, and the containers they still hold.

    Shims detach into their own process groups, so stopping containerd does not reach
    them; they name our socket on their command line. A container's init is the shim's
    child: killing it first takes down that container's whole pid namespace, which a
    killed shim would otherwise leave running, reparented to init.
    """
    marker = str(layout.containerd_socket).encode()
    parents: dict[int, int] = {}
    shims: list[int] = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if b"containerd-shim" in argv[0] and marker in argv:
                shims.append(int(proc.name))
    for shim in shims:
        victims = [pid for pid, parent in parents.items() if parent == shim] + [shim]
        sockets = _unix_socket_paths(shim)
        _log.info("event=kill-leftover-shim pid=%d children=%d", shim, len(victims) - 1)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # A killed shim cannot remove its socket (containerd 1.6 keeps them in /run).
        for path in sockets:
            path.unlink(missing_ok=True)


def _unix_socket_paths(pid: int) -> list[pathlib.Path]:
    """Paths of the unix sockets process ``pid`` holds open (its listening socket)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    paths = []
    # Columns: Num RefCount Protocol Flags Type St Inode [Path]
    for line in pathlib.Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 8 and fields[6] in inodes and fields[7].startswith("/"):
            paths.append(pathlib.Path(fields[7]))
    return paths


def _remove_empty_dirs(directories: tuple[pathlib.Path, ...]) -> None:
    for directory in directories:
        with contextlib.suppress(OSError):  # absent, or in use by another containerd
            directory.rmdir()


def _mounts_under(root: pathlib.Path) -> list[pathlib.Path]:
    """Mount points below ``root``, deepest first."""
    points: list[pathlib.Path] = []
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        # The mount point is field 5; octal escapes encode spaces and the like.
        point = pathlib.Path(line.split()[4].encode().decode("unicode_escape"))
        if point == root or root in point.parents:
            points.append(point)
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def _unmount(point: pathlib.Path) -> None:
    subprocess.run(["umount", "--lazy", str(point)], capture_output=True, check=False)


def _remove_kubelet_cgroups() -> None:
    # The kubelet's QoS hierarchy (cgroupfs driver, cgroup root "/"), in every v1 controller.
    for controller in _CGROUP_ROOT.iterdir():
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _remove_kubelet_chains() -> None:
    for command in ("iptables", "ip6tables"):
        for table, chain, callers in _KUBELET_CHAINS:
            base = [command, "-w", "-t", table]
            for caller in callers:
                while _returncode([*base, "-D", caller, "-j", chain]) == 0:
                    pass
            if _returncode([*base, "-F", chain]) == 0:
                subprocess.run([*base, "-X", chain], capture_output=True, check=True)


def _returncode(argv: list[str]) -> int:
    return subprocess.run(argv, capture_output=True, check=False).returncode


def _share_root_mount() -> None:
    # Volume mounts the kubelet makes must propagate into containers (and back).
    result = subprocess.run(
        ["findmnt", "-n", "-o", "PROPAGATION", "/"], capture_output=True, text=True, check=True
    )
    if "shared" not in result.stdout:
        subprocess.run(["mount", "--make-rshared", "/"], check=True)


def _kubelet_healthy() -> bool:
    url = f"http://127.0.0.1:{k8s_layout.KUBELET_HEALTHZ_PORT}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _kube_proxy_synced() -> bool:
    """Whether kube-proxy has written its rules once (its /healthz is fine even before)."""
    url = f"http://127.0.0.1:{k8s_layout.KUBE_PROXY_METRICS_PORT}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            metrics = response.read().decode()
    except (urllib.error.URLError, OSError):
        return False
    return _SYNCED_METRIC.search(metrics) is not None


def _ctr(
    layout: k8s_layout.Layout, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ctr", "--address", str(layout.containerd_socket), "-n", "k8s.io", *args],
        capture_output=True, text=True, check=check,
    )  # fmt: skip
