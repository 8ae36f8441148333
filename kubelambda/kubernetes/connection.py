"""One authenticated client of the kube-apiserver, from a kubeconfig or from inside a pod."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from kubernetes_asyncio import client, config

__all__ = ["NoCluster", "connect", "connected"]

# aiohttp finishes closing TLS connections (close_notify) after close() returns; an event
# loop closed before then leaks their sockets. The apiserver answers within milliseconds.
_TLS_SHUTDOWN_SECONDS = 0.1

ApiClient = client.ApiClient


class NoCluster(Exception):
    """No usable cluster credentials: no kubeconfig (or a broken one) and not in a pod."""


async def connect(kubeconfig: str | None = None) -> ApiClient:
    """A client for ``kubeconfig`` (a path), else ``$KUBECONFIG`` or ``~/.kube/config``,
    else the pod's service account when running in a cluster. The caller closes it.
    Raises ``NoCluster`` when none of them is usable."""
    in_cluster = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    try:
        if in_cluster and not os.environ.get("KUBECONFIG"):
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        return await config.new_client_from_config(config_file=kubeconfig)
    except (config.ConfigException, OSError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise NoCluster(f"no usable cluster credentials in {where}: {exc}") from exc


@asynccontextmanager
async def connected(kubeconfig: str | None = None) -> AsyncIterator[ApiClient]:
    """``connect``, closed on exit once its connections are really closed."""
    api = await connect(kubeconfig)
    try:
        yield api
    finally:
        await api.close()
        await asyncio.sleep(_TLS_SHUTDOWN_SECONDS)
