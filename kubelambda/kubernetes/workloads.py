"""Pure builders of the objects a function runs on: no I/O, table-tested.

``kubelambda.kubernetes.instances`` applies what these return. Per function: a
ServiceAccount (Lambda's execution role; its token is mounted only when the function
asks for one or is granted rules), a Role and RoleBinding for those rules, and a
NetworkPolicy that lets only the gateway reach the function's pods. Per version: a
Secret with the version's two tokens (``kubelambda.instance_tokens``), a Deployment whose
replicas the autoscaler sets, and a headless Service naming the pods.

Every pod runs the runtime agent under the "restricted" pod security standard: non-root,
read-only root filesystem, no privilege escalation, no capabilities, seccomp
RuntimeDefault. The agent's first step fetches the version's package into an emptyDir
and checks its SHA-256 (``kubelambda_agent.fetch_code``), so no image registry is needed
and nothing writes the image.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelambda import instance_environment
from kubelambda.instance_environment import InitializationType
from kubelambda.models import LATEST, FunctionIdentity, FunctionVersion, Target

__all__ = [
    "AGENT_PORT",
    "ANNOTATION_FUNCTION_NAME",
    "ANNOTATION_INSTANCE_CONCURRENCY",
    "ANNOTATION_VERSION",
    "INVOKER_LABEL",
    "LABEL_FUNCTION",
    "LABEL_MANAGED_BY",
    "LABEL_PACKAGE",
    "LABEL_VERSION",
    "MANAGED_BY",
    "Owner",
    "PodSettings",
    "deployment",
    "instance_name",
    "network_policy",
    "package_label",
    "role",
    "role_binding",
    "secret",
    "service",
    "service_account",
    "version_slug",
]

AGENT_PORT = 8080
MANAGED_BY = "kubelambda"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_FUNCTION = "kubelambda.io/function"
LABEL_VERSION = "kubelambda.io/version"
LABEL_PACKAGE = "kubelambda.io/package"
ANNOTATION_FUNCTION_NAME = "kubelambda.io/function-name"
ANNOTATION_VERSION = "kubelambda.io/lambda-version"
ANNOTATION_INSTANCE_CONCURRENCY = "kubelambda.io/instance-concurrency"
ANNOTATION_SPEC_HASH = "kubelambda.io/spec-hash"

# On the platform's gateway and dispatcher pods (the Helm chart sets it).
INVOKER_LABEL = "kubelambda.io/invoker"
INVOKE_TOKEN_KEY = "invoke-token"
CODE_TOKEN_KEY = "code-token"
TASK_ROOT = "/var/task"
RUNTIME_USER = 10001
# Where a pod's agent announces it serves (``kubelambda_agent.protocol.ANNOUNCE_PATH``;
# nothing below the launch package imports the agent).
ANNOUNCE_PATH = "/kubelambda/instances/ready"
# Lambda gives one vCPU at 1,769 MB and CPU in proportion below and above it.
MB_PER_VCPU = 1769
# The agent and the runtime's own interpreter, on top of what the function may use.
AGENT_MEMORY_MIB = 64
# Lambda's default /tmp (ephemeral storage) is 512 MB; a package unpacks to at most 250 MB.
TMP_SIZE = "512Mi"
CODE_SIZE = "256Mi"
# A pod asked to stop gets the function's timeout to finish what it runs, and this more.
DRAIN_GRACE_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Owner:
    """The custom resource an object belongs to; deleting it deletes the object."""

    api_version: str
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True, slots=True)
class PodSettings:
    """Platform-wide values every function pod is built with (from the launch settings)."""

    runtime_image: str
    code_url: str
    region: str
    platform_namespace: str = "default"
    gateway_cidrs: tuple[str, ...] = ()
    image_pull_policy: str = "IfNotPresent"


def version_slug(version: str) -> str:
    """``latest`` or ``v<N>``: the version as it may appear in names and labels."""
    return "latest" if version == LATEST else f"v{version}"


def instance_name(function_object: str, version: str) -> str:
    """The Deployment, Service and Secret of one version. Unique: a slug is ``latest`` or
    ``v<digits>``, which no other function's name and slug can end in together."""
    return f"{function_object}-{version_slug(version)}"


def package_label(sha256_hex: str) -> str:
    """The package a pod runs, as a label value (at most 63 characters: 160 bits here)."""
    return sha256_hex[:40]


def _labels(function_object: str, version: str | None = None) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_FUNCTION: function_object}
    if version is not None:
        labels[LABEL_VERSION] = version_slug(version)
    return labels


def _metadata(name: str, namespace: str, owner: Owner, labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [owner.reference()],
    }


