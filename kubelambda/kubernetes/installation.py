"""Where a Helm-installed platform answers and with which keys, for ``kubelambda env
--kubernetes``: its gateway Service and its credentials Secret, found by the chart's
labels in the release namespace."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from kubelambda import credentials
from kubelambda.kubernetes import rest
from kubelambda.kubernetes.connection import ApiClient

__all__ = ["Installation", "InstallationNotFound", "find_installation"]

REGION_ANNOTATION = "kubelambda.io/region"
_DEFAULT_REGION = "us-east-1"


class InstallationNotFound(LookupError):
    """No (or more than one) kubelambda release matches; the message says which."""


@dataclass(frozen=True, slots=True)
class Installation:
    endpoint: str
    region: str
    keys: credentials.Credentials = field(repr=False)


async def find_installation(
    api: ApiClient, *, namespace: str, release: str | None = None
) -> Installation:
    service = await _one(api, namespace, "services", "gateway", release)
    secret = await _one(api, namespace, "secrets", "credentials", release)
    data = secret.get("data") or {}
    try:
        keys = credentials.Credentials(
            access_key_id=_decoded(data, "access-key-id"),
            secret_access_key=_decoded(data, "secret-access-key"),
            api_key=_decoded(data, "api-key"),
        )
    except KeyError as exc:
        name = secret["metadata"]["name"]
        raise InstallationNotFound(f"the Secret {namespace}/{name} lacks {exc.args[0]}") from exc
    region = service["metadata"].get("annotations", {}).get(REGION_ANNOTATION, _DEFAULT_REGION)
    return Installation(endpoint=_endpoint(service), region=region, keys=keys)


async def _one(
    api: ApiClient, namespace: str, plural: str, component: str, release: str | None
) -> dict[str, Any]:
    selector = f"app.kubernetes.io/name=kubelambda,app.kubernetes.io/component={component}"
    if release:
        selector += f",app.kubernetes.io/instance={release}"
    path = rest.resource_path("", "v1", plural, namespace=namespace)
    items: list[dict[str, Any]] = (
        await rest.request(api, "GET", path, query=[("labelSelector", selector)])
    ).get("items", [])
    if len(items) != 1:
        found = ", ".join(sorted(i["metadata"]["name"] for i in items)) or "none"
        hint = "" if release else " (name the release with --release)"
        raise InstallationNotFound(
            f"expected one kubelambda {component} {plural[:-1]} in namespace {namespace} "
            f"labelled {selector}, found {found}{hint}"
        )
    return items[0]


def _decoded(data: dict[str, str], key: str) -> str:
    return base64.b64decode(data[key]).decode()


def _endpoint(service: dict[str, Any]) -> str:
    """The load balancer's address when there is one, else the cluster IP (reachable
    from the cluster's nodes and pods)."""
    port = service["spec"]["ports"][0]["port"]
    for ingress in service.get("status", {}).get("loadBalancer", {}).get("ingress") or []:
        host = ingress.get("hostname") or ingress.get("ip")
        if host:
            return f"http://{host}:{port}"
    return f"http://{service['spec']['clusterIP']}:{port}"
