"""Smoke tests of the test Kubernetes cluster built by kubelambda_testbed.k8s.

They prove that the control plane answers, the node is Ready and really runs pods
(containerd + runc on a CNI bridge) from the locally built base image, also locked
down as kubelambda runs functions; that pods are reachable from the host at their
IPs and listed in their Service's EndpointSlice; that kube-proxy routes the Service's
ClusterIP to them from the host and from another pod; that logs and exec work through
the apiserver; that pods reach the apiserver with in-cluster credentials and the
host's Kafka at ``KAFKA_BOOTSTRAP_PODS``; that the pod network stays fenced in, our
rules ahead of kube-proxy's; and that namespace deletion cascades. Failures in later
Kubernetes-backed tests then point at our code, not at the cluster.
"""

from __future__ import annotations

import http.client
import json
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client, config

from kubelambda_testbed import images, k8s_layout, node_network
from tests import polling

pytestmark = pytest.mark.infra

T = TypeVar("T")

HTTP_PORT = 8080
SERVICE_PORT = 80
REPLICAS = 2
TIMEOUT = 120.0


def eventually(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    return polling.eventually(what, probe, timeout=timeout, interval=1.0)


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
            "spec": {
                "selector": labels,
                "ports": [{"port": SERVICE_PORT, "targetPort": HTTP_PORT}],
            },
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


@pytest.fixture(scope="module")
def client_pod(api: client.ApiClient, web: tuple[str, list[str]]) -> tuple[str, str]:
    """A pod beside the web pods but outside their Service, to make requests from: (name, IP)."""
    ns, _ = web
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        ns,
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
         "spec": http_server_pod_spec()},
    )  # fmt: skip

    def ready_ip() -> str | None:
        pod = core.read_namespaced_pod("client", ns)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return str(pod.status.pod_ip) if ready else None

    return "client", eventually("the client pod to become ready", ready_ip)


def http_get(ip: str, path: str = "/", port: int = HTTP_PORT) -> int:
    conn = http.client.HTTPConnection(ip, port, timeout=5)
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


def cluster_ip(api: client.ApiClient, ns: str) -> str:
    return str(client.CoreV1Api(api).read_namespaced_service("web", ns).spec.cluster_ip)


def test_service_cluster_ip_routes_to_the_pods_from_the_host(
    api: client.ApiClient, web: tuple[str, list[str]]
) -> None:
    ns, _ = web
    ip = cluster_ip(api, ns)

    def answered() -> int | None:
        try:
            return http_get(ip, port=SERVICE_PORT)
        except OSError:  # kube-proxy has not written the Service's rules yet
            return None

    assert eventually("the ClusterIP to answer", answered, timeout=30) == 200


CLUSTER_IP_GET_SCRIPT = """
import sys, urllib.request
print(urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/", timeout=5).status)
"""


def test_service_cluster_ip_routes_to_the_pods_from_a_pod(
    api: client.ApiClient, web: tuple[str, list[str]], client_pod: tuple[str, str]
) -> None:
    ns, _ = web
    name, _ = client_pod
    argv = ["kubectl", "exec", "-n", ns, name, "--", "python3", "-c", CLUSTER_IP_GET_SCRIPT,
            cluster_ip(api, ns), str(SERVICE_PORT)]  # fmt: skip

    def answered() -> str | None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        return result.stdout.strip() if result.returncode == 0 else None

    assert eventually("the ClusterIP to answer the pod", answered, timeout=30) == "200"


def pod_netns(ip: str) -> str:
    """The network namespace (named by the CNI plugin, under /run/netns) holding pod IP ``ip``."""
    names = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True)
    for name in (line.split()[0] for line in names.stdout.splitlines()):
        addresses = subprocess.run(["ip", "-n", name, "-4", "-o", "addr", "show"],
                                   capture_output=True, text=True, check=False)  # fmt: skip
        if f" {ip}/" in addresses.stdout:
            return name
    raise AssertionError(f"no network namespace holds {ip}")


# Run with this interpreter (it has aiokafka) inside a pod's network namespace: prints the
# message read back and the broker address the cluster metadata advertised.
KAFKA_ROUND_TRIP_SCRIPT = """
import asyncio, sys
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

async def main(bootstrap, topic):
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, replication_factor=1)])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"from-a-pod")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=topic
        )
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 30)
        finally:
            await consumer.stop()
        brokers = (await admin.describe_cluster())["brokers"]
        print(message.value.decode(), *(f"{b['host']}:{b['port']}" for b in brokers))
    finally:
        await admin.delete_topics([topic])
        await admin.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_pods_produce_and_consume_through_kafka_bootstrap_pods(
    client_pod: tuple[str, str], kafka_bootstrap_pods: str
) -> None:
    _, ip = client_pod
    topic = f"smoke-pods-{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        ["ip", "netns", "exec", pod_netns(ip),
         sys.executable, "-c", KAFKA_ROUND_TRIP_SCRIPT, kafka_bootstrap_pods, topic],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-a-pod", kafka_bootstrap_pods]


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


@pytest.mark.parametrize(
    ("table", "chain"), [("filter", "OUTPUT"), ("filter", "FORWARD"), ("nat", "PREROUTING")]
)
def test_our_jumps_come_before_kube_proxys(
    kubeconfig: pathlib.Path, table: str, chain: str
) -> None:
    # Below the isolation jumps, kube-proxy's ACCEPT of packets it masquerades cannot carry
    # pod traffic off the bridge; its jump to KUBE-SERVICES shows it has synced.
    listing = subprocess.run(["iptables", "-w", "-t", table, "-S", chain],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
    targets = [line.split()[-1] for line in listing.splitlines() if line.startswith("-A ")]
    ours = [target for target in targets if target.startswith("KUBELAMBDA-")]
    assert ours, targets
    assert targets[: len(ours)] == ours, targets
    assert "KUBE-SERVICES" in targets, targets
