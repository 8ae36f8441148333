"""Raw JSON calls to the kube-apiserver through a ``kubernetes_asyncio`` client.

The informer, the store and the CRD installer speak to the apiserver with plain dicts:
the generated models cannot represent custom resources, and deserialising every watched
object into them would cost more than the cache it feeds. ``request`` answers a dict or
raises ``ApiError``; ``stream`` opens a streaming response (a watch) for the caller to
read line by line and close. ``resource_path`` names a resource collection or object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from kubernetes_asyncio import client

__all__ = ["METADATA_ONLY", "ApiError", "request", "resource_path", "status_error", "stream"]

_AUTH = ["BearerToken"]
# Lists answered with each object's metadata only (``PartialObjectMetadataList``): what a
# caller needs to find Secrets by label without downloading their data.
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class ApiError(Exception):
    """The apiserver refused a call: its HTTP status, its ``reason`` (``NotFound``,
    ``Conflict``, ``AlreadyExists``, ``Expired``, ``Invalid``...) and its message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def resource_path(
    group: str,
    version: str,
    plural: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...`` otherwise;
    all namespaces when ``namespace`` is ``None``."""
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    if namespace is not None:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
    return path


async def request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Sequence[tuple[str, str]] = (),
    body: Mapping[str, Any] | None = None,
    content_type: str = "application/json",
    accept: str = "application/json",
    request_timeout: float = 30.0,
) -> dict[str, Any]:
    """One call; the decoded JSON answer. Raises ``ApiError`` on any non-2xx status.
    ``accept`` may ask for another representation (``METADATA_ONLY``)."""
    response = await _call(
        api,
        method,
        path,
        query=query,
        body=body,
        content_type=content_type,
        accept=accept,
        request_timeout=request_timeout,
    )
    async with response:
        text = await response.text()
        if not 200 <= response.status <= 299:
            raise _error(response.status, text)
    answer: dict[str, Any] = json.loads(text) if text else {}
    return answer


async def stream(
    api: client.ApiClient,
    path: str,
    *,
    query: Sequence[tuple[str, str]],
    request_timeout: aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    """Open a streaming GET (a watch); the caller reads ``.content`` and closes it.
    Raises ``ApiError`` when the apiserver refuses it outright."""
    response = await _call(
        api, "GET", path, query=query, body=None, request_timeout=request_timeout
    )
    if not 200 <= response.status <= 299:
        async with response:
            raise _error(response.status, await response.text())
    return response


def status_error(status: Mapping[str, Any]) -> ApiError:
    """The ``ApiError`` a ``Status`` object describes (a watch's ERROR event carries one)."""
    return ApiError(
        int(status.get("code") or 500), str(status.get("reason", "")), str(status.get("message"))
    )


async def _call(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: Sequence[tuple[str, str]],
    body: Mapping[str, Any] | None,
    content_type: str = "application/json",
    accept: str = "application/json",
    request_timeout: float | aiohttp.ClientTimeout,
) -> aiohttp.ClientResponse:
    response: aiohttp.ClientResponse = await api.call_api(
        path,
        method,
        query_params=list(query),
        header_params={"Accept": accept, "Content-Type": content_type},
        body=dict(body) if body is not None else None,
        auth_settings=_AUTH,
        _preload_content=False,
        _request_timeout=request_timeout,
    )
    return response


def _error(status: int, text: str) -> ApiError:
    try:
        decoded = json.loads(text)
    except ValueError:
        return ApiError(status, "", text[:500])
    if isinstance(decoded, dict) and decoded.get("kind") == "Status":
        return ApiError(status, str(decoded.get("reason", "")), str(decoded.get("message", "")))
    return ApiError(status, "", text[:500])
