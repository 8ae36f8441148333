"""Kubernetes mode end to end: `kubelambda up --kubernetes` against the real test cluster.

Functions run as pods on the real kubelet (containerd + runc); the test drives the
platform with boto3 and kubectl as users do, and checks what the cluster holds with
kubectl: per-function ServiceAccounts and NetworkPolicies, per-version Deployments at
the replicas the autoscaler chose, and nothing left after a delete.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from tests.e2e.conftest import (
    Platform,
    log_text,
    make_zip,
    metric_value,
    start_platform,
    stop_platform,
)
from tests.polling import eventually

pytestmark = pytest.mark.infra

ROLE = "arn:aws:iam::000000000000:role/function"
# The node's bridge address: where pods reach this host (and so the gateway's code route).
NODE_ADDRESS = "10.244.0.1"
EXAMPLE = Path(__file__).parents[2] / "examples" / "kubernetes" / "hello.yaml"
HANDLER_ECHO = "def handler(event, context):\n    return {'answer': event.get('n'), 'v': 1}\n"


class Cluster:
    """kubectl against the test cluster, in the test's namespace."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        completed = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if completed.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {completed.stderr}")
        return completed.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-n", self.namespace, "-o", "json"))

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))

    def replicas(self, deployment: str) -> int | None:
        for item in self.get("deployments")["items"]:
            if item["metadata"]["name"] == deployment:
                return int(item["spec"].get("replicas", 0))
        return None

    def pods_of(self, function_object: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            "pods", "-l", f"kubelambda.io/function={function_object}"
        )["items"]
        return items


@pytest.fixture(scope="module")
def cluster(kubeconfig: Path) -> Iterator[Cluster]:
    """A fresh namespace for the module's functions."""
    made = Cluster(kubeconfig, f"e2e-{uuid.uuid4().hex[:8]}")
    made.kubectl("create", "namespace", made.namespace)
    yield made
    made.kubectl("delete", "namespace", made.namespace, "--wait=false")


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path, runtime_image: str, cluster: Cluster
) -> Iterator[Platform]:
    home = tmp_path_factory.mktemp("k8s-platform") / "home"
    running = start_platform(
        home,
        "--kubernetes",
        "--host",
        NODE_ADDRESS,
        "--namespace",
        cluster.namespace,
        environ={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KUBELAMBDA_RUNTIME_IMAGE": runtime_image,
            "KUBELAMBDA_VERSION_GRACE_SECONDS": "4",
            # Well above a cold start on a loaded machine, well below the default 30 s
            # that the unschedulable pod's invoke would otherwise wait out.
            "KUBELAMBDA_ACTIVATOR_MAX_WAIT_SECONDS": "12",
        },
    )
    yield running
    stop_platform(running.process)
    assert running.process.returncode == 0, log_text(running.home)


@pytest.fixture(scope="module")
def client(platform: Platform) -> Any:
    return platform.lambda_client()


def create(client: Any, name: str, *, code: str = HANDLER_ECHO, **extra: Any) -> dict[str, Any]:
    created: dict[str, Any] = client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": code})},
        **extra,
    )
    client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    return created


def invoke(client: Any, name: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **extra)
    body: dict[str, Any] = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, body
    body["_executed_version"] = response["ExecutedVersion"]
    return body


def test_create_and_invoke_runs_a_pod_under_the_functions_own_account(
    client: Any, cluster: Cluster
) -> None:
    create(client, "hello")
    assert invoke(client, "hello", {"n": 1}) == {
        "answer": 1,
        "v": 1,
        "_executed_version": "$LATEST",
    }
    # The pod answered as soon as its agent announced itself: the kubelet may not have
    # reported it Running yet.
    (pod,) = cluster.pods_of("hello")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "hello"
    assert spec["automountServiceAccountToken"] is False
    (agent,) = spec["containers"]
    assert agent["securityContext"]["readOnlyRootFilesystem"] is True
    account = cluster.get("serviceaccount", "hello")
    assert account["automountServiceAccountToken"] is False
    cluster.get("networkpolicy", "hello")
    listed = cluster.kubectl("get", "functions", "-n", cluster.namespace)
    assert "hello" in listed and "python3.11" in listed


