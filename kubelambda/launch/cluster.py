"""The platform's processes inside a cluster, as the Helm chart runs them: one image,
three roles (``kubelambda gateway|controller|dispatcher``).

- **gateway** (any number of replicas): the Lambda and management APIs and the invoke
  path; publishes Event invocations to Kafka; posts its scale signals to the controller.
- **controller** (leader-elected): package settler, autoscaler and pod backend while it
  holds the controller Lease; its HTTP port takes the gateways' and dispatchers' scale
  signals (only the leader is Ready, so only it receives them).
- **dispatcher** (any number of replicas): consumes Kafka and invokes, through the same
  invoke path as a gateway.

Nothing is shared on disk: the store is the cluster's custom resources, code packages
are Secrets in the platform namespace, async events are on Kafka, secrets come from the
chart's Secret (``KUBELAMBDA_SECRETS_DIR``). CRDs are the chart's, not installed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from controller.metrics import ControllerMetrics
from gateway.metrics import AsyncMetrics
from kubelambda.kubernetes import service_address
from kubelambda.kubernetes.connection import ApiClient
from kubelambda.kubernetes.pods import PodWatch
from kubelambda.kubernetes.store import KubernetesStore
from kubelambda.launch import cluster_adapters, front, home, platform_secrets, queues, serving
from kubelambda.launch.controller import start_controller
from kubelambda.launch.errors import PlatformStartError
from kubelambda.launch.ops_app import ops_app
from kubelambda.launch.settings import PlatformSettings
from kubelambda.ports.queue import Queue
from kubelambda.signals.receiver import SignalReceiver
from kubelambda.signals.sender import SignalSender

__all__ = ["run_controller", "run_dispatcher", "run_gateway"]

# How often the leader forgets reporters that stopped posting.
_EXPIRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Process:
    """What every role starts with: its secrets, its bound port, the apiserver."""

    secrets: platform_secrets.PlatformSecrets
    listener: socket.socket
    api: ApiClient


@dataclass(frozen=True, slots=True)
class _Invoking:
    """What the roles that invoke functions (gateway, dispatcher) share."""

    store: KubernetesStore
    queue: Queue
    pods: PodWatch
    reporter: str
    signals: SignalSender


async def run_gateway(settings: PlatformSettings) -> None:
    async with contextlib.AsyncExitStack() as stack:
        process = await _start_process(stack, settings)
        invoking = await _start_invoking(stack, settings, process, role="gateway")
        await front.serve_front(
            stack,
            settings,
            listener=process.listener,
            store=invoking.store,
            code=cluster_adapters.code_store(process.api, settings),
            queue=invoking.queue,
            endpoints=invoking.pods,
            signals=invoking.signals,
            reporter=invoking.reporter,
            registry=CollectorRegistry(),
            keys=cluster_adapters.bound_to(process.secrets.keys, settings.namespaces),
            runtimes=cluster_adapters.IMAGE_RUNTIMES,
            deploy_example=False,
            instance_key=process.secrets.instance_key,
            announcements=invoking.pods,
            dispatch_events=False,
        )


async def run_dispatcher(settings: PlatformSettings) -> None:
    async with contextlib.AsyncExitStack() as stack:
        process = await _start_process(stack, settings)
        invoking = await _start_invoking(stack, settings, process, role="dispatcher")
        registry = CollectorRegistry()
        invoker = await front.invoke_path(
            stack,
            settings,
            catalog=invoking.store,
            endpoints=invoking.pods,
            signals=invoking.signals,
            reporter=invoking.reporter,
            registry=registry,
        )
        await front.dispatch(
            stack,
            settings,
            queue=invoking.queue,
            invoker=invoker,
            catalog=invoking.store,
            metrics=AsyncMetrics(registry),
        )
        app = ops_app(registry=registry, ready=lambda: True)
        await _serve_ops(stack, settings, process.listener, app)


@dataclass(slots=True)
class _Leadership:
    """The signal receiver while this replica leads, ``None`` while it stands by."""

    receiver: SignalReceiver | None = None


async def run_controller(settings: PlatformSettings) -> None:
    async with contextlib.AsyncExitStack() as stack:
        code_url = _required(settings.code_url, "KUBELAMBDA_CODE_URL")
        process = await _start_process(stack, settings)
        secrets, api = process.secrets, process.api
        code = cluster_adapters.code_store(api, settings)
        store = await cluster_adapters.open_store(
            stack, api, settings, imports_inline_code_into=code
        )
        registry = CollectorRegistry()
        metrics = ControllerMetrics(registry)
        pods = await cluster_adapters.start_pod_watch(
            stack, api, settings, store=store, instance_key=secrets.instance_key, events=metrics
        )
        backend = await cluster_adapters.start_backend(
            stack,
            api,
            settings,
            pods=pods,
            store=store,
            code=code,
            instance_key=secrets.instance_key,
            code_url=await _reachable(api, code_url),
        )
        leadership = _Leadership()

        async def lead() -> None:
            async with contextlib.AsyncExitStack() as leading:
                autoscaler = await start_controller(
                    leading,
                    store=store,
                    code=code,
                    backend=backend,
                    metrics=metrics,
                    package_grace_seconds=settings.package_grace_seconds,
                )
                leadership.receiver = receiver = SignalReceiver(autoscaler)
                leading.callback(setattr, leadership, "receiver", None)
                while True:
                    await asyncio.sleep(_EXPIRY_SECONDS)
                    receiver.expire(now=time.monotonic())

        cluster_adapters.start_leading(
            stack,
            api,
            settings,
            identity=cluster_adapters.process_identity("controller"),
            lead=lead,
        )
        app = ops_app(
            registry=registry,
            ready=lambda: leadership.receiver is not None,
            signals=lambda: leadership.receiver,
            instance_key=secrets.instance_key,
        )
        await _serve_ops(stack, settings, process.listener, app)


async def _start_process(stack: contextlib.AsyncExitStack, settings: PlatformSettings) -> _Process:
    secrets = _secrets(settings)
    listener = stack.enter_context(contextlib.closing(serving.bind(settings.host, settings.port)))
    stack.enter_context(serving.signals_end_serving_only())
    api = await cluster_adapters.connect(stack, settings)
    return _Process(secrets, listener, api)


async def _start_invoking(
    stack: contextlib.AsyncExitStack, settings: PlatformSettings, process: _Process, *, role: str
) -> _Invoking:
    """The catalog (importing no inline code: the controller does), Kafka, the pod watch,
    and the scale signals to the controller."""
    controller_url = _required(settings.controller_url, "KUBELAMBDA_CONTROLLER_URL")
    _required(settings.kafka_bootstrap, "KUBELAMBDA_KAFKA_BOOTSTRAP")
    api = process.api
    store = await cluster_adapters.open_store(stack, api, settings, imports_inline_code_into=None)
    queue = (await stack.enter_async_context(queues.open_queue(settings))).queue
    pods = await cluster_adapters.start_pod_watch(
        stack, api, settings, store=store, instance_key=process.secrets.instance_key
    )
    reporter = cluster_adapters.process_identity(role)
    signals = SignalSender(
        await _reachable(api, controller_url), key=process.secrets.instance_key, reporter=reporter
    )
    await signals.start()
    stack.push_async_callback(signals.aclose)
    return _Invoking(store, queue, pods, reporter, signals)


def _secrets(settings: PlatformSettings) -> platform_secrets.PlatformSecrets:
    if settings.secrets_dir is not None:
        return platform_secrets.from_dir(settings.secrets_dir)
    home.make_private(settings.home)
    return platform_secrets.from_home(settings.home)


async def _reachable(api: ApiClient, url: str) -> str:
    """``url``, with a Service name replaced by its ClusterIP where the cluster has no DNS."""
    try:
        return await service_address.reachable_url(api, url)
    except service_address.ServiceNotFound as exc:
        raise PlatformStartError(str(exc)) from exc


def _required(value: str | None, variable: str) -> str:
    if not value:
        raise PlatformStartError(f"{variable} must be set for this role in a cluster")
    return value


async def _serve_ops(
    stack: contextlib.AsyncExitStack,
    settings: PlatformSettings,
    listener: socket.socket,
    app: ASGIApp,
) -> None:
    host, port = listener.getsockname()[:2]

    async def nothing_to_announce() -> None:
        return None

    await serving.serve(
        app,
        listener,
        url=f"http://{host}:{port}",
        url_file=None,
        stack=stack,
        announce=nothing_to_announce,
        header_timeout=settings.header_timeout_seconds,
        body_idle_timeout=settings.body_idle_timeout_seconds,
    )
