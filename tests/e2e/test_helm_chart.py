"""The Helm chart end to end, with the real helm, on the test cluster.

One release for the module, as an operator uses it: `helm install` of charts/kubelambda
with the platform image this checkout builds → every platform pod Ready → boto3 through
the gateway Service (found by `kubelambda env --kubernetes`): create, invoke (sync and
Event), publish, alias → Prometheus scrapes the gateway pods and one of the chart's
alerts fires when provoked → `helm upgrade` (a replica more, a new image tag) and
`helm rollback`, while a caller invokes throughout and no invocation fails and no
function pod is replaced → `helm uninstall` leaves nothing of the platform but its CRDs.

The test cluster has no DNS: the platform reads its Services' ClusterIPs from the
apiserver where their names do not resolve, and kube-proxy routes them as in any cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import kubelambda_testbed
from kubelambda_testbed import k8s
from kubelambda_testbed.prometheus import Prometheus
from tests.chart_files import ALERTS, CHART
from tests.e2e.conftest import create_function
from tests.polling import eventually

pytestmark = [pytest.mark.infra, pytest.mark.timeout(900)]

RELEASE = "kl"
ECHO = "def handler(event, context):\n    return {'echo': event}\n"
FAILING = "def handler(event, context):\n    raise ValueError('always')\n"
PLATFORM_KINDS = (
    "deployments,services,secrets,configmaps,serviceaccounts,roles,rolebindings,"
    "networkpolicies,poddisruptionbudgets,leases"
)


def run(*argv: str, timeout: float = 300) -> str:
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def sample(exposition: str, name: str, **labels: str) -> float | None:
    """The value of ``name`` with exactly ``labels`` in a Prometheus exposition."""
    for family in text_string_to_metric_families(exposition):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


@dataclass
class Release:
    """The installed release, its namespaces, and the clients a user would make."""

    namespace: str
    functions: str
    kubeconfig: Path
    image: str
    values: Path
    notes: str = ""
    exports: dict[str, str] = field(default_factory=dict)

    def kubectl(self, *args: str) -> str:
        return run("kubectl", f"--kubeconfig={self.kubeconfig}", *args, timeout=120)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def helm(self, *args: str) -> str:
        return run("helm", f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args)

    def pods(self, component: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            "pods", "-n", self.namespace, "-l", f"app.kubernetes.io/component={component}"
        )["items"]
        return [pod for pod in items if "deletionTimestamp" not in pod["metadata"]]

    def ready(self, component: str) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.pods(component)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod["status"].get("conditions", [])
            )
        ]

    def lambda_client(self) -> Any:
        return boto3.client(
            "lambda",
            endpoint_url=self.exports["AWS_ENDPOINT_URL_LAMBDA"],
            region_name=self.exports["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.exports["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.exports["AWS_SECRET_ACCESS_KEY"],
        )

    def function_rollouts(self) -> dict[str, str]:
        """uid by name of the functions' ReplicaSets: a new one means their pods were
        replaced by a rollout (the autoscaler only changes how many there are)."""
        items = self.get("replicasets", "-n", self.functions)["items"]
        return {rs["metadata"]["name"]: rs["metadata"]["uid"] for rs in items}


def exports_of(release: Release) -> dict[str, str]:
    """What `eval "$(kubelambda env --kubernetes -n NS)"` would set, parsed."""
    printed = run(
        str(Path(sys.executable).with_name("kubelambda")),
        "env",
        "--kubernetes",
        "-n",
        release.namespace,
    )
    exports = {}
    for line in printed.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        exports[name] = value.strip("'")
    return exports


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory,
    kubeconfig: Path,
    platform_image: str,
    runtime_image: str,
    kafka_bootstrap_pods: str,
) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:8]
    repository, _, tag = platform_image.rpartition(":")
    # The chart's defaults otherwise: the platform finds its Services' ClusterIPs itself,
    # since the test cluster has no DNS.
    values = {
        "image": {"repository": repository, "tag": tag},
        "runtime": {"image": runtime_image},
        "functionNamespaces": [f"helm-fn-{suffix}"],
        "kafka": {"bootstrapServers": kafka_bootstrap_pods, "topicPrefix": f"helm-{suffix}"},
    }
    values_file = tmp_path_factory.mktemp("helm") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    made = Release(
        namespace=f"helm-{suffix}",
        functions=f"helm-fn-{suffix}",
        kubeconfig=kubeconfig,
        image=platform_image,
        values=values_file,
    )
    made.kubectl("create", "namespace", made.functions)
    try:
        made.notes = made.helm(
            "install", RELEASE, str(CHART), "--create-namespace", "-f", str(values_file),
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        made.exports = exports_of(made)
        yield made
    finally:
        subprocess.run(
            ["helm", f"--kubeconfig={kubeconfig}", "-n", made.namespace, "uninstall", RELEASE],
            capture_output=True,
            timeout=120,
        )
        for namespace in (made.functions, made.namespace):
            made.kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def invoke(client: Any, name: str, payload: Any, **extra: Any) -> Any:
    answer = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), **extra)
    assert answer["StatusCode"] == 200, answer
    assert "FunctionError" not in answer, answer["Payload"].read()
    return json.loads(answer["Payload"].read())


def test_install_brings_up_every_platform_pod(release: Release) -> None:
    assert len(release.ready("gateway")) == 2
    assert len(release.ready("dispatcher")) == 1
    # Only the leader is Ready: one controller replica is.
    assert len(release.ready("controller")) == 1
    for component in ("gateway", "controller", "dispatcher"):
        (container,) = release.pods(component)[0]["spec"]["containers"]
        assert container["image"] == release.image
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The admin keys are never printed by Helm; only how to read them.
    for secret in ("KUBELAMBDA_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert release.exports[secret] not in release.notes
    assert "CustomResourceDefinitions" in release.notes


def test_boto3_through_the_gateway_service(release: Release) -> None:
    gateway_service = release.get(
        "service", "-n", release.namespace, f"{RELEASE}-kubelambda-gateway"
    )
    assert release.exports["AWS_ENDPOINT_URL_LAMBDA"] == (
        f"http://{gateway_service['spec']['clusterIP']}:8080"
    )
    client = release.lambda_client()
    create_function(client, "echo", ECHO)
    assert invoke(client, "echo", {"n": 1}) == {"echo": {"n": 1}}

    accepted = client.invoke(FunctionName="echo", Payload=b'{"n": 2}', InvocationType="Event")
    assert accepted["StatusCode"] == 202
    (dispatcher,) = release.ready("dispatcher")

    def dispatched() -> bool:
        metrics = run("curl", "-s", f"http://{dispatcher['status']['podIP']}:8082/metrics")
        succeeded = sample(
            metrics,
            "kubelambda_invocations_total",
            namespace=release.functions,
            function="echo",
            version="$LATEST",
            outcome="success",
        )
        return succeeded == 1.0

    eventually("the dispatcher to run the Event invocation", dispatched)

    (controller,) = release.ready("controller")
    echo = {"namespace": release.functions, "function": "echo", "version": "$LATEST"}

    def counted_by_the_controller() -> bool:
        metrics = run("curl", "-s", f"http://{controller['status']['podIP']}:8081/metrics")
        starts = sample(
            metrics, "kubelambda_instance_starts_total", initialization_type="on-demand", **echo
        )
        ready = sample(metrics, "kubelambda_instances_ready", **echo)
        return bool(starts and ready)

    eventually("the controller's instance metrics", counted_by_the_controller)

    version = client.publish_version(FunctionName="echo")["Version"]
    client.create_alias(FunctionName="echo", Name="live", FunctionVersion=version)
    assert invoke(client, "echo:live", {"n": 3}) == {"echo": {"n": 3}}
    aliases = release.get("aliases.kubelambda.io", "-n", release.functions)["items"]
    assert [alias["metadata"]["name"] for alias in aliases] == ["echo-live"]


def test_prometheus_scrapes_the_gateways_and_an_error_alert_fires(
    release: Release, prometheus: Prometheus
) -> None:
    client = release.lambda_client()
    create_function(client, "failing", FAILING)
    targets = [f"{pod['status']['podIP']}:8080" for pod in release.ready("gateway")]
    # The ServiceMonitor's job name, which the alerts select on; `for` shortened to 0s:
    # the expressions are under test here, not the hold times.
    job = "kubelambda-gateway"
    instances = "|".join(targets)
    rules = ALERTS.read_text().replace("for: ", "for: 0s # was ")
    prometheus.scrape(targets, job=job)
    prometheus.load_rules(f"helm-{release.namespace}", rules)
    try:
        eventually(
            "Prometheus to scrape both gateways",
            lambda: len(prometheus.query(f'up{{job="{job}", instance=~"{instances}"}} == 1')) == 2,
        )
        # Spread over several scrapes: a rate needs a counter seen rising, and each
        # gateway's series is born at its first invocation.
        for n in range(20):
            answer = client.invoke(FunctionName="failing", Payload=json.dumps({"n": n}).encode())
            assert answer["FunctionError"] == "Unhandled"
            time.sleep(0.25)
        firing = eventually(
            "KubelambdaFunctionErrorRateHigh to fire",
            lambda: prometheus.query(
                'ALERTS{alertname="KubelambdaFunctionErrorRateHigh", alertstate="firing",'
                f' namespace="{release.functions}", function="failing"}}'
            ),
            timeout=60,
        )
    finally:
        prometheus.load_rules(f"helm-{release.namespace}", None)
        prometheus.scrape([], job=job)
    assert firing[0]["metric"]["severity"] == "warning"


class Caller:
    """Invokes a warm function back to back from a thread, counting what failed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.succeeded = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                invoke(self._client, "echo", {"n": self.succeeded})
                self.succeeded += 1
            except Exception as exc:  # every failure counts, whatever it is
                self.failures.append(repr(exc))
            time.sleep(0.05)


