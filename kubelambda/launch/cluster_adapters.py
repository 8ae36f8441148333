"""The Kubernetes adapters a platform process opens, the same way in every process.

Called by ``kubernetes.run`` (everything in one process, out of cluster) and by the
in-cluster roles of ``cluster`` (gateway, controller, dispatcher): the store on custom
resources, code packages as Secrets, the pod watch (the invoke path's endpoints), the pod
backend (the controller's instances) and the controller Lease. Each is closed by the
exit stack it is opened on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections.abc import Awaitable, Callable

from kubelambda import credentials, runtimes
from kubelambda.kubernetes import workloads
from kubelambda.kubernetes.code_store import KubernetesCodeStore
from kubelambda.kubernetes.connection import ApiClient, NoCluster, connected
from kubelambda.kubernetes.informer import Informer, Resource
from kubelambda.kubernetes.instances import KubernetesBackend
from kubelambda.kubernetes.leader import LeaderElector
from kubelambda.kubernetes.pod_lifecycle import PodLifecycle
from kubelambda.kubernetes.pods import PodWatch
from kubelambda.kubernetes.store import KubernetesStore
from kubelambda.launch.errors import PlatformStartError
from kubelambda.launch.settings import PlatformSettings
from kubelambda.models import DEFAULT_NAMESPACE
from kubelambda.ports.code import CodeStore
from kubelambda.ports.instances import InstanceEvents

__all__ = [
    "IMAGE_RUNTIMES",
    "LEASE_NAME",
    "bound_to",
    "code_store",
    "connect",
    "open_store",
    "process_identity",
    "start_backend",
    "start_leading",
    "start_pod_watch",
]

LEASE_NAME = "kubelambda-controller"
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
_MANAGED = f"{workloads.LABEL_MANAGED_BY}={workloads.MANAGED_BY}"
# Runtimes the runtime image has (Debian bookworm's python3 and custom bootstraps).
IMAGE_RUNTIMES = ("python3.11", *runtimes.PROVIDED_RUNTIMES)


def process_identity(role: str) -> str:
    """``<role>-<host>-<pid>``: unique per process (a pod's hostname is its name)."""
    return f"{role}-{socket.gethostname()}-{os.getpid()}"


async def connect(stack: contextlib.AsyncExitStack, settings: PlatformSettings) -> ApiClient:
    """The apiserver client for the process's life; no credentials stop the start."""
    try:
        return await stack.enter_async_context(connected(settings.kubeconfig))
    except NoCluster as exc:
        raise PlatformStartError(str(exc)) from exc


def code_store(api: ApiClient, settings: PlatformSettings) -> KubernetesCodeStore:
    """Code packages as Secrets in the platform namespace: every replica sees them."""
    return KubernetesCodeStore(api, namespace=settings.platform_namespace)


async def open_store(
    stack: contextlib.AsyncExitStack,
    api: ApiClient,
    settings: PlatformSettings,
    *,
    imports_inline_code_into: CodeStore | None,
) -> KubernetesStore:
    """The store; the controller's imports hand-written Functions' inline zips into the
    code store (one process does it, not every replica)."""
    return await stack.enter_async_context(
        KubernetesStore.open(
            api,
            region=settings.region,
            namespaces=settings.namespaces or None,
            code_store=imports_inline_code_into,
        )
    )


async def start_pod_watch(
    stack: contextlib.AsyncExitStack,
    api: ApiClient,
    settings: PlatformSettings,
    *,
    store: KubernetesStore,
    instance_key: bytes,
    events: InstanceEvents | None = None,
) -> PodWatch:
    """The pods of functions; ``events`` (the controller's metrics, in the controller's
    process) hears of their starts, readiness and failures."""
    pods = PodWatch(
        _informers(api, PODS, settings.namespaces),
        store,
        key=instance_key,
        lifecycle=PodLifecycle(events) if events is not None else None,
    )
    await pods.start()
    stack.push_async_callback(pods.aclose)
    return pods


async def start_backend(
    stack: contextlib.AsyncExitStack,
    api: ApiClient,
    settings: PlatformSettings,
    *,
    pods: PodWatch,
    store: KubernetesStore,
    code: CodeStore,
    instance_key: bytes,
    code_url: str,
) -> KubernetesBackend:
    backend = KubernetesBackend(
        api,
        pods=pods,
        deployments=_informers(api, DEPLOYMENTS, settings.namespaces),
        owners=store,
        code=code,
        settings=workloads.PodSettings(
            runtime_image=settings.runtime_image,
            code_url=code_url,
            region=settings.region,
            platform_namespace=settings.platform_namespace,
            gateway_cidrs=settings.gateway_cidrs,
        ),
        key=instance_key,
        version_grace_seconds=settings.version_grace_seconds,
    )
    await backend.start()
    stack.push_async_callback(backend.aclose)
    return backend


def start_leading(
    stack: contextlib.AsyncExitStack,
    api: ApiClient,
    settings: PlatformSettings,
    *,
    identity: str,
    lead: Callable[[], Awaitable[None]],
) -> LeaderElector:
    """Run ``lead`` while this process holds the controller Lease, from now until the
    stack closes (which releases the Lease for the next process)."""
    elector = LeaderElector(
        api,
        namespace=settings.platform_namespace,
        name=LEASE_NAME,
        identity=identity,
        lease_seconds=settings.leader_lease_seconds,
        # The elector's default pace (15 s, renewed every 5 s) at any length: a leader that
        # cannot renew gives up its work two thirds into the Lease it last wrote.
        renew_seconds=settings.leader_lease_seconds / 3,
    )
    task = asyncio.create_task(elector.run(lead), name="controller")

    async def cancel() -> None:
        task.cancel()
        await asyncio.wait({task})

    stack.push_async_callback(cancel)
    return elector


def bound_to(keys: credentials.Credentials, namespaces: tuple[str, ...]) -> credentials.Credentials:
    """The admin key manages the first served namespace (``default`` when all are)."""
    namespace = namespaces[0] if namespaces else DEFAULT_NAMESPACE
    principal = dataclasses.replace(keys.principal, namespace=namespace)
    return dataclasses.replace(keys, principal=principal)


def _informers(api: ApiClient, resource: Resource, namespaces: tuple[str, ...]) -> list[Informer]:
    """One informer over all namespaces, or one per served namespace."""
    selected: list[str | None] = list(namespaces) or [None]
    return [
        Informer(api, resource, namespace=namespace, label_selector=_MANAGED)
        for namespace in selected
    ]
