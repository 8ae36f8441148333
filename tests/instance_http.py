"""HTTP to one instance's agent behind the gateway's back, over what it listens on.

Embedded instances listen on an abstract Unix socket (``Endpoint.host`` with
``UNIX_PORT``), pods on a TCP port; the tests that call an agent directly (hostile
callers, a second gateway) reach either through ``instance_client``.
"""

from __future__ import annotations

import httpx

from kubelambda.ports.endpoints import UNIX_PORT, Endpoint


def instance_client(endpoint: Endpoint, *, timeout: float) -> httpx.AsyncClient:
    """A client whose relative URLs (``/invoke``, ``/ready``) reach ``endpoint``'s agent."""
    if endpoint.port == UNIX_PORT:
        return httpx.AsyncClient(
            base_url="http://instance",
            transport=httpx.AsyncHTTPTransport(uds=endpoint.host),
            timeout=timeout,
        )
    return httpx.AsyncClient(base_url=f"http://{endpoint.host}:{endpoint.port}", timeout=timeout)
