"""A Service URL a process can use, in clusters with DNS and without.

Called at start by the in-cluster roles (``kubelambda.launch.cluster``) for the URLs they
are given as Service names (``http://<service>.<namespace>.svc:<port>``, the Helm chart's
defaults): the controller's, which gateways and dispatchers post signals to, and the
gateway's, which function pods fetch code from. Where the name resolves (every cluster
with DNS) the URL stays as given; where it does not, the Service is read from the
apiserver and its ClusterIP takes the name's place (kube-proxy routes it all the same).
Any other URL is returned unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import urllib.parse

from kubelambda.kubernetes import rest
from kubelambda.kubernetes.connection import ApiClient

__all__ = ["ServiceNotFound", "reachable_url"]

log = logging.getLogger(__name__)

_SERVICE_HOST = re.compile(
    r"^(?P<service>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
    r"\.svc(\.cluster\.local)?\.?$"
)
_RESOLVE_SECONDS = 2.0


class ServiceNotFound(LookupError):
    """The URL names a Service that neither DNS nor the apiserver knows."""


async def reachable_url(api: ApiClient, url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    named = _SERVICE_HOST.match(host)
    if named is None or await _resolves(host):
        return url
    path = rest.resource_path(
        "", "v1", "services", namespace=named["namespace"], name=named["service"]
    )
    try:
        service = await rest.request(api, "GET", path)
    except rest.ApiError as exc:
        raise ServiceNotFound(
            f"{host} does not resolve and the Service {named['namespace']}/{named['service']} "
            f"cannot be read: {exc.status} {exc.message}"
        ) from exc
    address = service.get("spec", {}).get("clusterIP")
    if not address or address == "None":
        raise ServiceNotFound(f"{host} does not resolve and its Service has no ClusterIP")
    netloc = f"{address}:{parsed.port}" if parsed.port else address
    resolved = urllib.parse.urlunsplit(parsed._replace(netloc=netloc))
    log.info("event=service_address_from_api url=%s resolved=%s", url, resolved)
    return resolved


async def _resolves(host: str) -> bool:
    try:
        async with asyncio.timeout(_RESOLVE_SECONDS):
            await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        return False
    return True
