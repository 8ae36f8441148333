"""Raw JSON calls to the kube-apiserver: paths in, dicts out, one error type.

The adapters here speak to the apiserver in its own JSON (manifests are dicts built by
``manifests``), so the generated model classes of ``kubernetes_asyncio`` are skipped:
this module sends a request through its ``ApiClient`` (which holds the credentials
and the connection pool) and returns the decoded body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["FIELD_MANAGER", "ApiError", "Kind", "apply", "delete", "request"]

FIELD_MANAGER = "kubelambda"


class ApiError(Exception):
    """The apiserver refused a request (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True, slots=True)
class Kind:
    """Where a namespaced kind lives: ``Kind("apps", "v1", "deployments")``."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        prefix = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        path = f"{prefix}/namespaces/{namespace}/{self.plural}"
        return path if name is None else f"{path}/{name}"


async def request(
    api: ApiClient,
    method: str,
    path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    try:
        result = await api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_types_map={200: "object", 201: "object", 202: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
    except ApiException as exc:
        raise ApiError(exc.status or 0, _reason(exc)) from exc
    except OSError as exc:
        raise ApiError(0, str(exc)) from exc
    return result if isinstance(result, dict) else {}


async def apply(api: ApiClient, kind: Kind, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Server-side apply ``manifest`` as kubelambda's field manager (create or update)."""
    metadata = manifest["metadata"]
    return await request(
        api,
        "PATCH",
        kind.path(metadata["namespace"], metadata["name"]),
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
        body=manifest,
        content_type="application/apply-patch+yaml",
    )


async def delete(api: ApiClient, kind: Kind, namespace: str, name: str) -> bool:
    """Delete in the background (dependents follow); ``False`` if it was gone already."""
    try:
        await request(
            api,
            "DELETE",
            kind.path(namespace, name),
            body={"propagationPolicy": "Background"},
        )
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True


def _reason(exc: ApiException) -> str:
    """The apiserver's own message (a Status object's ``message``) when there is one."""
    raw = exc.body
    body = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw or "")
    if body.startswith("{"):
        try:
            message = json.loads(body).get("message")
        except ValueError:
            message = None
        if isinstance(message, str):
            return message
    return str(exc.reason or body)
