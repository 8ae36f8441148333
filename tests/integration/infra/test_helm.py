"""Smoke tests of helm against the test Kubernetes cluster, with the small chart in charts/smoke.

They prove that the helm shipped by kubelambda_testbed lints and installs a chart whose pods
really serve (a ConfigMap mounted into the base image's http.server), and that
uninstall removes what install created, so the product chart's tests can rely on it.
"""

from __future__ import annotations

import http.client
import json
import pathlib
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.infra

CHART = pathlib.Path(__file__).parent / "charts" / "smoke"
GREETING = "hello from the smoke chart"


def run(*argv: str) -> str:
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout


def helm_install(release: str, namespace: str) -> None:
    run("helm", "install", release, str(CHART), "--namespace", namespace,
        "--create-namespace", "--wait", "--timeout", "180s")  # fmt: skip


def instance_resources(release: str, namespace: str) -> list[str]:
    out = run("kubectl", "get", "deployments,services,configmaps,pods", "-n", namespace,
              "-l", f"app.kubernetes.io/instance={release}", "-o", "name")  # fmt: skip
    return out.split()


@pytest.fixture(scope="module")
def installed(kubeconfig: pathlib.Path) -> Iterator[tuple[str, str]]:
    """A release of the smoke chart, installed and ready: (release, namespace)."""
    release, namespace = "smoke", f"helm-{uuid.uuid4().hex[:8]}"
    helm_install(release, namespace)
    yield release, namespace
    run("kubectl", "delete", "namespace", namespace, "--wait=false")


def test_smoke_chart_lints(kubeconfig: pathlib.Path) -> None:
    assert "0 chart(s) failed" in run("helm", "lint", str(CHART))


def test_helm_install_reports_the_release_deployed(installed: tuple[str, str]) -> None:
    release, namespace = installed
    status = json.loads(run("helm", "status", release, "-n", namespace, "-o", "json"))
    assert status["info"]["status"] == "deployed"


def test_installed_chart_serves_its_configmap(installed: tuple[str, str]) -> None:
    release, namespace = installed
    selector = f"app.kubernetes.io/instance={release}"
    out = run("kubectl", "get", "pods", "-n", namespace, "-l", selector, "-o", "json")
    pods = json.loads(out)["items"]
    conn = http.client.HTTPConnection(pods[0]["status"]["podIP"], 8080, timeout=5)
    try:
        conn.request("GET", "/index.html")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    assert body == GREETING


def test_helm_uninstall_removes_what_install_created(kubeconfig: pathlib.Path) -> None:
    release, namespace = "doomed", f"helm-{uuid.uuid4().hex[:8]}"
    helm_install(release, namespace)
    assert instance_resources(release, namespace) != []
    try:
        run("helm", "uninstall", release, "-n", namespace, "--wait", "--timeout", "120s")
        # helm waits for what it created; the pods go after, through garbage collection.
        deadline = time.monotonic() + 60
        while (left := instance_resources(release, namespace)) and time.monotonic() < deadline:
            time.sleep(1)
        assert left == []
        assert json.loads(run("helm", "list", "-n", namespace, "-o", "json")) == []
    finally:
        run("kubectl", "delete", "namespace", namespace, "--wait=false")
