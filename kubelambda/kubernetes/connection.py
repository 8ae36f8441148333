"""One authenticated client of the kube-apiserver, from a kubeconfig or from inside a pod."""

from __future__ import annotations

import os

from kubernetes_asyncio import client, config

__all__ = ["connect"]

ApiClient = client.ApiClient


async def connect(kubeconfig: str | None = None) -> ApiClient:
    """A client for ``kubeconfig`` (a path), else ``$KUBECONFIG`` or ``~/.kube/config``,
    else the pod's service account when running in a cluster. The caller closes it."""
    in_cluster = kubeconfig is None and "KUBERNETES_SERVICE_HOST" in os.environ
    if in_cluster and not os.environ.get("KUBECONFIG"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return await config.new_client_from_config(config_file=kubeconfig)
