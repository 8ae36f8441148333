"""The pure builders of a function's objects: identity, isolation, pods, tokens."""

from __future__ import annotations

from typing import Any

import pytest

from kubelambda.instance_environment import InitializationType
from kubelambda.kubernetes import workloads
from kubelambda.kubernetes.workloads import Owner, PodSettings
from kubelambda.models import (
    AccessRule,
    CodePackage,
    EnvironmentReference,
    FunctionIdentity,
    Target,
    frozen_mapping,
)
from tests import factories

OWNER = Owner("kubelambda.io/v1alpha1", "Function", "hello", "uid-1")
SETTINGS = PodSettings(
    runtime_image="localhost/kubelambda/runtime:abc",
    code_url="http://10.244.0.1:7070/",
    region="eu-west-1",
    platform_namespace="kubelambda",
    gateway_cidrs=("10.244.0.1/32",),
)
NO_IDENTITY = FunctionIdentity()
READ_CONFIGMAPS = AccessRule(api_groups=("",), resources=("configmaps",), verbs=("get",))


def build(
    identity: FunctionIdentity = NO_IDENTITY,
    *,
    concurrency: int = 4,
    idle_timeout: float = 300.0,
    **changes: object,
) -> dict[str, Any]:
    version = factories.function_version("Hello_World", namespace="team-a", **changes)
    return workloads.deployment(
        "hello",
        version,
        owner=OWNER,
        replicas=2,
        concurrency=concurrency,
        identity=identity,
        settings=SETTINGS,
        idle_timeout=idle_timeout,
    )


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


@pytest.mark.parametrize(
    ("version", "name"),
    [("$LATEST", "hello-latest"), ("1", "hello-v1"), ("12", "hello-v12")],
)
def test_a_version_is_named_by_its_function_and_slug(version: str, name: str) -> None:
    assert workloads.instance_name("hello", version) == name


def test_every_container_runs_restricted() -> None:
    spec = pod_spec(build())
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert "initContainers" not in spec
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}


@pytest.mark.parametrize(
    ("identity", "mounted"),
    [
        (FunctionIdentity(), False),
        (FunctionIdentity(mount_token=True), True),
        (FunctionIdentity(rules=(READ_CONFIGMAPS,)), True),
    ],
)
def test_the_token_is_mounted_only_when_asked_or_granted_rules(
    identity: FunctionIdentity, mounted: bool
) -> None:
    assert pod_spec(build(identity))["automountServiceAccountToken"] is mounted
    account = workloads.service_account("hello", namespace="team-a", identity=identity, owner=OWNER)
    assert account["automountServiceAccountToken"] is mounted


def test_rules_become_a_role_bound_to_the_functions_own_account() -> None:
    identity = FunctionIdentity(rules=(READ_CONFIGMAPS,))
    role = workloads.role("hello", namespace="team-a", identity=identity, owner=OWNER)
    assert role is not None
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    binding = workloads.role_binding("hello", namespace="team-a", owner=OWNER)
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hello", "namespace": "team-a"}
    ]
    assert (
        workloads.role("hello", namespace="team-a", identity=FunctionIdentity(), owner=OWNER)
        is None
    )


def test_service_account_annotations_pass_through() -> None:
    identity = FunctionIdentity(annotations=frozen_mapping({"iam.gke.io/gsa": "x@y"}))
    account = workloads.service_account("hello", namespace="team-a", identity=identity, owner=OWNER)
    assert account["metadata"]["annotations"] == {"iam.gke.io/gsa": "x@y"}


def test_every_object_is_owned_by_its_resource() -> None:
    version = factories.function_version("hello", namespace="team-a")
    objects = [
        build(),
        workloads.service("hello", version, owner=OWNER),
        workloads.secret("hello", version, owner=OWNER, invoke_token="i", code_token="c"),
        workloads.network_policy("hello", namespace="team-a", owner=OWNER, settings=SETTINGS),
    ]
    for made in objects:
        assert made["metadata"]["ownerReferences"] == [OWNER.reference()]
        assert made["metadata"]["namespace"] == "team-a"


