"""The chart against the real test apiserver, installing no platform: the rendered
manifests pass a server-side dry run (under the "restricted" pod security warnings);
`helm install --dry-run=server` reuses the credentials a release already has (lookup) and
prints NOTES that say how to reach the platform but never a credential; and the RBAC,
applied in a test namespace, lets each component do its job and nothing more, as
`kubectl auth can-i` answers."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest
import yaml

from kubelambda.kubernetes import crds
from tests import chart_files
from tests.integration.chart.chart_testkit import (
    DEFAULT_VALUES,
    FULL_VALUES,
    RELEASE,
    Helm,
    Manifest,
    named,
)
from tests.integration.kube_fixtures import Kubectl

# The prometheus-operator's kinds: a dry run only knows kinds the apiserver serves, and the
# test cluster has no prometheus-operator. They get a test of their own, which says it is
# skipped when the cluster lacks their group.
MONITORING_GROUP = "monitoring.coreos.com"
MONITORING_KINDS = frozenset({"ServiceMonitor", "PrometheusRule"})


def _restricted(kubectl: Kubectl, namespace: str) -> None:
    """Have the apiserver enforce, and warn about, the "restricted" standard there."""
    labelled = kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )
    assert labelled.returncode == 0, labelled.stderr


def _rendered(helm: Helm, namespace: str, values: str, *more: str) -> list[Manifest]:
    arguments = (
        DEFAULT_VALUES
        if values == "default"
        # Roles go to the listed function namespaces, which must exist: use this one.
        else ("-f", str(FULL_VALUES), "--set", f"functionNamespaces={{{namespace}}}")
    )
    rendered = helm(
        "template", RELEASE, str(chart_files.CHART), "-n", namespace, "--include-crds",
        *arguments, *more,
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def _dry_run(kubectl: Kubectl, namespace: str, documents: list[Manifest]) -> list[str]:
    """`kubectl apply --dry-run=server`: its output lines; fails on any error or warning.
    Server-side apply, as helm 4 applies: the CRDs may exist already (other tests install
    them), and a client-side apply would warn that they lack its last-applied annotation."""
    applied = kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=chart-dry-run",
        "--dry-run=server", "-n", namespace, "-f", "-",
        stdin=yaml.safe_dump_all(documents),
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    # No pod security warning, nor any other.
    assert applied.stderr == ""
    created = applied.stdout.splitlines()
    assert len(created) == len(documents)
    assert all(line.endswith("(server dry run)") for line in created)
    return created


@pytest.mark.parametrize("values", ["default", "full"])
def test_rendered_manifests_pass_a_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, namespace: str, values: str
) -> None:
    _restricted(kubectl, namespace)
    documents = _rendered(helm, namespace, values)
    created = _dry_run(
        kubectl, namespace, [doc for doc in documents if doc["kind"] not in MONITORING_KINDS]
    )
    assert sum("customresourcedefinition" in line for line in created) == len(crds.CRD_FILES)
    assert sum(line.startswith("deployment.apps/") for line in created) == 3


def test_monitoring_objects_pass_a_server_side_dry_run(
    helm: Helm, kubectl: Kubectl, namespace: str
) -> None:
    groups = kubectl("api-versions")
    assert groups.returncode == 0, groups.stderr
    if not any(line.startswith(f"{MONITORING_GROUP}/") for line in groups.stdout.split()):
        pytest.skip(
            f"the test cluster serves no {MONITORING_GROUP} (no prometheus-operator CRDs): "
            f"{sorted(MONITORING_KINDS)} are checked by helm lint and test_chart_render only"
        )
    documents = _rendered(helm, namespace, "full")
    _dry_run(kubectl, namespace, [doc for doc in documents if doc["kind"] in MONITORING_KINDS])


def _install_dry_run(helm: Helm, namespace: str) -> tuple[list[Manifest], str]:
    """`helm install --dry-run=server`: the manifests it would apply, and its NOTES."""
    done: subprocess.CompletedProcess[str] = helm(
        "install", RELEASE, str(chart_files.CHART), "-n", namespace, "--dry-run=server",
        *DEFAULT_VALUES,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest_part, notes = done.stdout.split("\nNOTES:\n", 1)
    manifests = manifest_part.split("\nMANIFEST:\n", 1)[1]
    return [doc for doc in yaml.safe_load_all(manifests) if doc], notes


def _credentials(manifests: list[Manifest]) -> dict[str, str]:
    secret = named(manifests, "Secret", "kl-kubelambda-credentials")
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_install_reuses_the_credentials_the_release_has(
    helm: Helm, kubectl: Kubectl, namespace: str
) -> None:
    # The Secret as a previous revision of the release left it, two keys of four.
    existing = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "kl-kubelambda-credentials",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "Helm"},
            "annotations": {
                "meta.helm.sh/release-name": RELEASE,
                "meta.helm.sh/release-namespace": namespace,
            },
        },
        "stringData": {"access-key-id": "KLAKEXISTING00000001", "api-key": "kl_" + "k" * 43},
    }
    created = kubectl("create", "-f", "-", stdin=yaml.safe_dump(existing))
    assert created.returncode == 0, created.stderr

    credentials = _credentials(_install_dry_run(helm, namespace)[0])

    assert credentials["access-key-id"] == "KLAKEXISTING00000001"
    assert credentials["api-key"] == "kl_" + "k" * 43
    # A key the Secret lacks is generated.
    assert re.fullmatch(r"[0-9a-f]{64}", credentials["instance-key"])
    assert re.fullmatch(r"[A-Za-z0-9]{40}", credentials["secret-access-key"])


def test_notes_say_how_to_reach_the_platform_and_never_print_a_credential(
    helm: Helm, namespace: str
) -> None:
    manifests, notes = _install_dry_run(helm, namespace)
    assert f"kubelambda env --kubernetes -n {namespace}" in notes
    assert f"http://kl-kubelambda-gateway.{namespace}.svc:8080" in notes
    assert f"kubectl -n {namespace} get secret kl-kubelambda-credentials" in notes
    assert "kubectl delete crd functions.kubelambda.io" in notes
    for key, value in _credentials(manifests).items():
        assert value not in notes, key
        assert base64.b64encode(value.encode()).decode() not in notes, key


# (component, verb, resource, allowed) in a function namespace that is also the release
# namespace, as `kubectl auth can-i` answers for the component's ServiceAccount. A resource
# is "<kind>[/<name>][ --subresource=<sub>]".
PERMISSIONS = [
    ("gateway", "create", "functions.kubelambda.io", True),
    ("gateway", "deletecollection", "functionversions.kubelambda.io", True),
    ("gateway", "watch", "pods", True),
    ("gateway", "create", "secrets", True),
    ("gateway", "create", "deployments.apps", False),
    ("gateway", "delete", "pods", False),
    ("gateway", "update", "leases.coordination.k8s.io", False),
    ("controller", "create", "functions.kubelambda.io", False),
    ("controller", "patch", "functions.kubelambda.io --subresource=status", True),
    ("controller", "update", "functionversions.kubelambda.io --subresource=finalizers", True),
    ("gateway", "update", "functions.kubelambda.io --subresource=finalizers", False),
    ("controller", "create", "deployments.apps", True),
    ("controller", "create", "networkpolicies.networking.k8s.io", True),
    ("controller", "create", "rolebindings.rbac.authorization.k8s.io", True),
    ("controller", "escalate", "roles.rbac.authorization.k8s.io", False),
    ("controller", "create", "events", True),
    ("controller", "update", "leases.coordination.k8s.io/kubelambda-controller", True),
    ("controller", "update", "leases.coordination.k8s.io/another-lease", False),
    ("controller", "create", "leases.coordination.k8s.io", False),
    ("controller", "create", "pods", False),
    ("controller", "get", "configmaps", False),
    ("dispatcher", "watch", "functions.kubelambda.io", True),
    ("dispatcher", "update", "functions.kubelambda.io", False),
    ("dispatcher", "get", "secrets", False),
    ("dispatcher", "get", "services/kl-kubelambda-controller", True),
    ("dispatcher", "get", "services/kl-kubelambda-gateway", False),
    ("gateway", "get", "services/kl-kubelambda-controller", True),
    ("controller", "get", "services/kl-kubelambda-gateway", True),
    ("dispatcher", "watch", "pods", True),
]


def _apply_rbac(helm: Helm, kubectl: Kubectl, namespace: str, *values: str) -> None:
    """The chart's ServiceAccounts and Roles, really applied, with this namespace as both
    release and function namespace: namespaced objects only, gone with the namespace."""
    documents = _rendered(
        helm, namespace, "default", "--set", f"functionNamespaces={{{namespace}}}", *values
    )
    rbac = [d for d in documents if d["kind"] in {"ServiceAccount", "Role", "RoleBinding"}]
    assert not [d for d in documents if d["kind"].startswith("Cluster")]
    applied = kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump_all(rbac))
    assert applied.returncode == 0, applied.stderr


def _can(kubectl: Kubectl, namespace: str, component: str, verb: str, resource: str) -> bool:
    account = f"system:serviceaccount:{namespace}:kl-kubelambda-{component}"
    answer = kubectl(
        "auth", "can-i", verb, *resource.split(), "-n", namespace, f"--as={account}"
    )  # fmt: skip
    # A resource the apiserver does not know is answered "no" with a warning: not a check.
    assert answer.stdout.strip() in {"yes", "no"} and not answer.stderr, answer.stderr
    return answer.stdout.strip() == "yes"


@pytest.mark.usefixtures("crds")
def test_each_component_may_do_its_job_and_nothing_more(
    helm: Helm, kubectl: Kubectl, namespace: str
) -> None:
    _apply_rbac(helm, kubectl, namespace)
    answers = {
        (component, verb, resource): _can(kubectl, namespace, component, verb, resource)
        for component, verb, resource, _ in PERMISSIONS
    }
    expected = {
        (component, verb, resource): allowed for component, verb, resource, allowed in PERMISSIONS
    }
    assert answers == expected


@pytest.mark.usefixtures("crds")
def test_function_roles_let_the_controller_grant_what_it_lacks(
    helm: Helm, kubectl: Kubectl, namespace: str
) -> None:
    _apply_rbac(helm, kubectl, namespace, "--set", "controller.allowFunctionRoles=true")
    assert _can(kubectl, namespace, "controller", "escalate", "roles.rbac.authorization.k8s.io")
    assert _can(kubectl, namespace, "controller", "bind", "roles.rbac.authorization.k8s.io")
    assert not _can(kubectl, namespace, "gateway", "escalate", "roles.rbac.authorization.k8s.io")