def service_account(
    function_object: str, *, namespace: str, identity: FunctionIdentity, owner: Owner
) -> dict[str, Any]:
    metadata = _metadata(function_object, namespace, owner, _labels(function_object))
    metadata["annotations"] = dict(identity.annotations)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata,
        "automountServiceAccountToken": identity.needs_token,
    }


def role(
    function_object: str, *, namespace: str, identity: FunctionIdentity, owner: Owner
) -> dict[str, Any] | None:
    """The function's own rules in its namespace; ``None`` when it is granted nothing."""
    if not identity.rules:
        return None
    rules = []
    for rule in identity.rules:
        entry: dict[str, Any] = {
            "apiGroups": list(rule.api_groups),
            "resources": list(rule.resources),
            "verbs": list(rule.verbs),
        }
        if rule.resource_names:
            entry["resourceNames"] = list(rule.resource_names)
        rules.append(entry)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(function_object, namespace, owner, _labels(function_object)),
        "rules": rules,
    }


def role_binding(function_object: str, *, namespace: str, owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(function_object, namespace, owner, _labels(function_object)),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": function_object,
        },
        "subjects": [{"kind": "ServiceAccount", "name": function_object, "namespace": namespace}],
    }


def network_policy(
    function_object: str, *, namespace: str, owner: Owner, settings: PodSettings
) -> dict[str, Any]:
    """Only the platform's invokers reach the function's pods: its gateway and dispatcher
    pods (labelled ``INVOKER_LABEL``, in the platform's namespace only: a tenant cannot
    label its way in) or its addresses (``gateway_cidrs``, for a gateway outside the
    cluster)."""
    sources: list[dict[str, Any]] = [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": settings.platform_namespace}
            },
            "podSelector": {"matchLabels": {INVOKER_LABEL: "true"}},
        }
    ]
    sources.extend({"ipBlock": {"cidr": cidr}} for cidr in settings.gateway_cidrs)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(function_object, namespace, owner, _labels(function_object)),
        "spec": {
            "podSelector": {"matchLabels": _labels(function_object)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": sources, "ports": [{"protocol": "TCP", "port": AGENT_PORT}]}],
        },
    }


def secret(
    function_object: str,
    version: FunctionVersion,
    *,
    owner: Owner,
    invoke_token: str,
    code_token: str,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(
            instance_name(function_object, version.version),
            version.namespace,
            owner,
            _labels(function_object, version.version),
        ),
        "type": "Opaque",
        "stringData": {INVOKE_TOKEN_KEY: invoke_token, CODE_TOKEN_KEY: code_token},
    }


def service(function_object: str, version: FunctionVersion, *, owner: Owner) -> dict[str, Any]:
    """Headless: names the version's pods (``kubectl get endpointslices``); the gateway
    watches the pods themselves, which carry the package they run."""
    labels = _labels(function_object, version.version)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            instance_name(function_object, version.version), version.namespace, owner, labels
        ),
        "spec": {
            "clusterIP": "None",
            "selector": labels,
            "ports": [{"name": "invoke", "port": AGENT_PORT, "targetPort": AGENT_PORT}],
        },
    }


