"""Pure builders of the configuration files the cluster's daemons read.

Called by ``kubelambda_testbed.k8s`` (kubeconfigs) and ``kubelambda_testbed.node`` (kubelet,
kube-proxy, containerd, CNI). Each builder returns text or a JSON-able dict and does no I/O,
so the files can be checked without starting anything. JSON is written where
YAML is expected: every reader here accepts it, and it needs no YAML library.
"""

from __future__ import annotations

import base64
import json
import pathlib
from typing import Any

from kubelambda_testbed import k8s_layout

__all__ = [
    "cni_conflist",
    "containerd_config",
    "kube_proxy_config",
    "kubeconfig",
    "kubelet_config",
    "write_json",
]


def kubeconfig(
    *, pki_dir: pathlib.Path, user: str, server: str, cluster: str = "kubelambda"
) -> dict[str, Any]:
    """A kubeconfig for the client certificate ``<pki_dir>/<user>.crt``.

    Certificates are embedded so the file stays usable on its own (helm, the
    Python client and kubectl all read it).
    """

    def b64(name: str) -> str:
        return base64.b64encode((pki_dir / name).read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster,
                "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(f"{user}.crt"),
                    "client-key-data": b64(f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }


def kubelet_config(layout: k8s_layout.Layout) -> dict[str, Any]:
    """The KubeletConfiguration for one node on this machine."""
    pki = layout.pki_dir
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": k8s_layout.NODE_IP,
        "port": k8s_layout.KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": k8s_layout.KUBELET_HEALTHZ_PORT,
        "tlsCertFile": str(pki / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{layout.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        # These machines are cgroup v1 only; 1.34 still supports it when asked.
        "failCgroupV1": False,
        # Without CAP_SYS_RESOURCE nothing here may lower an oom_score_adj.
        "oomScoreAdj": 0,
        "failSwapOn": False,
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "podCIDR": k8s_layout.NODE_POD_CIDR,
        "serializeImagePulls": False,
        # No image can be pulled here, so an evicted image is lost for good:
        # 100 disables image garbage collection.
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
            "nodefs.inodesFree": "2%",
        },
        "shutdownGracePeriod": "0s",
        "shutdownGracePeriodCriticalPods": "0s",
    }


def kube_proxy_config(layout: k8s_layout.Layout) -> dict[str, Any]:
    """The KubeProxyConfiguration: iptables mode, changing nothing on the host but its rules.

    Service rules only: no sysctl is written (conntrack sizes and timeouts at 0 keep the
    host's), NodePorts open on the node address alone (not on the host's real interfaces,
    nor on 127.0.0.1, which would need ``route_localnet`` on every interface), and both
    endpoints of kube-proxy itself listen on loopback.
    """
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(layout.config_dir / "kube-proxy.kubeconfig")},
        "hostnameOverride": k8s_layout.NODE_NAME,
        "mode": "iptables",
        # Traffic to a Service from outside this range is masqueraded to the node address.
        "clusterCIDR": k8s_layout.POD_CIDR,
        "nodePortAddresses": [f"{k8s_layout.NODE_IP}/32"],
        "iptables": {"localhostNodePorts": False},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "healthzBindAddress": f"127.0.0.1:{k8s_layout.KUBE_PROXY_HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{k8s_layout.KUBE_PROXY_METRICS_PORT}",
        # Lowering it needs CAP_SYS_RESOURCE, as for the kubelet.
        "oomScoreAdj": 0,
    }


def containerd_config(layout: k8s_layout.Layout) -> str:
    """containerd's TOML (config version 2, containerd 1.6), every path under state."""
    d = layout.containerd_dir
    return f"""\
version = 2
root = "{d / "root"}"
state = "{d / "state"}"
# Snapshotters that cannot work here only add noise to the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{layout.containerd_socket}"

[ttrpc]
  address = "{d / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d / "opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{k8s_layout.PAUSE_IMAGE}"
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which these machines withhold.
  restrict_oom_score_adj = true
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/bin/runc"
        # runc keeps container state here instead of /run/containerd/runc.
        Root = "{d / "runc"}"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(layout: k8s_layout.Layout) -> dict[str, Any]:
    """A bridge network for the node's pod CIDR, no masquerade: pods never leave the host."""
    return {
        "cniVersion": "1.0.0",
        "name": "kubelambda",
        "plugins": [
            {
                "type": "bridge",
                "bridge": k8s_layout.BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(layout.cni_state_dir),
                    "ranges": [[{"subnet": k8s_layout.NODE_POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
        ],
    }


def write_json(path: pathlib.Path, document: dict[str, Any], *, mode: int = 0o644) -> None:
    """Write ``document`` atomically enough for a config file read at daemon start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.chmod(mode)
    tmp.replace(path)
