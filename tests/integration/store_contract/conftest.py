"""The ``store`` fixture of the contract tests: each test runs against the SQLite store
(in tmp_path) and the Kubernetes store (custom resources on the real test apiserver,
in fresh namespaces), both with a fixed clock.

The tests name their namespaces through ``ns``: SQLite takes ``default``, ``team-a`` and
``team-b`` as they are; on Kubernetes they are fresh namespaces, deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelambda.kubernetes import connection
from kubelambda.kubernetes.store import KubernetesStore
from kubelambda.models import DEFAULT_NAMESPACE, FunctionKey
from kubelambda.store import SqliteStore
from tests.integration.kube_fixtures import crds, kubectl, new_namespace
from tests.store_testkit import CLOCK, REGION

__all__ = ["crds", "kubectl"]


@dataclass(frozen=True)
class Namespaces:
    default: str
    a: str
    b: str

    @property
    def all(self) -> tuple[str, str, str]:
        return self.default, self.a, self.b


@pytest.fixture(params=["sqlite", pytest.param("kubernetes", marks=pytest.mark.infra)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ns(backend: str, request: pytest.FixtureRequest) -> Iterator[Namespaces]:
    if backend == "sqlite":
        yield Namespaces(DEFAULT_NAMESPACE, "team-a", "team-b")
        return
    request.getfixturevalue("crds")
    run = request.getfixturevalue("kubectl")
    names = Namespaces(new_namespace(run), new_namespace(run), new_namespace(run))
    yield names
    run("delete", "namespace", *names.all, "--wait=false")


@pytest.fixture
def f(ns: Namespaces) -> FunctionKey:
    """Function ``f`` in the default namespace: the one most tests use."""
    return FunctionKey(ns.default, "f")


@pytest.fixture
async def store(
    backend: str, ns: Namespaces, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[SqliteStore | KubernetesStore]:
    if backend == "sqlite":
        async with SqliteStore.open(tmp_path, region=REGION, clock=lambda: CLOCK) as opened:
            yield opened
        return
    kubeconfig = request.getfixturevalue("kubeconfig")
    async with (
        connection.connected(str(kubeconfig)) as api,
        KubernetesStore.open(api, region=REGION, namespaces=ns.all, clock=lambda: CLOCK) as k8s,
    ):
        yield k8s
