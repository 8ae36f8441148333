"""Fixtures for the chart's static tests: the real helm (and kubectl, for the server-side
dry runs), the chart rendered with its default values and with every option set.

helm is on PATH once the `kubeconfig` fixture has the test cluster (kubelambda_testbed
puts its client binaries there); rendering needs no cluster, dry runs and lookups do, and
`kubectl auth can-i` on kubelambda.io resources needs the CRDs installed (`crds`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.chart.chart_testkit import (
    DEFAULT_VALUES,
    FULL_VALUES,
    Helm,
    Manifest,
    render,
)
from tests.integration.kube_fixtures import crds, kubectl, namespace

__all__ = ["crds", "default_manifests", "full_manifests", "helm", "kubectl", "namespace"]


@pytest.fixture(scope="session")
def helm(kubeconfig: Path) -> Helm:
    """Runs the real helm against the test cluster; returns the finished process."""
    binary = shutil.which("helm")
    assert binary, "helm is not on PATH: eval the output of `python -m kubelambda_testbed env`"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [binary, f"--kubeconfig={kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


@pytest.fixture(scope="session")
def default_manifests(helm: Helm) -> list[Manifest]:
    return render(helm, *DEFAULT_VALUES)


@pytest.fixture(scope="session")
def full_manifests(helm: Helm) -> list[Manifest]:
    return render(helm, "-f", str(FULL_VALUES))
