"""The gateway side both platforms share: invoke path, dispatcher, gateway app, served.

``embedded.run`` and ``kubernetes.run`` pick different adapters (the store, the
endpoints, the scale signals); from there the request side is wired the same way, here:
the invoke use case over them, the async dispatcher on the same use case, the ASGI
gateway, and uvicorn on the listener, announcing the URL (and deploying the example
function, when asked) once it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Collection
from pathlib import Path

from prometheus_client import CollectorRegistry

from gateway.metrics import AsyncMetrics
from gateway.services.invoke_settings import InvokeSettings
from gateway.services.metered_invoker import MeteredInvoker
from kubelambda import credentials
from kubelambda.launch import example, serving
from kubelambda.launch.dispatcher import start_dispatcher
from kubelambda.launch.gateway import build_gateway, build_invoke_path
from kubelambda.launch.settings import PlatformSettings
from kubelambda.ports.catalog import CatalogSource
from kubelambda.ports.code import CodeStore
from kubelambda.ports.endpoints import EndpointSource, InstanceAnnouncements
from kubelambda.ports.management import ManagementStore
from kubelambda.ports.queue import Queue
from kubelambda.ports.signals import ScaleSignals

__all__ = ["dispatch", "invoke_path", "serve_front"]


async def serve_front(
    stack: contextlib.AsyncExitStack,
    settings: PlatformSettings,
    *,
    listener: socket.socket,
    store: ManagementStore,
    code: CodeStore,
    queue: Queue,
    endpoints: EndpointSource,
    signals: ScaleSignals,
    reporter: str,
    registry: CollectorRegistry,
    keys: credentials.Credentials,
    runtimes: Collection[str],
    deploy_example: bool,
    instance_key: bytes | None = None,
    announcements: InstanceAnnouncements | None = None,
    dispatch_events: bool = True,
    url_file: Path | None = None,
) -> None:
    """Serve until uvicorn stops (SIGINT/SIGTERM). ``keys`` is the admin key set the
    gateway accepts; the example, if asked for, is deployed with its API key. Event
    invocations are dispatched here too unless ``dispatch_events`` is off (in cluster,
    the dispatcher runs in processes of its own); ``url_file`` is recorded once serving."""
    invoker = await invoke_path(
        stack,
        settings,
        catalog=store,
        endpoints=endpoints,
        signals=signals,
        reporter=reporter,
        registry=registry,
    )
    async_metrics = AsyncMetrics(registry)
    if dispatch_events:
        await dispatch(
            stack, settings, queue=queue, invoker=invoker, catalog=store, metrics=async_metrics
        )
    app = build_gateway(
        store=store,
        code=code,
        invoker=invoker,
        queue=queue,
        async_metrics=async_metrics,
        keyring=credentials.Keyring([keys]),
        registry=registry,
        region=settings.region,
        runtimes=runtimes,
        body_budget=settings.body_budget_bytes,
        instance_key=instance_key,
        announcements=announcements,
    )
    host, port = listener.getsockname()[:2]
    url = f"http://{host}:{port}"

    async def announce() -> None:
        if deploy_example:
            await asyncio.to_thread(example.deploy, host, port, keys.api_key)
        serving.print_banner(url, deploy_example=deploy_example)

    await serving.serve(
        app,
        listener,
        url=url,
        url_file=url_file,
        stack=stack,
        announce=announce,
        header_timeout=settings.header_timeout_seconds,
        body_idle_timeout=settings.body_idle_timeout_seconds,
    )


async def invoke_path(
    stack: contextlib.AsyncExitStack,
    settings: PlatformSettings,
    *,
    catalog: CatalogSource,
    endpoints: EndpointSource,
    signals: ScaleSignals,
    reporter: str,
    registry: CollectorRegistry,
) -> MeteredInvoker:
    """The invoke path with the activator's bounds from ``settings`` (a gateway's, or an
    in-cluster dispatcher's own)."""
    return await build_invoke_path(
        stack,
        catalog=catalog,
        endpoints=endpoints,
        signals=signals,
        reporter=reporter,
        registry=registry,
        region=settings.region,
        invoke=InvokeSettings(
            max_waiting_requests=settings.activator_max_waiting,
            max_wait_seconds=settings.activator_max_wait_seconds,
            pack_instances=not settings.kubernetes,
        ),
    )


async def dispatch(
    stack: contextlib.AsyncExitStack,
    settings: PlatformSettings,
    *,
    queue: Queue,
    invoker: MeteredInvoker,
    catalog: CatalogSource,
    metrics: AsyncMetrics,
) -> None:
    """Run Event invocations off ``queue`` with the retry delays and the throttle backoff
    from ``settings``."""
    await start_dispatcher(
        stack,
        queue=queue,
        invoker=invoker,
        catalog=catalog,
        metrics=metrics,
        region=settings.region,
        retry_delays=settings.async_retry_delays,
        throttle_backoff_seconds=settings.async_throttle_backoff_seconds,
    )
