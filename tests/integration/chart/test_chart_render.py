"""The chart rendered by the real helm: it lints clean, refuses bad values with a message
naming the value, and its manifests keep the contract with the platform (entry points,
ports, variables, volumes, labels), the "restricted" pod security standard and least
privilege. Both values files are rendered: the defaults and every option set."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest
import yaml

from tests import chart_files
from tests.integration.chart.chart_testkit import (
    COMPONENTS,
    DEFAULT_VALUES,
    FULL_VALUES,
    RELEASE,
    Helm,
    Manifest,
    container,
    environment,
    named,
    of_kind,
    render,
)

VALUES_FILES = {"default": DEFAULT_VALUES, "full": ("-f", str(FULL_VALUES))}
PORTS = {"gateway": 8080, "controller": 8081, "dispatcher": 8082}
CREDENTIAL_FORMATS = {
    "access-key-id": r"KLAK[A-Z0-9]{16}",
    "secret-access-key": r"[A-Za-z0-9]{40}",
    "api-key": r"kl_[A-Za-z0-9_-]{43}",
    "instance-key": r"[0-9a-f]{64}",
}


@pytest.fixture(params=sorted(VALUES_FILES))
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    fixture = "default_manifests" if request.param == "default" else "full_manifests"
    rendered: list[Manifest] = request.getfixturevalue(fixture)
    return rendered


def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in of_kind(manifests, "Deployment")
    }


@pytest.mark.parametrize("values", sorted(VALUES_FILES))
def test_chart_lints_clean(helm: Helm, values: str) -> None:
    done = helm("lint", "--strict", str(chart_files.CHART), *VALUES_FILES[values])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


BAD_VALUES = {
    "replicas as a word": (
        ["--set-string", "gateway.replicas=two"],
        "at '/gateway/replicas': got string, want integer",
    ),
    "misspelt key": (["--set", "gatway.replicas=3"], "additional properties 'gatway' not allowed"),
    "unknown security protocol": (
        ["--set", "kafka.securityProtocol=TLS"],
        "at '/kafka/securityProtocol': value must be one of 'PLAINTEXT', 'SSL', "
        "'SASL_PLAINTEXT', 'SASL_SSL'",
    ),
    "SASL without credentials": (
        ["--set", "kafka.securityProtocol=SASL_SSL"],
        "at '/kafka/sasl/existingSecret': minLength: got 0, want 1",
    ),
    "a third controller": (
        ["--set", "controller.replicas=3"],
        "at '/controller/replicas': maximum: got 3, want 2",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_fail_schema_validation_naming_the_value(helm: Helm, case: str) -> None:
    values, message = BAD_VALUES[case]
    done = helm("template", RELEASE, str(chart_files.CHART), *DEFAULT_VALUES, *values)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr


def test_missing_kafka_bootstrap_fails_naming_the_value(helm: Helm) -> None:
    done = helm("template", RELEASE, str(chart_files.CHART))
    assert done.returncode != 0
    assert "at '/kafka/bootstrapServers': minLength: got 0, want 1" in done.stderr


def test_missing_kafka_bootstrap_fails_rendering_without_the_schema(helm: Helm) -> None:
    done = helm("template", RELEASE, str(chart_files.CHART), "--skip-schema-validation")
    assert done.returncode != 0
    assert "kafka.bootstrapServers is required" in done.stderr


def test_chart_makes_the_platform_objects(default_manifests: list[Manifest]) -> None:
    kinds = sorted({m["kind"] for m in default_manifests})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Lease",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ]


def test_each_component_runs_its_entry_point_on_its_port(manifests: list[Manifest]) -> None:
    for component, deployment in deployments(manifests).items():
        main = container(deployment)
        assert main["args"] == [component]
        assert main["ports"] == [
            {"name": "http", "containerPort": PORTS[component], "protocol": "TCP"}
        ]
        assert environment(deployment)["KUBELAMBDA_PORT"] == str(PORTS[component])
    assert sorted(deployments(manifests)) == sorted(COMPONENTS)


def test_probes_follow_the_contract(default_manifests: list[Manifest]) -> None:
    for component, deployment in deployments(default_manifests).items():
        main = container(deployment)
        readiness = "/readyz" if component == "controller" else "/healthz"
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert main["readinessProbe"]["httpGet"] == {"path": readiness, "port": "http"}


def test_defaults_run_two_gateways_one_controller_one_dispatcher(
    default_manifests: list[Manifest],
) -> None:
    replicas = {c: d["spec"]["replicas"] for c, d in deployments(default_manifests).items()}
    assert replicas == {"gateway": 2, "controller": 1, "dispatcher": 1}
    image = {container(d)["image"] for d in deployments(default_manifests).values()}
    assert image == {"localhost/kubelambda/platform:latest"}


def test_controller_rolls_without_surge(default_manifests: list[Manifest]) -> None:
    controller = deployments(default_manifests)["controller"]
    # A surged replica could never become Ready while the old one leads.
    assert controller["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_every_platform_pod_meets_the_restricted_standard(manifests: list[Manifest]) -> None:
    for deployment in deployments(manifests).values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10002,
            "runAsGroup": 10002,
            "fsGroup": 10002,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert container(deployment)["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 10002,
            "runAsGroup": 10002,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert not pod.get("hostNetwork") and not pod.get("hostPID")


def test_pod_labels_select_the_component_and_mark_invokers(manifests: list[Manifest]) -> None:
    for component, deployment in deployments(manifests).items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/component"] == component
        # Function pods admit only invokers: the gateway and the dispatcher.
        invoker = {"kubelambda.io/invoker": "true"} if component != "controller" else {}
        assert {k: v for k, v in labels.items() if k.startswith("kubelambda.io/")} == invoker


def test_default_pods_are_named_kubelambda(default_manifests: list[Manifest]) -> None:
    for deployment in deployments(default_manifests).values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "kubelambda"


def test_every_pod_mounts_home_tmp_and_the_credentials(manifests: list[Manifest]) -> None:
    credentials = named(manifests, "Secret", _fullname(manifests) + "-credentials")
    for deployment in deployments(manifests).values():
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container(deployment)["volumeMounts"]}
        assert volumes[mounts["/var/lib/kubelambda"]]["emptyDir"] == {}
        assert volumes[mounts["/tmp"]]["emptyDir"] == {}
        secret = volumes[mounts["/etc/kubelambda/secrets"]]["secret"]
        assert secret == {"secretName": credentials["metadata"]["name"], "defaultMode": 0o440}


def test_every_component_gets_the_platform_variables(default_manifests: list[Manifest]) -> None:
    for deployment in deployments(default_manifests).values():
        env = environment(deployment)
        assert env["KUBELAMBDA_HOME"] == "/var/lib/kubelambda"
        assert env["KUBELAMBDA_SECRETS_DIR"] == "/etc/kubelambda/secrets"
        assert env["KUBELAMBDA_HOST"] == "0.0.0.0"
        assert env["KUBELAMBDA_PLATFORM_NAMESPACE"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }
        assert env["KUBELAMBDA_NAMESPACES"] == ""
        assert env["KUBELAMBDA_REGION"] == "us-east-1"
        assert env["KUBELAMBDA_LOG_LEVEL"] == "INFO"


def test_gateway_and_dispatcher_reach_kafka_and_the_controller(
    default_manifests: list[Manifest],
) -> None:
    for component in ("gateway", "dispatcher"):
        env = environment(deployments(default_manifests)[component])
        assert (
            env["KUBELAMBDA_CONTROLLER_URL"]
            == "http://kl-kubelambda-controller.kubelambda.svc:8081"
        )
        assert env["KUBELAMBDA_KAFKA_BOOTSTRAP"] == "kafka.example:9092"
        assert env["KUBELAMBDA_KAFKA_TOPIC_PREFIX"] == RELEASE
        assert env["KUBELAMBDA_KAFKA_PARTITIONS"] == "6"
        assert env["KUBELAMBDA_KAFKA_REPLICATION_FACTOR"] == "1"
        assert env["KUBELAMBDA_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
        assert not {"KUBELAMBDA_KAFKA_SASL_MECHANISM", "KUBELAMBDA_KAFKA_SSL_CAFILE"} & set(env)
    controller = environment(deployments(default_manifests)["controller"])
    assert not [name for name in controller if name.startswith("KUBELAMBDA_KAFKA_")]


def test_kafka_sasl_and_tls_come_from_secrets(full_manifests: list[Manifest]) -> None:
    for component in ("gateway", "dispatcher"):
        deployment = deployments(full_manifests)[component]
        env = environment(deployment)
        assert env["KUBELAMBDA_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["KUBELAMBDA_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env["KUBELAMBDA_KAFKA_SASL_USERNAME"] == {
            "secretKeyRef": {"name": "kafka-user", "key": "username"}
        }
        assert env["KUBELAMBDA_KAFKA_SASL_PASSWORD"] == {
            "secretKeyRef": {"name": "kafka-user", "key": "password"}
        }
        assert env["KUBELAMBDA_KAFKA_SSL_CAFILE"] == "/etc/kubelambda/kafka-ca/ca.crt"
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["kafka-ca"]["secret"] == {
            "secretName": "kafka-ca",
            "items": [{"key": "ca.pem", "path": "ca.crt"}],
        }


OPTIONAL = {
    "gateway": {
        "KUBELAMBDA_ACTIVATOR_MAX_WAITING": "500",
        "KUBELAMBDA_ACTIVATOR_MAX_WAIT_SECONDS": "20.5",
        "KUBELAMBDA_HEADER_TIMEOUT_SECONDS": "5",
        "KUBELAMBDA_BODY_IDLE_TIMEOUT_SECONDS": "15",
        # Whole numbers stay whole: no 2.68435456e+08.
        "KUBELAMBDA_BODY_BUDGET_BYTES": "268435456",
    },
    "dispatcher": {
        "KUBELAMBDA_ASYNC_RETRY_DELAYS": "30,90.5",
        "KUBELAMBDA_ASYNC_THROTTLE_BACKOFF_SECONDS": "2.5",
    },
    "controller": {
        "KUBELAMBDA_VERSION_GRACE_SECONDS": "600",
        "KUBELAMBDA_PACKAGE_GRACE_SECONDS": "7200",
        "KUBELAMBDA_LEADER_LEASE_SECONDS": "9",
    },
}


@pytest.mark.parametrize("component", COMPONENTS)
def test_optional_settings_render_only_when_set(
    default_manifests: list[Manifest], full_manifests: list[Manifest], component: str
) -> None:
    assert not set(OPTIONAL[component]) & set(
        environment(deployments(default_manifests)[component])
    )
    full = environment(deployments(full_manifests)[component])
    assert {name: full[name] for name in OPTIONAL[component]} == OPTIONAL[component]


def test_controller_knows_the_runtime_image_and_the_code_url(manifests: list[Manifest]) -> None:
    env = environment(deployments(manifests)["controller"])
    assert env["KUBELAMBDA_RUNTIME_IMAGE"] in {
        "localhost/kubelambda/runtime:latest",
        "registry.example/kubelambda/runtime:0.1.0",
    }
    assert env["KUBELAMBDA_CODE_URL"] in {
        "http://kl-kubelambda-gateway.kubelambda.svc:8080",
        "http://gateway.example:8080",
    }


def test_services_expose_each_component_port(manifests: list[Manifest]) -> None:
    fullname = _fullname(manifests)
    for component, port in PORTS.items():
        service = named(manifests, "Service", f"{fullname}-{component}")
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == component
        assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
            ("http", port, "http")
        ]


def test_gateway_service_and_controller_service_take_a_fixed_cluster_ip(helm: Helm) -> None:
    manifests = render(
        helm,
        *DEFAULT_VALUES,
        "--set",
        "gateway.service.clusterIP=10.96.100.10,controller.service.clusterIP=10.96.100.11",
    )
    assert (
        named(manifests, "Service", "kl-kubelambda-gateway")["spec"]["clusterIP"] == "10.96.100.10"
    )
    controller = named(manifests, "Service", "kl-kubelambda-controller")
    assert controller["spec"]["clusterIP"] == "10.96.100.11"


def test_credentials_secret_holds_four_well_formed_keys(manifests: list[Manifest]) -> None:
    secret = named(manifests, "Secret", _fullname(manifests) + "-credentials")
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "credentials"
    assert "helm.sh/resource-policy" not in (secret["metadata"].get("annotations") or {})
    values = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert sorted(values) == sorted(CREDENTIAL_FORMATS)
    for key, pattern in CREDENTIAL_FORMATS.items():
        assert re.fullmatch(pattern, values[key]), key


def _rules(manifests: list[Manifest]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (role["metadata"]["name"], rule)
        for role in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")
        for rule in role["rules"]
    ]


def test_rbac_grants_no_wildcard(manifests: list[Manifest]) -> None:
    for name, rule in _rules(manifests):
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            assert "*" not in rule.get(field, []), f"{name}: {rule}"


def test_rbac_binds_nothing_built_in(manifests: list[Manifest]) -> None:
    bindings = of_kind(manifests, "ClusterRoleBinding") + of_kind(manifests, "RoleBinding")
    roles = {
        r["metadata"]["name"]
        for r in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role")
    }
    for binding in bindings:
        assert binding["roleRef"]["name"] in roles


def test_only_the_controller_may_escalate_and_only_when_allowed(
    default_manifests: list[Manifest], full_manifests: list[Manifest]
) -> None:
    dangerous = {"escalate", "bind", "impersonate"}
    assert [r for _, r in _rules(default_manifests) if dangerous & set(r["verbs"])] == []
    allowed = [(n, r) for n, r in _rules(full_manifests) if dangerous & set(r["verbs"])]
    assert allowed
    for name, rule in allowed:
        assert "-controller-" in name
        assert rule == {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "verbs": ["escalate", "bind"],
        }


def _verbs(manifests: list[Manifest], role: str, group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for name, rule in _rules(manifests):
        if name == role and group in rule["apiGroups"] and resource in rule["resources"]:
            verbs |= set(rule["verbs"])
    return verbs


def test_each_component_gets_only_its_own_permissions(default_manifests: list[Manifest]) -> None:
    gateway, controller, dispatcher = (
        f"kubelambda-kl-kubelambda-{component}" for component in COMPONENTS
    )
    assert "create" in _verbs(default_manifests, gateway, "kubelambda.io", "functions")
    assert "create" not in _verbs(default_manifests, controller, "kubelambda.io", "functions")
    assert _verbs(default_manifests, dispatcher, "kubelambda.io", "functions") == {
        "get",
        "list",
        "watch",
    }
    assert _verbs(default_manifests, gateway, "apps", "deployments") == set()
    assert "create" in _verbs(default_manifests, controller, "apps", "deployments")
    for component in COMPONENTS:
        account = f"kubelambda-kl-kubelambda-{component}"
        assert _verbs(default_manifests, account, "", "pods") == {"get", "list", "watch"}
    # In the release namespace the dispatcher reads the controller Service's address, and
    # nothing else (no code packages: it only invokes).
    dispatcher_role = named(default_manifests, "Role", "kl-kubelambda-dispatcher-platform")
    assert dispatcher_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["services"],
            "resourceNames": ["kl-kubelambda-controller"],
            "verbs": ["get"],
        }
    ]


def test_controller_lease_is_limited_by_name(default_manifests: list[Manifest]) -> None:
    lease = named(default_manifests, "Lease", "kubelambda-controller")
    assert lease["spec"] == {}
    role = named(default_manifests, "Role", "kl-kubelambda-controller-platform")
    leases = [r for r in role["rules"] if r["resources"] == ["leases"]]
    assert leases == [
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["kubelambda-controller"],
            "verbs": ["get", "update"],
        },
    ]


def test_listed_function_namespaces_get_roles_instead_of_cluster_roles(
    full_manifests: list[Manifest],
) -> None:
    assert of_kind(full_manifests, "ClusterRole") == []
    assert of_kind(full_manifests, "ClusterRoleBinding") == []
    functions_roles = {
        (r["metadata"]["namespace"], r["metadata"]["name"])
        for r in of_kind(full_manifests, "Role")
        if r["metadata"]["name"].endswith("-functions")
    }
    assert functions_roles == {
        (namespace, f"kl-lambda-{component}-functions")
        for namespace in ("team-a", "team-b")
        for component in COMPONENTS
    }


def test_every_pod_runs_as_its_component_account(manifests: list[Manifest]) -> None:
    accounts = {a["metadata"]["name"]: a for a in of_kind(manifests, "ServiceAccount")}
    for component, deployment in deployments(manifests).items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == f"{_fullname(manifests)}-{component}"
        assert pod["automountServiceAccountToken"] is True
        assert pod["serviceAccountName"] in accounts


def test_controller_admits_only_the_release_invokers(default_manifests: list[Manifest]) -> None:
    policy = named(default_manifests, "NetworkPolicy", "kl-kubelambda-controller")
    assert policy["spec"]["ingress"] == [
        {
            "ports": [{"protocol": "TCP", "port": 8081}],
            "from": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "kubelambda",
                            "app.kubernetes.io/instance": RELEASE,
                            "kubelambda.io/invoker": "true",
                        }
                    }
                }
            ],
        }
    ]


def test_dispatcher_admits_nobody_but_named_scrapers(
    default_manifests: list[Manifest], full_manifests: list[Manifest]
) -> None:
    default = named(default_manifests, "NetworkPolicy", "kl-kubelambda-dispatcher")
    assert default["spec"]["ingress"] == []
    full = named(full_manifests, "NetworkPolicy", "kl-lambda-dispatcher")
    (rule,) = full["spec"]["ingress"]
    assert rule["from"] == yaml.safe_load(FULL_VALUES.read_text())["networkPolicy"]["metricsFrom"]


def test_gateway_admits_anyone_unless_restricted(
    default_manifests: list[Manifest], full_manifests: list[Manifest]
) -> None:
    default = named(default_manifests, "NetworkPolicy", "kl-kubelambda-gateway")
    assert default["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    (rule,) = named(full_manifests, "NetworkPolicy", "kl-lambda-gateway")["spec"]["ingress"]
    # The named callers and scrapers, function pods fetching code, and the release's pods.
    assert len(rule["from"]) == 2 + 1 + 2


def test_network_policies_can_be_turned_off(helm: Helm) -> None:
    manifests = render(helm, *DEFAULT_VALUES, "--set", "networkPolicy.enabled=false")
    assert of_kind(manifests, "NetworkPolicy") == []


def _budgets(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: {
            k: v for k, v in pdb["spec"].items() if k in ("minAvailable", "maxUnavailable")
        }
        for pdb in of_kind(manifests, "PodDisruptionBudget")
    }


def test_disruption_budgets_keep_a_gateway_and_take_one_pod_at_a_time(
    default_manifests: list[Manifest], full_manifests: list[Manifest]
) -> None:
    assert _budgets(default_manifests) == {
        "gateway": {"minAvailable": 1},
        "controller": {"maxUnavailable": 1},
        "dispatcher": {"maxUnavailable": 1},
    }
    # Two controllers: the standby is never Ready, so a budget would block draining the leader.
    assert "controller" not in _budgets(full_manifests)


def test_a_single_gateway_gets_no_budget(helm: Helm) -> None:
    manifests = render(helm, *DEFAULT_VALUES, "--set", "gateway.replicas=1")
    assert "gateway" not in _budgets(manifests)


def test_component_placement_replaces_the_global_one(full_manifests: list[Manifest]) -> None:
    gateway = deployments(full_manifests)["gateway"]["spec"]["template"]
    controller = deployments(full_manifests)["controller"]["spec"]["template"]
    assert gateway["spec"]["nodeSelector"] == {"example.com/pool": "edge"}
    assert controller["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert gateway["spec"]["imagePullSecrets"] == [{"name": "gateway-regcred"}]
    assert controller["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert controller["spec"]["tolerations"][0]["value"] == "control"
    assert gateway["metadata"]["annotations"] == {
        "example.com/team": "platform",
        "example.com/component": "gateway",
    }


def test_gateway_drains_before_it_stops(full_manifests: list[Manifest]) -> None:
    gateway = deployments(full_manifests)["gateway"]
    assert container(gateway)["lifecycle"] == {"preStop": {"sleep": {"seconds": 10}}}
    assert gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 130


def test_prometheus_rule_carries_the_alerts_file(full_manifests: list[Manifest]) -> None:
    (rule,) = of_kind(full_manifests, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == yaml.safe_load(chart_files.ALERTS.read_text())


def test_service_monitor_scrapes_the_three_services_as_the_alerts_expect(
    full_manifests: list[Manifest],
) -> None:
    (monitor,) = of_kind(full_manifests, "ServiceMonitor")
    assert monitor["spec"]["jobLabel"] == "kubelambda.io/metrics-job"
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "honorLabels": True,
            "interval": "15s",
            "scrapeTimeout": "10s",
        }
    ]
    jobs = {
        s["metadata"]["labels"]["kubelambda.io/metrics-job"]
        for s in of_kind(full_manifests, "Service")
    }
    assert jobs == {"kubelambda-gateway", "kubelambda-controller", "kubelambda-dispatcher"}
    alert_jobs = set(re.findall(r'job="([^"]+)"', chart_files.ALERTS.read_text()))
    assert alert_jobs == jobs


def test_dashboard_configmap_carries_the_dashboard(full_manifests: list[Manifest]) -> None:
    (config,) = [
        c
        for c in of_kind(full_manifests, "ConfigMap")
        if c["metadata"]["name"].endswith("-dashboard")
    ]
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config["metadata"]["annotations"] == {"grafana_folder": "Serverless"}
    assert config["data"]["kubelambda.json"] == chart_files.DASHBOARD.read_text().rstrip("\n")


def test_observability_objects_are_off_by_default(default_manifests: list[Manifest]) -> None:
    kinds = {m["kind"] for m in default_manifests}
    assert not {"ServiceMonitor", "PrometheusRule", "ConfigMap"} & kinds


def _fullname(manifests: list[Manifest]) -> str:
    (gateway,) = [
        s for s in of_kind(manifests, "Service") if s["metadata"]["name"].endswith("-gateway")
    ]
    name: str = gateway["metadata"]["name"].removesuffix("-gateway")
    return name