def test_the_example_applied_with_kubectl_is_listed_and_invokable(
    client: Any, cluster: Cluster
) -> None:
    cluster.kubectl("apply", "-n", cluster.namespace, "-f", str(EXAMPLE))
    client.get_waiter("function_active_v2").wait(
        FunctionName="hello-gitops", WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    names = [f["FunctionName"] for f in client.list_functions()["Functions"]]
    assert "hello-gitops" in names
    response = client.invoke(FunctionName="hello-gitops", Payload=b'{"name": "kubectl"}')
    assert json.loads(response["Payload"].read()) == {
        "greeting": "Hello, kubectl!",
        "color": "blue",
    }
    listed = cluster.kubectl("get", "functions", "-n", cluster.namespace, "hello-gitops")
    assert listed.split() == ["NAME", "RUNTIME", "STATE", "VERSIONS", "AGE", *listed.split()[5:]]
    assert listed.split()[5:9] == ["hello-gitops", "python3.11", "Active", "0"]


def test_once_an_update_is_successful_no_invoke_reaches_the_old_code(client: Any) -> None:
    create(client, "rolling")
    assert invoke(client, "rolling", {"n": 1})["v"] == 1
    new_code = HANDLER_ECHO.replace("'v': 1", "'v': 2")
    client.update_function_code(FunctionName="rolling", ZipFile=make_zip({"app.py": new_code}))
    client.get_waiter("function_updated_v2").wait(
        FunctionName="rolling", WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )
    answers = {invoke(client, "rolling", {"n": i})["v"] for i in range(10)}
    assert answers == {2}


def test_a_weighted_alias_splits_between_two_published_versions(client: Any) -> None:
    create(client, "canary")
    first = client.publish_version(FunctionName="canary")["Version"]
    client.update_function_code(
        FunctionName="canary",
        ZipFile=make_zip({"app.py": HANDLER_ECHO.replace("'v': 1", "'v': 2")}),
    )
    client.get_waiter("function_updated_v2").wait(FunctionName="canary")
    second = client.publish_version(FunctionName="canary")["Version"]
    client.create_alias(
        FunctionName="canary",
        Name="live",
        FunctionVersion=first,
        RoutingConfig={"AdditionalVersionWeights": {second: 0.3}},
    )
    executed = [
        invoke(client, "canary", {"n": i}, Qualifier="live")["_executed_version"]
        for i in range(100)
    ]
    share = executed.count(second) / len(executed)
    assert 0.15 <= share <= 0.45, executed
    assert set(executed) == {first, second}


def test_idle_versions_scale_to_zero_pods_and_start_again(client: Any, cluster: Cluster) -> None:
    create(client, "idle", Tags={"kubelambda.io/idle-timeout-seconds": "3"})
    assert invoke(client, "idle", {"n": 1})["answer"] == 1
    eventually("a Deployment at zero", lambda: cluster.replicas("idle-latest") == 0)
    eventually("no pods", lambda: not cluster.pods_of("idle"), timeout=120)
    assert invoke(client, "idle", {"n": 2})["answer"] == 2
    recorded = [
        (event["reason"], event["involvedObject"]["kind"])
        for event in cluster.get("events")["items"]
        if event["involvedObject"]["name"] == "idle"
    ]
    assert ("ScaledDown", "Function") in recorded
    assert ("ScaledUp", "Function") in recorded


def test_an_idle_version_nothing_routes_to_loses_its_objects_until_invoked(
    client: Any, cluster: Cluster
) -> None:
    create(client, "aging", Tags={"kubelambda.io/idle-timeout-seconds": "2"})
    version = client.publish_version(FunctionName="aging")["Version"]
    assert invoke(client, "aging", {"n": 1}, Qualifier=version)["answer"] == 1
    name = f"aging-v{version}"
    eventually("the version's Deployment collected", lambda: cluster.replicas(name) is None)
    assert cluster.replicas("aging-latest") is not None  # $LATEST keeps its objects
    assert invoke(client, "aging", {"n": 2}, Qualifier=version)["answer"] == 2
    assert cluster.replicas(name) is not None


def test_reserved_concurrency_zero_throttles(client: Any) -> None:
    create(client, "throttled")
    client.put_function_concurrency(FunctionName="throttled", ReservedConcurrentExecutions=0)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.invoke(FunctionName="throttled", Payload=b"{}")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_provisioned_concurrency_keeps_a_ready_pod_without_traffic(
    client: Any, cluster: Cluster
) -> None:
    create(client, "warm")
    version = client.publish_version(FunctionName="warm")["Version"]
    client.put_provisioned_concurrency_config(
        FunctionName="warm", Qualifier=version, ProvisionedConcurrentExecutions=1
    )

    def ready() -> bool:
        config = client.get_provisioned_concurrency_config(FunctionName="warm", Qualifier=version)
        return bool(config["Status"] == "READY")

    eventually("provisioned concurrency READY", ready, timeout=120)

    def ready_pods() -> list[dict[str, Any]]:
        return [
            p
            for p in cluster.pods_of("warm")
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
        ]

    # The platform probes a new pod's agent itself and may call it READY before the
    # kubelet's next status report says so.
    running = eventually("a Ready pod without traffic", lambda: ready_pods() or None, timeout=10)
    assert len(running) >= 1


def test_a_pod_the_node_cannot_fit_is_a_deferred_start_and_its_invoke_a_429(
    client: Any, platform: Platform, cluster: Cluster
) -> None:
    # 10,240 MB asks for ceil(10,240 x 1,000 / 1,769) = 5,789m of CPU: more than the
    # test node's 2 cores, so the scheduler leaves the pod Pending, Unschedulable.
    create(client, "huge", MemorySize=10240)
    labels = {"function": "huge", "version": "$LATEST"}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(client.invoke, FunctionName="huge", Payload=b"{}")

        def unschedulable() -> bool:
            return any(
                c.get("reason") == "Unschedulable"
                for pod in cluster.pods_of("huge")
                for c in pod["status"].get("conditions") or []
            )

        eventually("an Unschedulable pod", unschedulable, timeout=20)
        deferred = eventually(
            "the deferred start in the metrics",
            lambda: metric_value(platform, "kubelambda_instance_starts_deferred", **labels),
            timeout=20,
        )
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            answer.result(timeout=60)

    assert deferred == 1
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert raised.value.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert metric_value(platform, "kubelambda_instance_failures_total", **labels) == 0
    assert [p["status"]["phase"] for p in cluster.pods_of("huge")] == ["Pending"]
    client.delete_function(FunctionName="huge")


def test_a_burst_at_zero_pods_is_answered_in_full(client: Any, platform: Platform) -> None:
    create(client, "burst", Tags={"kubelambda.io/instance-concurrency": "8"})
    burst_client = platform.lambda_client(read_timeout=120)

    def call(i: int) -> int:
        response = burst_client.invoke(FunctionName="burst", Payload=json.dumps({"n": i}).encode())
        body = json.loads(response["Payload"].read())
        assert body["answer"] == i
        return int(response["StatusCode"])

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(call, range(200)))
    assert statuses.count(200) == 200


