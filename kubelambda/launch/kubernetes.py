"""The platform on a Kubernetes cluster (``kubelambda up --kubernetes``), out of cluster.

Called by ``kubelambda up --kubernetes``, like ``kopf run``: the gateway serves here and
functions run as pods on the cluster in ``$KUBECONFIG`` (or the pod's own account). The
adapters: the store on custom resources (installed at start), code packages on this
host's disk and served to pods by the gateway (``code_url``), pods of a Deployment per
version as instances, a pod watch as the gateway's endpoints. The controller (package
settler and autoscaler) runs only while this process holds the controller Lease, so two
platforms on one cluster never both scale; the gateway serves either way.

Stopping leaves every function pod running: they belong to the cluster, and the next
start (or another replica) takes them over.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import os
import socket

from prometheus_client import CollectorRegistry

from controller.autoscaler.loop import Autoscaler
from controller.metrics import ControllerMetrics
from kubelambda import credentials, instance_tokens, runtimes
from kubelambda.kubernetes import crds, workloads
from kubelambda.kubernetes.connection import ApiClient, connected
from kubelambda.kubernetes.informer import Informer, Resource
from kubelambda.kubernetes.instances import KubernetesBackend
from kubelambda.kubernetes.leader import LeaderElector
from kubelambda.kubernetes.pods import PodWatch
from kubelambda.kubernetes.store import KubernetesStore
from kubelambda.launch import front, home, queues, serving
from kubelambda.launch.controller import start_controller
from kubelambda.launch.errors import PlatformStartError
from kubelambda.launch.settings import PlatformSettings
from kubelambda.models import DEFAULT_NAMESPACE, Target
from kubelambda.store.code import LocalCodeStore

__all__ = ["run"]

log = logging.getLogger(__name__)

LEASE_NAME = "kubelambda-controller"
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
_MANAGED = f"{workloads.LABEL_MANAGED_BY}={workloads.MANAGED_BY}"
# Runtimes the runtime image has (Debian bookworm's python3 and custom bootstraps).
IMAGE_RUNTIMES = ("python3.11", *runtimes.PROVIDED_RUNTIMES)


class _LeaderSignals:
    """The gateway's scale signals, handed to the autoscaler while this process leads
    (a poke while another process leads reaches nobody here; see the closing note of
    the Helm issue for reports across processes)."""

    def __init__(self) -> None:
        self.autoscaler: Autoscaler | None = None

    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        if self.autoscaler is not None:
            self.autoscaler.report(reporter, target, in_flight=in_flight, waiting=waiting)

    def poke(self, target: Target) -> None:
        if self.autoscaler is not None:
            self.autoscaler.poke(target)


async def run(settings: PlatformSettings, *, deploy_example: bool = False) -> None:
    """Serve until SIGINT/SIGTERM; function pods keep running after."""
    home.make_private(settings.home)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(home.lock(settings.home, url_file=settings.url_file))
        settings.url_file.unlink(missing_ok=True)
        keys = credentials.load_or_create(settings.home)
        instance_key = instance_tokens.load_or_create_key(settings.home / "instance.key")
        listener = stack.enter_context(
            contextlib.closing(serving.bind(settings.host, settings.port))
        )
        host, port = listener.getsockname()[:2]
        url = f"http://{host}:{port}"
        code_url = settings.code_url or _reachable_code_url(host, url)
        stack.enter_context(serving.signals_end_serving_only())
        api = await stack.enter_async_context(connected(settings.kubeconfig))
        await crds.install_crds(api)
        code = LocalCodeStore(settings.home / "code")
        store = await stack.enter_async_context(
            KubernetesStore.open(
                api,
                region=settings.region,
                namespaces=settings.namespaces or None,
                code_store=code,
            )
        )
        queue = (await stack.enter_async_context(queues.open_queue(settings))).queue
        pods = PodWatch(_informers(api, PODS, settings.namespaces), store, key=instance_key)
        await pods.start()
        stack.push_async_callback(pods.aclose)
        registry = CollectorRegistry()
        controller_metrics = ControllerMetrics(registry)
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
                gateway_cidrs=settings.gateway_cidrs,
            ),
            key=instance_key,
            version_grace_seconds=settings.version_grace_seconds,
        )
        await backend.start()
        stack.push_async_callback(backend.aclose)
        signals = _LeaderSignals()

        async def lead() -> None:
            async with contextlib.AsyncExitStack() as leading:
                signals.autoscaler = await start_controller(
                    leading,
                    store=store,
                    code=code,
                    backend=backend,
                    metrics=controller_metrics,
                    package_grace_seconds=settings.package_grace_seconds,
                )
                leading.callback(setattr, signals, "autoscaler", None)
                await asyncio.Event().wait()

        elector = LeaderElector(
            api,
            namespace=settings.lease_namespace,
            name=LEASE_NAME,
            identity=f"{socket.gethostname()}-{os.getpid()}",
        )
        controller = asyncio.create_task(elector.run(lead), name="controller")
        stack.push_async_callback(_cancel, controller)
        await front.serve_front(
            stack,
            settings,
            listener=listener,
            store=store,
            code=code,
            queue=queue,
            endpoints=pods,
            signals=signals,
            reporter=f"gateway-{socket.gethostname()}-{os.getpid()}",
            registry=registry,
            keys=_bound_to(keys, settings.namespaces),
            runtimes=IMAGE_RUNTIMES,
            deploy_example=deploy_example,
            instance_key=instance_key,
            announcements=pods,
        )


def _bound_to(
    keys: credentials.Credentials, namespaces: tuple[str, ...]
) -> credentials.Credentials:
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


def _reachable_code_url(host: str, url: str) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            raise PlatformStartError(
                f"pods cannot fetch code from {url}: listen on an address the cluster's pods "
                "reach (--host, e.g. the node's bridge address) or set KUBELAMBDA_CODE_URL"
            )
    return url


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.wait({task})
