"""Writing the objects kubelambda owns: server-side apply and delete, by ``Resource``.

The controller's backend (``instances``) applies what ``workloads`` builds as the
``kubelambda`` field manager, so repeated applies of the same manifest change nothing
and fields other managers own (a user's label, say) are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client

from kubelambda.kubernetes import rest
from kubelambda.kubernetes.informer import Resource

__all__ = ["FIELD_MANAGER", "apply", "delete"]

FIELD_MANAGER = "kubelambda"


async def apply(
    api: client.ApiClient, resource: Resource, manifest: Mapping[str, Any]
) -> dict[str, Any]:
    """Create or update ``manifest`` (server-side apply; conflicts are forced, since
    these objects are ours)."""
    metadata = manifest["metadata"]
    path = rest.resource_path(
        resource.group,
        resource.version,
        resource.plural,
        namespace=metadata["namespace"],
        name=metadata["name"],
    )
    return await rest.request(
        api,
        "PATCH",
        path,
        query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
        body=manifest,
        content_type="application/apply-patch+yaml",
    )


async def delete(api: client.ApiClient, resource: Resource, namespace: str, name: str) -> bool:
    """Delete in the background (dependents follow); ``False`` if it was gone already."""
    path = rest.resource_path(
        resource.group, resource.version, resource.plural, namespace=namespace, name=name
    )
    try:
        await rest.request(api, "DELETE", path, body={"propagationPolicy": "Background"})
    except rest.ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True
