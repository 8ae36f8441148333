"""Service URLs on a cluster without DNS (the test cluster): the ClusterIP from the
apiserver takes the name's place; other URLs are left alone; an unknown Service is
refused by name."""

from __future__ import annotations

import json

import pytest
from kubernetes_asyncio import client

from kubelambda.kubernetes.service_address import ServiceNotFound, reachable_url
from tests.integration.kube_fixtures import Kubectl


def make_service(kubectl: Kubectl, namespace: str, name: str) -> str:
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"app": name}, "ports": [{"port": 8081}]},
    }
    applied = kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    assert applied.returncode == 0, applied.stderr
    shown = kubectl("get", "service", name, "-n", namespace, "-o", "jsonpath={.spec.clusterIP}")
    return shown.stdout


async def test_a_service_name_becomes_its_cluster_ip(
    api: client.ApiClient, kubectl: Kubectl, namespace: str
) -> None:
    address = make_service(kubectl, namespace, "kl-controller")
    for suffix in ("svc", "svc.cluster.local"):
        url = f"http://kl-controller.{namespace}.{suffix}:8081/base"
        assert await reachable_url(api, url) == f"http://{address}:8081/base"


@pytest.mark.parametrize(
    "url", ["http://10.96.0.10:8081", "http://localhost:7070", "http://kafka.example:9092"]
)
async def test_other_urls_stay_as_given(api: client.ApiClient, url: str) -> None:
    assert await reachable_url(api, url) == url


async def test_an_unknown_service_is_refused_by_name(api: client.ApiClient, namespace: str) -> None:
    with pytest.raises(ServiceNotFound, match=f"{namespace}/nothing-here"):
        await reachable_url(api, f"http://nothing-here.{namespace}.svc:8081")
