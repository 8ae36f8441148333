"""Smoke tests of the test Kubernetes cluster built by kubelambda_testbed.k8s.

They prove that the control plane answers, the node is Ready and really runs pods
(containerd + runc on a CNI bridge) from the locally built base image, also locked
down as kubelambda runs functions; that pods are reachable from the host at their
IPs and listed in their Service's EndpointSlice; that logs and exec work through the
apiserver; that pods reach the apiserver with in-cluster credentials; and that
namespace deletion cascades. Failures in later Kubernetes-backed tests then point at
our code, not at the cluster.
"""

from __future__ import annotations

import http.client
import json
import pathlib
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from kubelambda_testbed import images, k8s_layout, node_network

pytestmark = pytest.mark.infra

T = TypeVar("T")

HTTP_PORT = 8080
REPLICAS = 2
TIMEOUT = 120.0


def eventually(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    """Poll ``probe`` until it returns something other than None (or False)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1)


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def api(kubeconfig: pathlib.Path) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    try:
        core.delete_namespace(name)
    except client.ApiException as exc:
        if exc.status != 404:  # the test may have deleted it already
            raise


def http_server_pod_spec() -> dict[str, Any]:
    return {
        "containers": [
            {
                "name": "web",
                "image": images.BASE_IMAGE,
                # Nothing can be pulled here: kubelambda_testbed loads the image into containerd.
                "imagePullPolicy": "Never",
                "command": ["python3", "-m", "http.server", str(HTTP_PORT)],
                "ports": [{"containerPort": HTTP_PORT}],
                "readinessProbe": {"tcpSocket": {"port": HTTP_PORT}, "periodSeconds": 1},
            }
        ],
        "terminationGracePeriodSeconds": 1,
    }


@pytest.fixture(scope="module")
def web(api: client.ApiClient) -> Iterator[tuple[str, list[str]]]:
    """A ready Deployment of http.server pods behind a Service: (namespace, pod IPs)."""
    ns = f"smoke-web-{uuid.uuid4().hex[:8]}"
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": http_server_pod_spec()},
            },
        },
    )
    core.create_namespaced_service(
        ns,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": HTTP_PORT}]},
        },
    )

    def ready_ips() -> list[str] | None:
        status = apps.read_namespaced_deployment("web", ns).status
        if (status.ready_replicas or 0) < REPLICAS:
            return None
        pods = core.list_namespaced_pod(ns, label_selector="app=web").items
        ips = [p.status.pod_ip for p in pods if p.status.pod_ip and p.status.phase == "Running"]
        return sorted(ips) if len(ips) == REPLICAS else None

    yield ns, eventually("the web Deployment to become ready", ready_ips)
    core.delete_namespace(ns)


def http_get(ip: str, path: str = "/") -> int:
    conn = http.client.HTTPConnection(ip, HTTP_PORT, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_apiserver_readyz_is_ok(kubeconfig: pathlib.Path) -> None:
    assert kubectl("get", "--raw", "/readyz") == "ok"


def test_apiserver_reports_the_pinned_version(kubeconfig: pathlib.Path) -> None:
    versions = json.loads(kubectl("version", "-o", "json"))
    assert versions["serverVersion"]["gitVersion"] == k8s_layout.KUBERNETES_VERSION


def test_node_is_ready(api: client.ApiClient) -> None:
    node = client.CoreV1Api(api).read_node(k8s_layout.NODE_NAME)
    ready = [c.status for c in node.status.conditions if c.type == "Ready"]
    assert ready == ["True"]


def test_node_got_its_pod_cidr_from_the_controller_manager(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    # The allocation follows the node's registration, which Ready does not wait for.
    pod_cidr = eventually(
        "the node's pod CIDR", lambda: core.read_node(k8s_layout.NODE_NAME).spec.pod_cidr, 30
    )
    assert pod_cidr == k8s_layout.NODE_POD_CIDR


def test_deployment_pods_answer_http_at_their_pod_ips(web: tuple[str, list[str]]) -> None:
    _, ips = web
    assert [http_get(ip) for ip in ips] == [200] * REPLICAS


def test_pod_ips_are_on_the_node_bridge(web: tuple[str, list[str]]) -> None:
    _, ips = web
    routes = [subprocess.run(["ip", "-o", "route", "get", ip], check=True, capture_output=True,
                             text=True).stdout for ip in ips]  # fmt: skip
    assert all(f"dev {k8s_layout.BRIDGE}" in route for route in routes), routes


def test_service_endpointslice_lists_the_ready_pod_ips(
    api: client.ApiClient, web: tuple[str, list[str]]
) -> None:
    ns, ips = web
    discovery = client.DiscoveryV1Api(api)

    def listed() -> list[str] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            ns, label_selector="kubernetes.io/service-name=web"
        ).items
        ready = sorted(
            address
            for s in slices
            for endpoint in s.endpoints or []
            if endpoint.conditions.ready
            for address in endpoint.addresses
        )
        return ready if ready == ips else None

    assert eventually("the EndpointSlice to list both pods", listed, timeout=30) == ips


def test_kubectl_logs_shows_the_requests_a_pod_served(web: tuple[str, list[str]]) -> None:
    ns, ips = web
    marker = f"/logged-{uuid.uuid4().hex}"
    assert http_get(ips[0], marker) == 404
    pod = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
    name = next(p["metadata"]["name"] for p in pod if p["status"]["podIP"] == ips[0])

    def logged() -> str | None:
        out = kubectl("logs", "-n", ns, name)
        return out if marker in out else None

    assert f"GET {marker} HTTP/1.1" in eventually("the request in the pod log", logged, timeout=30)


def test_deleting_a_namespace_deletes_its_pods(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        namespace,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "doomed"},
         "spec": http_server_pod_spec()},
    )  # fmt: skip
    eventually(
        "the pod to run",
        lambda: core.read_namespaced_pod("doomed", namespace).status.phase == "Running",
    )
    core.delete_namespace(namespace)

    def gone() -> bool:
        names = [ns.metadata.name for ns in core.list_namespace().items]
        return namespace not in names

    eventually("the namespace and its pod to be deleted", gone)
    assert (
        core.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={namespace}").items
        == []
    )


def hardened_pod(name: str) -> dict[str, Any]:
    """A pod locked down as kubelambda runs functions: non-root, read-only, no caps, limits."""
    spec = http_server_pod_spec()
    container = spec["containers"][0]
    container["command"] += ["--directory", "/tmp"]
    container["securityContext"] = {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    container["resources"] = {"limits": {"cpu": "250m", "memory": "128Mi"}}
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    spec["volumes"] = [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]
    spec["automountServiceAccountToken"] = False
    spec["securityContext"] = {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_hardened_pod_runs_confined_by_seccomp_and_its_memory_limit(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, hardened_pod("hardened"))
    eventually(
        "the hardened pod to become ready",
        lambda: any(
            c.type == "Ready" and c.status == "True"
            for c in core.read_namespaced_pod("hardened", namespace).status.conditions or []
        ),
    )
    # Seccomp mode 2 is a filter; the limit file is cgroup v1's (memory.max on v2).
    probe = (
        "grep '^Seccomp:' /proc/1/status; id -u; "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.max"
    )
    out = kubectl("exec", "-n", namespace, "hardened", "--", "sh", "-c", probe).split()
    assert out == ["Seccomp:", "2", "65534", str(128 * 1024 * 1024)]


IN_CLUSTER_VERSION_SCRIPT = """
import json, os, ssl, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
request = urllib.request.Request(
    f"https://{host}:{port}/version",
    headers={"Authorization": "Bearer " + open(f"{sa}/token").read()},
)
context = ssl.create_default_context(cafile=f"{sa}/ca.crt")
print(json.load(urllib.request.urlopen(request, context=context, timeout=10))["gitVersion"])
"""


def test_pods_reach_the_apiserver_with_in_cluster_credentials(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    spec = http_server_pod_spec()
    spec["containers"][0]["command"] = ["python3", "-c", IN_CLUSTER_VERSION_SCRIPT]
    spec["restartPolicy"] = "Never"
    core.create_namespaced_pod(
        namespace, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"}, "spec": spec}
    )

    def finished() -> str | None:
        phase = core.read_namespaced_pod("client", namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = eventually("the in-cluster client pod to finish", finished)
    output = core.read_namespaced_pod_log("client", namespace)
    assert (phase, output.strip()) == ("Succeeded", k8s_layout.KUBERNETES_VERSION)


def test_pod_network_is_fenced_to_the_bridge(kubeconfig: pathlib.Path) -> None:
    _, jumps = node_network.isolation_rules()
    for jump in jumps:
        check = subprocess.run(["iptables", "-w", "-C", *jump], capture_output=True, check=False)
        assert check.returncode == 0, f"missing iptables rule {' '.join(jump)}"
