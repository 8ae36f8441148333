"""The platform on a Kubernetes cluster (``kubelambda up --kubernetes``), out of cluster.

Called by ``kubelambda up --kubernetes``, like ``kopf run``: the gateway serves here and
functions run as pods on the cluster in ``$KUBECONFIG`` (or the pod's own account). The
adapters: the store on custom resources (installed at start), code packages as Secrets
in the platform namespace, served to pods by the gateway (``code_url``), pods of a Deployment per
version as instances, a pod watch as the gateway's endpoints. The controller (package
settler and autoscaler) runs only while this process holds the controller Lease, so two
platforms on one cluster never both scale; the gateway serves either way.

Stopping leaves every function pod running: they belong to the cluster, and the next
start (or another replica) takes them over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from prometheus_client import CollectorRegistry

from controller.autoscaler.loop import Autoscaler
from controller.metrics import ControllerMetrics
from kubelambda.kubernetes import crds
from kubelambda.launch import cluster_adapters, front, home, platform_secrets, queues, serving
from kubelambda.launch.controller import start_controller
from kubelambda.launch.errors import PlatformStartError
from kubelambda.launch.settings import PlatformSettings
from kubelambda.models import Target

__all__ = ["run"]


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
        secrets = platform_secrets.from_home(settings.home)
        listener = stack.enter_context(
            contextlib.closing(serving.bind(settings.host, settings.port))
        )
        host, port = listener.getsockname()[:2]
        url = f"http://{host}:{port}"
        code_url = settings.code_url or _reachable_code_url(host, url)
        stack.enter_context(serving.signals_end_serving_only())
        api = await cluster_adapters.connect(stack, settings)
        await crds.install_crds(api)
        code = cluster_adapters.code_store(api, settings)
        store = await cluster_adapters.open_store(
            stack, api, settings, imports_inline_code_into=code
        )
        queue = (
            await stack.enter_async_context(queues.open_queue(settings, home_locked=True))
        ).queue
        registry = CollectorRegistry()
        controller_metrics = ControllerMetrics(registry)
        pods = await cluster_adapters.start_pod_watch(
            stack,
            api,
            settings,
            store=store,
            instance_key=secrets.instance_key,
            events=controller_metrics,
        )
        backend = await cluster_adapters.start_backend(
            stack,
            api,
            settings,
            pods=pods,
            store=store,
            code=code,
            instance_key=secrets.instance_key,
            code_url=code_url,
        )
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

        cluster_adapters.start_leading(
            stack, api, settings, identity=cluster_adapters.process_identity("platform"), lead=lead
        )
        await front.serve_front(
            stack,
            settings,
            listener=listener,
            store=store,
            code=code,
            queue=queue,
            endpoints=pods,
            signals=signals,
            reporter=cluster_adapters.process_identity("gateway"),
            registry=registry,
            keys=cluster_adapters.bound_to(secrets.keys, settings.namespaces),
            runtimes=cluster_adapters.IMAGE_RUNTIMES,
            deploy_example=deploy_example,
            instance_key=secrets.instance_key,
            announcements=pods,
            url_file=settings.url_file,
        )


def _reachable_code_url(host: str, url: str) -> str:
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            raise PlatformStartError(
                f"pods cannot fetch code from {url}: listen on an address the cluster's pods "
                "reach (--host, e.g. the node's bridge address) or set KUBELAMBDA_CODE_URL"
            )
    return url