def test_upgrade_and_rollback_keep_functions_serving(release: Release) -> None:
    client = release.lambda_client()
    invoke(client, "echo", {"warm": True})
    rollouts_before = release.function_rollouts()
    repository = release.image.rpartition(":")[0]
    new_tag = f"upgrade-{uuid.uuid4().hex[:6]}"
    k8s.tag_image(
        kubelambda_testbed.state_dir(os.environ),
        kubelambda_testbed.cache_dir(os.environ),
        source=release.image,
        target=f"{repository}:{new_tag}",
    )
    with Caller(release.lambda_client()) as caller:
        release.helm(
            "upgrade", RELEASE, str(CHART), "-f", str(release.values),
            "--set", "gateway.replicas=3", "--set", f"image.tag={new_tag}",
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        assert len(release.ready("gateway")) == 3
        for component in ("gateway", "controller", "dispatcher"):
            for pod in release.pods(component):
                assert pod["spec"]["containers"][0]["image"] == f"{repository}:{new_tag}"
        after_upgrade = caller.succeeded
        release.helm("rollback", RELEASE, "1", "--wait", "--timeout", "5m")
        eventually("the rollback's gateways", lambda: len(release.ready("gateway")) == 2)
        for pod in release.pods("gateway"):
            assert pod["spec"]["containers"][0]["image"] == release.image
        time.sleep(2)
    assert caller.failures == []
    assert after_upgrade > 0 and caller.succeeded > after_upgrade
    # The functions' pods are the cluster's, not the release's: never rolled out anew.
    assert release.function_rollouts() == rollouts_before
    # The same credentials after both (generated once, kept by `lookup`).
    assert exports_of(release) == release.exports


def test_uninstall_leaves_only_the_crds(release: Release) -> None:
    release.helm("uninstall", RELEASE, "--wait", "--timeout", "2m")
    selector = f"app.kubernetes.io/instance={RELEASE}"

    def platform_gone() -> bool:
        left = release.get(PLATFORM_KINDS, "-n", release.namespace, "-l", selector)["items"]
        pods = release.get("pods", "-n", release.namespace, "-l", selector)["items"]
        return not left and not pods

    eventually("the release's objects to go", platform_gone)
    cluster_scoped = release.get("clusterroles,clusterrolebindings", "-l", selector)["items"]
    assert cluster_scoped == []
    crds = release.get("crd")["items"]
    names = {crd["metadata"]["name"] for crd in crds}
    assert {
        "functions.kubelambda.io",
        "functionversions.kubelambda.io",
        "aliases.kubelambda.io",
    } <= names
    # The functions remain (Helm leaves CRDs and their objects) with their code, ready for
    # a reinstall, as NOTES said they would.
    functions = release.get("functions.kubelambda.io", "-n", release.functions)["items"]
    assert {f["metadata"]["name"] for f in functions} == {"echo", "failing"}
    packages = release.get(
        "secrets", "-n", release.namespace, "-l", "app.kubernetes.io/component=code-package"
    )["items"]
    assert len(packages) == 2
    assert "kubectl -n " + release.namespace + " delete secrets" in release.notes