def test_a_functions_rules_grant_its_own_token_and_nothing_more(
    client: Any, cluster: Cluster
) -> None:
    cluster.kubectl(
        "create", "configmap", "settings", "-n", cluster.namespace, "--from-literal=mode=blue"
    )
    code = (
        "import json, ssl, urllib.request, urllib.error\n"
        "TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "def get(path):\n"
        "    token = open(TOKEN + '/token').read()\n"
        "    context = ssl.create_default_context(cafile=TOKEN + '/ca.crt')\n"
        "    request = urllib.request.Request('https://10.96.0.1' + path,\n"
        "        headers={'Authorization': 'Bearer ' + token})\n"
        "    try:\n"
        "        with urllib.request.urlopen(request, context=context, timeout=10) as r:\n"
        "            return r.status, json.load(r)\n"
        "    except urllib.error.HTTPError as e:\n"
        "        return e.code, None\n"
        "def handler(event, context):\n"
        f"    status, body = get('/api/v1/namespaces/{cluster.namespace}/configmaps/settings')\n"
        f"    secrets, _ = get('/api/v1/namespaces/{cluster.namespace}/secrets')\n"
        "    return {'configmap': status, 'mode': body['data']['mode'], 'secrets': secrets}\n"
    )
    manifest = {
        "apiVersion": "kubelambda.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "reader", "namespace": cluster.namespace},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "timeout": 30,
            "code": {"zipBase64": base64.b64encode(make_zip({"app.py": code})).decode()},
            "serviceAccount": {
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
            },
        },
    }
    cluster.apply(manifest)
    client.get_waiter("function_active_v2").wait(FunctionName="reader")
    response = client.invoke(FunctionName="reader", Payload=b"{}")
    assert json.loads(response["Payload"].read()) == {
        "configmap": 200,
        "mode": "blue",
        "secrets": 403,
    }
    no_token = (
        "import os\n"
        "def handler(event, context):\n"
        "    return os.path.exists('/var/run/secrets/kubernetes.io/serviceaccount/token')\n"
    )
    create(client, "tokenless", code=no_token)
    response = client.invoke(FunctionName="tokenless", Payload=b"{}")
    assert json.loads(response["Payload"].read()) is False


