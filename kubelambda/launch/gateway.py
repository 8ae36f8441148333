"""Wires a gateway: the invoke path, and the HTTP app over it and the management API.

Called by ``embedded.run`` (and, in Kubernetes mode, by the gateway and dispatcher
processes' entry points with the cluster's adapters). ``build_invoke_path`` is shared
by the gateway and the async dispatcher, so both go through one activator and one
reserved-concurrency count per process. Everything long-lived it creates (the pool to
instances, the activator, the invoker's watch) is closed by the exit stack it is given,
in reverse order of creation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from gateway.api import ManagementServices, create_management_app
from gateway.app import Gateway
from gateway.auth import Authenticator
from gateway.invoke.app import InvokeApp
from gateway.kits.http_pool import ConnectionPool
from gateway.metrics import AsyncMetrics, GatewayMetrics
from gateway.services.activator import Activator
from gateway.services.aliases import AliasService
from gateway.services.balancer import least_loaded, most_loaded
from gateway.services.code_links import CodeLinks
from gateway.services.concurrency import ConcurrencyService
from gateway.services.event_invoke_configs import EventInvokeConfigService
from gateway.services.event_producer import EventProducer
from gateway.services.functions import FunctionService
from gateway.services.invoke_settings import InvokeSettings
from gateway.services.invoker import Invoker
from gateway.services.metered_invoker import MeteredInvoker
from gateway.services.tags import TagService
from kubelambda.credentials import Keyring
from kubelambda.ports.catalog import CatalogSource
from kubelambda.ports.code import CodeStore
from kubelambda.ports.endpoints import EndpointSource, InstanceAnnouncements
from kubelambda.ports.management import ManagementStore
from kubelambda.ports.queue import Queue
from kubelambda.ports.signals import ScaleSignals

__all__ = ["build_gateway", "build_invoke_path"]

# How far a SigV4 request's X-Amz-Date may be from our clock (AWS allows 15 minutes).
_MAX_CLOCK_SKEW = timedelta(minutes=15)


async def build_invoke_path(
    stack: contextlib.AsyncExitStack,
    *,
    catalog: CatalogSource,
    endpoints: EndpointSource,
    signals: ScaleSignals,
    reporter: str,
    registry: CollectorRegistry,
    region: str,
    invoke: InvokeSettings,
) -> MeteredInvoker:
    """The invoke use case over the ports (what the gateway's invoke edge and the async
    dispatcher call). ``reporter`` names this process in its scale signals (unique per
    gateway replica)."""
    metrics = GatewayMetrics(registry)
    pool = ConnectionPool(
        max_idle_per_endpoint=invoke.max_idle_connections_per_instance,
        idle_ttl=invoke.idle_connection_ttl_seconds,
        connect_timeout=invoke.connect_timeout_seconds,
    )
    stack.push_async_callback(pool.aclose)
    activator = Activator(
        endpoints=endpoints,
        signals=signals,
        reporter=reporter,
        metrics=metrics,
        max_waiting=invoke.max_waiting_requests,
        retry_after_seconds=invoke.retry_after_seconds,
        choose=most_loaded if invoke.pack_instances else least_loaded,
    )
    stack.callback(activator.close)
    invoker = Invoker(
        activator=activator, endpoints=endpoints, pool=pool, settings=invoke, region=region
    )
    stack.callback(invoker.close)
    invoker.on_catalog(await catalog.catalog())
    stack.callback(catalog.subscribe(invoker.on_catalog))
    stack.callback(catalog.subscribe(lambda snapshot: metrics.retain(snapshot.versions.keys())))
    return MeteredInvoker(invoker, metrics)


def build_gateway(
    *,
    store: ManagementStore,
    code: CodeStore,
    invoker: MeteredInvoker,
    queue: Queue,
    async_metrics: AsyncMetrics,
    keyring: Keyring,
    registry: CollectorRegistry,
    region: str,
    runtimes: Collection[str],
    body_budget: int,
    instance_key: bytes | None = None,
    announcements: InstanceAnnouncements | None = None,
) -> Gateway:
    """The gateway's ASGI app: the invoke edge over ``invoker`` (and ``queue`` for Event
    invocations) and the management API over ``store`` and ``code``. In Kubernetes mode
    pods fetch their packages with code tokens derived from ``instance_key`` and announce
    that they serve to ``announcements``."""
    services = ManagementServices(
        functions=FunctionService(store, code, runtimes=runtimes),
        aliases=AliasService(store),
        concurrency=ConcurrencyService(store),
        event_invoke_configs=EventInvokeConfigService(store),
        tags=TagService(store),
        code_links=CodeLinks(clock=time.time, instance_key=instance_key),
        code=code,
        region=region,
    )
    producer = EventProducer(queue=queue, invoker=invoker, metrics=async_metrics)
    return Gateway(
        management=create_management_app(services),
        invoke_app=InvokeApp(invoker, producer),
        authenticator=Authenticator(
            keyring, max_skew=_MAX_CLOCK_SKEW, clock=lambda: datetime.now(UTC)
        ),
        registry=registry,
        body_budget=body_budget,
        announcements=announcements,
    )
