"""Fixtures for tests against the real test apiserver, imported by the conftests that
need them: ``crds`` installs kubelambda's CustomResourceDefinitions once per session
(through ``install_crds``, as the launcher does), ``kubectl`` runs the real CLI,
``namespace`` is a fresh namespace per test, ``api`` the production async client."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from kubelambda.kubernetes import connection
from kubelambda.kubernetes import crds as crd_install

# Test namespaces carry this prefix, so leftovers of an interrupted run are easy to find.
NAMESPACE_PREFIX = "kl-test-"

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def crds(kubeconfig: Path) -> None:
    async def install() -> None:
        async with connection.connected(str(kubeconfig)) as api:
            await crd_install.install_crds(api)

    asyncio.run(install())


@pytest.fixture
def kubectl(kubeconfig: Path) -> Kubectl:
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", f"--kubeconfig={kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def new_namespace(kubectl: Kubectl) -> str:
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:10]}"
    created = kubectl("create", "namespace", name)
    assert created.returncode == 0, created.stderr
    return name


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = new_namespace(kubectl)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    async with connection.connected(str(kubeconfig)) as opened:
        yield opened
