"""The control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler.

Called by ``kubelambda_testbed.k8s``. Builds each daemon's command line (secure defaults as
a kubeadm cluster has them: TLS everywhere with client-certificate auth, RBAC plus
the Node authorizer and NodeRestriction, a service-account issuer and signing key,
everything bound to 127.0.0.1), starts them in dependency order and waits for each
health endpoint, verified against the cluster CA.
"""

from __future__ import annotations

import http.client
import logging
import pathlib
import ssl
import subprocess
import time

from kubelambda_testbed import k8s_config, k8s_layout, process

__all__ = [
    "ADMIN_USER",
    "daemons",
    "launch",
    "probe_https",
    "start",
    "stop",
    "write_kubeconfigs",
]

_log = logging.getLogger(__name__)

ADMIN_USER = "admin"
_APISERVER_URL = f"https://127.0.0.1:{k8s_layout.APISERVER_PORT}"
# Users with a kubeconfig: the admin (handed to tests) and each component's client.
_KUBECONFIG_USERS = (ADMIN_USER, "controller-manager", "scheduler", "kubelet-client", "kube-proxy")
_RBAC_MANIFEST = "apiserver-kubelet-rbac.yaml"
_START_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def daemons(layout: k8s_layout.Layout) -> dict[str, process.Daemon]:
    """The control-plane daemons, in start order, each recognised by its own cert path."""
    return {
        name: process.Daemon(
            name=name,
            pid_file=layout.run_dir / f"{name}.pid",
            log_file=layout.log_dir / f"{name}.log",
            marker=str(layout.pki_dir / f"{_serving_cert(name)}.crt"),
        )
        for name in _START_ORDER
    }


def write_kubeconfigs(layout: k8s_layout.Layout) -> None:
    for user in _KUBECONFIG_USERS:
        k8s_config.write_json(
            layout.config_dir / f"{user}.kubeconfig",
            k8s_config.kubeconfig(pki_dir=layout.pki_dir, user=user, server=_APISERVER_URL),
            mode=0o600,
        )
    layout.admin_kubeconfig.write_bytes((layout.config_dir / "admin.kubeconfig").read_bytes())
    layout.admin_kubeconfig.chmod(0o600)


def start(layout: k8s_layout.Layout) -> None:
    """Start every control-plane daemon not yet running and wait until each is healthy."""
    for name, daemon in daemons(layout).items():
        if not daemon.is_running():
            launch(daemon, _argv(layout, name), cwd=layout.state_dir)
        _wait_healthy(layout, name, daemon)
        if name == "kube-apiserver":
            _apply_bootstrap_rbac(layout)


def launch(daemon: process.Daemon, argv: list[str], *, cwd: pathlib.Path) -> None:
    """Start ``daemon`` and wait until it has exec'd ``argv``.

    Until the exec, /proc/<pid>/cmdline is still the forked Python's, so the daemon's
    marker check would report a healthy, starting daemon as exited.
    """
    daemon.start(argv, cwd=cwd)
    deadline = time.monotonic() + 10
    while not daemon.is_running():
        if time.monotonic() > deadline:
            raise process.InfraError(f"{daemon.name} did not start:\n{daemon.log_tail()}")
        time.sleep(0.05)


def _wait_healthy(layout: k8s_layout.Layout, name: str, daemon: process.Daemon) -> None:
    pki = layout.pki_dir
    port, path = _health(name)
    # Probe etcd as its one client, the apiserver, does; the others as the admin.
    client = "apiserver-etcd-client" if name == "etcd" else ADMIN_USER

    def healthy() -> bool:
        return probe_https(
            port,
            path,
            ca_file=pki / "ca.crt",
            cert_file=pki / f"{client}.crt",
            key_file=pki / f"{client}.key",
        )

    process.wait_until(healthy, what=f"{path} on port {port}", daemon=daemon, timeout=90)


def stop(layout: k8s_layout.Layout) -> None:
    for daemon in reversed(daemons(layout).values()):
        daemon.stop(timeout=15)