def test_delete_removes_everything_the_function_made(client: Any, cluster: Cluster) -> None:
    create(client, "doomed")
    invoke(client, "doomed", {"n": 1})
    client.delete_function(FunctionName="doomed")
    selector = "kubelambda.io/function=doomed"

    def gone() -> bool:
        kinds = "serviceaccounts,deployments,services,networkpolicies,roles,secrets,pods"
        return not cluster.get(kinds, "-l", selector)["items"]

    eventually("every object of the function gone", gone, timeout=120)


def test_a_function_can_neither_read_its_tokens_nor_invoke_another_functions_pod(
    client: Any, cluster: Cluster
) -> None:
    create(client, "victim")
    invoke(client, "victim", {"n": 1})
    # The pod answered through its announcement; the kubelet reports its address later.
    victim_ip = eventually(
        "the victim pod's address",
        lambda: next((p["status"].get("podIP") for p in cluster.pods_of("victim")), None),
    )
    snoop = (
        "import json, os, urllib.request, urllib.error\n"
        "def handler(event, context):\n"
        "    try:\n"
        "        agent_environ = open('/proc/1/environ', 'rb').read().decode(errors='replace')\n"
        "    except OSError as exc:\n"
        "        agent_environ = type(exc).__name__\n"
        "    request = urllib.request.Request(\n"
        "        'http://' + event['ip'] + ':8080/invoke', data=b'{}',\n"
        "        headers={'Kubelambda-Request-Id': 'x', 'Kubelambda-Invoked-Function-Arn': 'a'})\n"
        "    try:\n"
        "        status = urllib.request.urlopen(request, timeout=5).status\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        status = exc.code\n"
        "    mine = ' '.join(f'{k}={v}' for k, v in os.environ.items())\n"
        "    return {'agent_environ': agent_environ, 'own_environ': mine, 'victim': status}\n"
    )
    create(client, "snoop", code=snoop)
    answer = invoke(client, "snoop", {"ip": victim_ip})
    secret = cluster.get("secret", "victim-latest")["data"]
    tokens = [base64.b64decode(value).decode() for value in secret.values()]
    own = cluster.get("secret", "snoop-latest")["data"]
    tokens += [base64.b64decode(value).decode() for value in own.values()]
    for token in tokens:
        assert token not in answer["agent_environ"]
        assert token not in answer["own_environ"]
    assert "KUBELAMBDA_CODE_TOKEN" not in answer["own_environ"]
    assert answer["victim"] == 403
