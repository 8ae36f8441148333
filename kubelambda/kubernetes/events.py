"""Kubernetes Events on kubelambda's resources: what the controller did, for kubectl users.

``instances.KubernetesBackend`` records one when it scales a version's pods or rolls them
to a new package, on the resource the version belongs to (its Function, or its
FunctionVersion), so ``kubectl describe function hello`` and ``kubectl get events`` tell
what happened. Recording is best effort: a refused Event is logged, never raised, since
the action it describes has happened anyway.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from kubernetes_asyncio import client

from kubelambda.kubernetes import rest
from kubelambda.kubernetes.workloads import Owner

__all__ = ["COMPONENT", "event", "record"]

log = logging.getLogger(__name__)

COMPONENT = "kubelambda-controller"


def event(
    owner: Owner, *, namespace: str, reason: str, message: str, now: datetime, warning: bool = False
) -> dict[str, Any]:
    """A core/v1 Event about ``owner`` (a pure builder)."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{owner.name}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": owner.api_version,
            "kind": owner.kind,
            "name": owner.name,
            "namespace": namespace,
            "uid": owner.uid,
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


async def record(api: client.ApiClient, manifest: dict[str, Any]) -> None:
    namespace = manifest["metadata"]["namespace"]
    try:
        await rest.request(
            api, "POST", rest.resource_path("", "v1", "events", namespace=namespace), body=manifest
        )
    except rest.ApiError as exc:
        log.warning(
            "event not recorded reason=%s object=%s error=%s",
            manifest["reason"],
            manifest["involvedObject"]["name"],
            exc,
        )
