"""The ``code`` fixture of the code store contract tests: each test runs against the
local store (a directory in tmp_path) and the Kubernetes store (Secrets on the real test
apiserver, in a fresh namespace deleted afterwards, so collection finds only what the
test put). Both stamp packages with the real clock, as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubelambda.kubernetes import connection
from kubelambda.kubernetes.code_store import KubernetesCodeStore
from kubelambda.ports.code import CodeStore
from kubelambda.store import LocalCodeStore
from tests.integration.kube_fixtures import kubectl, new_namespace

__all__ = ["kubectl"]


@pytest.fixture(params=["local", pytest.param("kubernetes", marks=pytest.mark.infra)])
async def code(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CodeStore]:
    if request.param == "local":
        yield LocalCodeStore(tmp_path / "code")
        return
    kubeconfig = request.getfixturevalue("kubeconfig")
    run = request.getfixturevalue("kubectl")
    namespace = new_namespace(run)
    try:
        async with connection.connected(str(kubeconfig)) as api:
            yield KubernetesCodeStore(api, namespace=namespace)
    finally:
        run("delete", "namespace", namespace, "--wait=false")