def deployment(
    function_object: str,
    version: FunctionVersion,
    *,
    owner: Owner,
    replicas: int,
    concurrency: int,
    identity: FunctionIdentity,
    settings: PodSettings,
    idle_timeout: float,
    initialization_type: InitializationType = InitializationType.ON_DEMAND,
) -> dict[str, Any]:
    """The version's pods. ``replicas`` is the autoscaler's; everything else changes only
    with the version (a ``$LATEST`` update rolls the pods to the new package) or with the
    function's settings (``idle_timeout``: how long a pod of concurrency above one keeps
    a runtime beyond its first that has nothing to do)."""
    name = instance_name(function_object, version.version)
    selector = _labels(function_object, version.version)
    package = version.running_package
    template = {
        "metadata": {
            "labels": {**selector, LABEL_PACKAGE: package_label(package.sha256_hex)},
            "annotations": {
                ANNOTATION_FUNCTION_NAME: version.function_name,
                ANNOTATION_VERSION: version.version,
                ANNOTATION_INSTANCE_CONCURRENCY: str(concurrency),
            },
        },
        "spec": _pod_spec(
            function_object,
            version,
            secret_name=name,
            concurrency=concurrency,
            identity=identity,
            settings=settings,
            idle_timeout=idle_timeout,
            initialization_type=initialization_type,
        ),
    }
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": selector},
        # New pods first: a rolled version never has fewer ready pods than it had.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0},
        },
        "revisionHistoryLimit": 2,
        "template": template,
    }
    metadata = _metadata(name, version.namespace, owner, selector)
    metadata["annotations"] = {ANNOTATION_SPEC_HASH: _digest(template)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def spec_hash(deployment_object: Mapping[str, Any]) -> str | None:
    """The template digest a Deployment was applied with (``None`` if not ours)."""
    annotations = deployment_object.get("metadata", {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_SPEC_HASH)
    return value if isinstance(value, str) else None


def _pod_spec(
    function_object: str,
    version: FunctionVersion,
    *,
    secret_name: str,
    concurrency: int,
    identity: FunctionIdentity,
    settings: PodSettings,
    idle_timeout: float,
    initialization_type: InitializationType,
) -> dict[str, Any]:
    package = version.running_package
    code_url = f"{settings.code_url.rstrip('/')}/kubelambda/code/{package.sha256_hex}.zip"
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_USER,
        "runAsGroup": RUNTIME_USER,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    memory = f"{version.memory_size + AGENT_MEMORY_MIB}Mi"
    cpu = f"{math.ceil(version.memory_size * 1000 / MB_PER_VCPU)}m"
    agent = {
        "name": "agent",
        "image": settings.runtime_image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["python3", "-m", "kubelambda_agent"],
        "env": [
            {"name": "KUBELAMBDA_CODE_URL", "value": code_url},
            {"name": "KUBELAMBDA_CODE_SHA256", "value": package.sha256_hex},
            _secret_variable("KUBELAMBDA_CODE_TOKEN", secret_name, CODE_TOKEN_KEY),
            {"name": "KUBELAMBDA_CODE_DIR", "value": TASK_ROOT},
            *_agent_environment(
                version,
                secret_name=secret_name,
                concurrency=concurrency,
                settings=settings,
                idle_timeout=idle_timeout,
                initialization_type=initialization_type,
            ),
        ],
        "ports": [{"name": "invoke", "containerPort": AGENT_PORT, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/ready", "port": AGENT_PORT},
            "periodSeconds": 1,
            "failureThreshold": 1,
        },
        # CPU in proportion to memory as a request (scheduling share), with no limit so a
        # cold start is not throttled; memory is a hard limit (Lambda's MemorySize).
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        "securityContext": restricted,
        # Its last line (a failed fetch, say) becomes the reason the version cannot start.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "code", "mountPath": TASK_ROOT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "serviceAccountName": function_object,
        "automountServiceAccountToken": identity.needs_token,
        # No variables naming every Service of the namespace in the function's environment.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": version.timeout + DRAIN_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [agent],
        "volumes": [
            {"name": "code", "emptyDir": {"sizeLimit": CODE_SIZE}},
            {"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE}},
        ],
    }


def _agent_environment(
    version: FunctionVersion,
    *,
    secret_name: str,
    concurrency: int,
    settings: PodSettings,
    idle_timeout: float,
    initialization_type: InitializationType,
) -> list[dict[str, Any]]:
    values = instance_environment.function_environment(
        version,
        task_root=TASK_ROOT,
        # The pod's name is the instance id; the kubelet substitutes it below.
        log_stream=f"[{version.version}]$(KUBELAMBDA_POD_NAME)",
        initialization_type=initialization_type,
        concurrency=concurrency,
        region=settings.region,
        runtime_idle_seconds=idle_timeout,
    )
    values["KUBELAMBDA_AGENT_LISTEN"] = f"0.0.0.0:{AGENT_PORT}"
    values["KUBELAMBDA_AGENT_PYTHON"] = "/usr/bin/python3"
    values["KUBELAMBDA_AGENT_ANNOUNCE_URL"] = f"{settings.code_url.rstrip('/')}{ANNOUNCE_PATH}"
    env: list[dict[str, Any]] = [
        _field_variable("KUBELAMBDA_POD_NAME", "metadata.name"),
        _field_variable("KUBELAMBDA_POD_NAMESPACE", "metadata.namespace"),
        _field_variable("KUBELAMBDA_POD_IP", "status.podIP"),
    ]
    env.extend({"name": name, "value": value} for name, value in values.items())
    env.extend(
        {
            "name": reference.name,
            "valueFrom": {
                f"{reference.source}KeyRef": {"name": reference.object_name, "key": reference.key}
            },
        }
        for reference in version.environment_references
    )
    env.append(
        _secret_variable(instance_environment.INVOKE_TOKEN_VARIABLE, secret_name, INVOKE_TOKEN_KEY)
    )
    return env


def _field_variable(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _secret_variable(name: str, secret_name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": key}}}


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def target_of(pod_or_template_metadata: Mapping[str, Any], namespace: str) -> Target | None:
    """The version a pod of ours runs, from the annotations ``deployment`` gives it."""
    annotations = pod_or_template_metadata.get("annotations") or {}
    function_name = annotations.get(ANNOTATION_FUNCTION_NAME)
    version = annotations.get(ANNOTATION_VERSION)
    if not isinstance(function_name, str) or not isinstance(version, str):
        return None
    return Target(namespace, function_name, version)
