"""Certificate authority, component certificates and the service-account key pair.

Called by ``kubelambda_testbed.k8s.up`` before any daemon starts, and (``ensure_certificates``
alone) by ``kubelambda_testbed.kafka`` for its TLS listener. The cluster gets what a
kubeadm cluster has: a cluster CA (and a separate one for the aggregation layer's
front proxy), a serving certificate per listening component, client
certificates whose CN/O the apiserver maps to users/groups for RBAC and the Node
authorizer, and a key pair that signs service-account tokens. Keys are ECDSA P-256
(fast to make, accepted everywhere) and made with the ``openssl`` command line, so
the test harness needs no crypto library.
"""

from __future__ import annotations

import dataclasses
import pathlib
import secrets
import subprocess

__all__ = ["Certificate", "cluster_certificates", "ensure_certificates", "ensure_pki"]

_DAYS = "365"


@dataclasses.dataclass(frozen=True)
class Certificate:
    """One leaf certificate: file stem, subject and what it may be used for."""

    name: str
    common_name: str
    organization: str | None = None
    ip_sans: tuple[str, ...] = ()
    dns_sans: tuple[str, ...] = ()
    server: bool = False
    client: bool = False
    # File stem of the signing CA: "ca" for the cluster, "front-proxy-ca" for the one
    # whose clients may assert any identity through request headers.
    issuer: str = "ca"


def cluster_certificates(
    *, node_name: str, node_ip: str, service_ip: str
) -> tuple[Certificate, ...]:
    """Every leaf certificate the control plane and the node use."""
    local_ips = ("127.0.0.1",)
    local_names = ("localhost",)
    return (
        Certificate(
            "etcd",
            "etcd",
            ip_sans=local_ips,
            dns_sans=local_names,
            server=True,
            client=True,  # etcd also presents it to itself as a peer
        ),
        Certificate("apiserver-etcd-client", "kube-apiserver-etcd-client", client=True),
        Certificate(
            "apiserver",
            "kube-apiserver",
            ip_sans=(*local_ips, service_ip),
            dns_sans=(
                *local_names,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            server=True,
        ),
        # Its user is granted system:kubelet-api-admin once the apiserver is up.
        Certificate("apiserver-kubelet-client", "kube-apiserver-kubelet-client", client=True),
        Certificate("admin", "kubernetes-admin", organization="system:masters", client=True),
        Certificate("controller-manager", "system:kube-controller-manager", client=True),
        Certificate(
            "controller-manager-serving",
            "kube-controller-manager",
            ip_sans=local_ips,
            dns_sans=local_names,
            server=True,
        ),
        Certificate("scheduler", "system:kube-scheduler", client=True),
        Certificate(
            "scheduler-serving",
            "kube-scheduler",
            ip_sans=local_ips,
            dns_sans=local_names,
            server=True,
        ),
        # The aggregation layer's client, signed by its own CA as in kubeadm clusters.
        Certificate(
            "front-proxy-client", "front-proxy-client", client=True, issuer="front-proxy-ca"
        ),
        # The apiserver binds this user to the bootstrap ClusterRole system:node-proxier.
        Certificate("kube-proxy", "system:kube-proxy", client=True),
        # The Node authorizer recognises a kubelet only by this exact CN and group.
        Certificate(
            "kubelet-client", f"system:node:{node_name}", organization="system:nodes", client=True
        ),
        Certificate(
            "kubelet-serving",
            f"system:node:{node_name}",
            organization="system:nodes",
            ip_sans=(node_ip, *local_ips),
            dns_sans=(node_name,),
            server=True,
        ),
    )


def ensure_pki(pki_dir: pathlib.Path, certificates: tuple[Certificate, ...]) -> None:
    """Create the CAs, the service-account key pair and any missing leaf certificate."""
    ensure_certificates(pki_dir, certificates)
    sa_key, sa_pub = pki_dir / "sa.key", pki_dir / "sa.pub"
    if not sa_pub.exists():
        _new_key(sa_key)
        _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))


def ensure_certificates(pki_dir: pathlib.Path, certificates: tuple[Certificate, ...]) -> None:
    """Create the CAs the certificates name as issuers, then any missing leaf certificate
    (``<name>.key`` and ``<name>.crt`` in ``pki_dir``)."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    pki_dir.chmod(0o700)
    for issuer in sorted({cert.issuer for cert in certificates}):
        _ensure_ca(pki_dir, issuer)
    for cert in certificates:
        if not (pki_dir / f"{cert.name}.crt").exists():
            _issue(
                pki_dir,
                cert,
                ca_key=pki_dir / f"{cert.issuer}.key",
                ca_crt=pki_dir / f"{cert.issuer}.crt",
            )


def _ensure_ca(pki_dir: pathlib.Path, name: str) -> None:
    ca_key, ca_crt = pki_dir / f"{name}.key", pki_dir / f"{name}.crt"
    if ca_crt.exists():
        return
    _new_key(ca_key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca_key), "-sha256", "-days", _DAYS,
        "-subj", f"/CN=kubelambda-testinfra-{name}", "-out", str(ca_crt),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )  # fmt: skip


def _issue(
    pki_dir: pathlib.Path, cert: Certificate, *, ca_key: pathlib.Path, ca_crt: pathlib.Path
) -> None:
    key, csr, crt = (pki_dir / f"{cert.name}.{ext}" for ext in ("key", "csr", "crt"))
    ext_file = pki_dir / f"{cert.name}.ext"
    _new_key(key)
    subject = f"/CN={cert.common_name}"
    if cert.organization:
        subject = f"/O={cert.organization}{subject}"
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    ext_file.write_text(_extensions(cert))
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-set_serial", f"0x{secrets.randbits(63):x}", "-days", _DAYS, "-sha256",
        "-extfile", str(ext_file), "-out", str(crt),
    )  # fmt: skip
    csr.unlink()
    ext_file.unlink()


def _extensions(cert: Certificate) -> str:
    usages = [u for u, on in (("serverAuth", cert.server), ("clientAuth", cert.client)) if on]
    lines = [
        "basicConstraints=critical,CA:FALSE",
        "keyUsage=critical,digitalSignature,keyEncipherment",
        f"extendedKeyUsage={','.join(usages)}",
    ]
    sans = [f"IP:{ip}" for ip in cert.ip_sans] + [f"DNS:{name}" for name in cert.dns_sans]
    if sans:
        lines.append(f"subjectAltName={','.join(sans)}")
    return "\n".join(lines) + "\n"


def _new_key(path: pathlib.Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
    )
    path.chmod(0o600)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)