def test_only_the_gateway_may_reach_the_pods() -> None:
    policy = workloads.network_policy("hello", namespace="team-a", owner=OWNER, settings=SETTINGS)
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": workloads.AGENT_PORT}]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubelambda"}},
            "podSelector": {"matchLabels": {"kubelambda.io/invoker": "true"}},
        },
        {"ipBlock": {"cidr": "10.244.0.1/32"}},
    ]
    assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_the_agent_gets_lambdas_variables_and_its_token_from_the_secret() -> None:
    deployment = build(memory_size=512, timeout=30)
    (agent,) = pod_spec(deployment)["containers"]
    env = env_of(agent)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "Hello_World"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["LAMBDA_TASK_ROOT"] == "/var/task"
    assert env["KUBELAMBDA_AGENT_CONCURRENCY"] == "4"
    assert env["KUBELAMBDA_AGENT_LISTEN"] == "0.0.0.0:8080"
    assert env["KUBELAMBDA_AGENT_INVOKE_TOKEN"] == {
        "secretKeyRef": {"name": "hello-latest", "key": "invoke-token"}
    }
    assert agent["resources"]["limits"]["memory"] == f"{512 + workloads.AGENT_MEMORY_MIB}Mi"
    assert "cpu" not in agent["resources"]["limits"]
    assert pod_spec(deployment)["terminationGracePeriodSeconds"] >= 30


def test_environment_references_become_value_from() -> None:
    references = (
        EnvironmentReference("DB_PASSWORD", "secret", "db", "password"),
        EnvironmentReference("MODE", "configMap", "settings", "mode"),
    )
    (agent,) = pod_spec(build(environment_references=references))["containers"]
    env = env_of(agent)
    assert env["DB_PASSWORD"] == {"secretKeyRef": {"name": "db", "key": "password"}}
    assert env["MODE"] == {"configMapKeyRef": {"name": "settings", "key": "mode"}}


def test_the_agent_fetches_the_running_package_with_its_code_token() -> None:
    serving = CodePackage("cd" * 32, 10)
    deployment = build(serving_package=serving)
    (agent,) = pod_spec(deployment)["containers"]
    env = env_of(agent)
    assert env["KUBELAMBDA_CODE_URL"] == f"http://10.244.0.1:7070/kubelambda/code/{'cd' * 32}.zip"
    assert env["KUBELAMBDA_CODE_SHA256"] == "cd" * 32
    assert env["KUBELAMBDA_CODE_TOKEN"] == {
        "secretKeyRef": {"name": "hello-latest", "key": "code-token"}
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels[workloads.LABEL_PACKAGE] == workloads.package_label("cd" * 32)


def test_the_spec_hash_follows_the_template_not_the_replicas() -> None:
    two = build()
    three = dict(two, spec=dict(two["spec"], replicas=3))
    assert workloads.spec_hash(two) == workloads.spec_hash(three)
    assert workloads.spec_hash(two) != workloads.spec_hash(build(memory_size=256))


def test_pods_of_concurrency_above_one_stop_surplus_runtimes_after_the_idle_timeout() -> None:
    (agent,) = pod_spec(build(concurrency=4, idle_timeout=45.0))["containers"]
    (single,) = pod_spec(build(concurrency=1, idle_timeout=45.0))["containers"]

    assert env_of(agent)["KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS"] == "45.0"
    # One runtime is all such a pod has, and the autoscaler decides when it goes.
    assert "KUBELAMBDA_AGENT_RUNTIME_IDLE_SECONDS" not in env_of(single)
    assert workloads.spec_hash(build(idle_timeout=45.0)) != workloads.spec_hash(build())


def test_provisioned_pods_say_so_to_the_function() -> None:
    version = factories.function_version("hello")
    deployment = workloads.deployment(
        "hello",
        version,
        owner=OWNER,
        replicas=1,
        concurrency=1,
        identity=FunctionIdentity(),
        settings=SETTINGS,
        idle_timeout=300.0,
        initialization_type=InitializationType.PROVISIONED,
    )
    (agent,) = pod_spec(deployment)["containers"]
    assert env_of(agent)["AWS_LAMBDA_INITIALIZATION_TYPE"] == "provisioned-concurrency"


def test_a_pods_target_comes_from_its_annotations() -> None:
    metadata = build()["spec"]["template"]["metadata"]
    target = workloads.target_of(metadata, "team-a")
    assert target == Target("team-a", "Hello_World", "$LATEST")
    assert workloads.target_of({}, "team-a") is None