def probe_https(
    port: int,
    path: str,
    *,
    ca_file: pathlib.Path,
    cert_file: pathlib.Path,
    key_file: pathlib.Path,
) -> bool:
    """True when ``GET https://127.0.0.1:<port><path>`` answers 200 to our client cert."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=3)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _apply_bootstrap_rbac(layout: k8s_layout.Layout) -> None:
    # The apiserver calls kubelets (logs, exec) as its kubelet-client user; the kubelet's
    # webhook authorizer then asks RBAC, which must know that user.
    manifest = layout.repo_dir / "manifests" / _RBAC_MANIFEST
    subprocess.run(
        [str(layout.client_bin_dir / "kubectl"), "--kubeconfig", str(layout.admin_kubeconfig),
         "apply", "--server-side", "-f", str(manifest)],
        check=True, capture_output=True,
    )  # fmt: skip


def _serving_cert(name: str) -> str:
    return {
        "etcd": "etcd",
        "kube-apiserver": "apiserver",
        "kube-controller-manager": "controller-manager-serving",
        "kube-scheduler": "scheduler-serving",
    }[name]


def _health(name: str) -> tuple[int, str]:
    return {
        "etcd": (k8s_layout.ETCD_CLIENT_PORT, "/health"),
        "kube-apiserver": (k8s_layout.APISERVER_PORT, "/readyz"),
        "kube-controller-manager": (k8s_layout.CONTROLLER_MANAGER_PORT, "/healthz"),
        "kube-scheduler": (k8s_layout.SCHEDULER_PORT, "/healthz"),
    }[name]


def _argv(layout: k8s_layout.Layout, name: str) -> list[str]:
    pki, cfg = layout.pki_dir, layout.config_dir
    serving = [
        f"--tls-cert-file={pki / _serving_cert(name)}.crt",
        f"--tls-private-key-file={pki / _serving_cert(name)}.key",
    ]
    if name == "etcd":
        client = f"https://127.0.0.1:{k8s_layout.ETCD_CLIENT_PORT}"
        peer = f"https://127.0.0.1:{k8s_layout.ETCD_PEER_PORT}"
        return [
            str(layout.etcd_bin_dir / "etcd"),
            "--name=kubelambda",
            f"--data-dir={layout.etcd_data_dir}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=kubelambda={peer}",
            f"--cert-file={pki / 'etcd.crt'}",
            f"--key-file={pki / 'etcd.key'}",
            f"--trusted-ca-file={pki / 'ca.crt'}",
            "--client-cert-auth",
            f"--peer-cert-file={pki / 'etcd.crt'}",
            f"--peer-key-file={pki / 'etcd.key'}",
            f"--peer-trusted-ca-file={pki / 'ca.crt'}",
            "--peer-client-cert-auth",
            # The data dies with the cluster at down(); fsync only slows the shared disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
    bin_dir = layout.k8s_bin_dir
    if name == "kube-apiserver":
        return [
            str(bin_dir / "kube-apiserver"),
            "--bind-address=127.0.0.1",
            f"--secure-port={k8s_layout.APISERVER_PORT}",
            *serving,
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--etcd-servers=https://127.0.0.1:{k8s_layout.ETCD_CLIENT_PORT}",
            f"--etcd-cafile={pki / 'ca.crt'}",
            f"--etcd-certfile={pki / 'apiserver-etcd-client.crt'}",
            f"--etcd-keyfile={pki / 'apiserver-etcd-client.key'}",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            # The aggregation layer, as kubeadm sets it up; its CA also lets the other
            # components authenticate requests forwarded by it.
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={k8s_layout.SERVICE_CIDR}",
            # Bound to loopback, the apiserver has no address pods could use, so it must
            # not publish one in the `kubernetes` Service's endpoints.
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]
    if name == "kube-controller-manager":
        kubeconfig = cfg / "controller-manager.kubeconfig"
        return [
            str(bin_dir / "kube-controller-manager"),
            "--bind-address=127.0.0.1",
            f"--secure-port={k8s_layout.CONTROLLER_MANAGER_PORT}",
            *serving,
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--allocate-node-cidrs=true",
            f"--cluster-cidr={k8s_layout.POD_CIDR}",
            "--node-cidr-mask-size=24",
            f"--service-cluster-ip-range={k8s_layout.SERVICE_CIDR}",
            # One instance only: leader election would just delay the start.
            "--leader-elect=false",
            "--profiling=false",
            "--v=1",
        ]
    kubeconfig = cfg / "scheduler.kubeconfig"
    return [
        str(bin_dir / "kube-scheduler"),
        "--bind-address=127.0.0.1",
        f"--secure-port={k8s_layout.SCHEDULER_PORT}",
        *serving,
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]
