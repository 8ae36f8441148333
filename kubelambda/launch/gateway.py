"""Wires a gateway: the invoke path and the management API over the ports it is handed.

Called by ``embedded.run`` (and, in Kubernetes mode, by the gateway process's entry
point with the cluster's adapters). Everything long-lived it creates (the pool to
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
from gateway.metrics import GatewayMetrics
from gateway.services.activator import Activator
from gateway.services.aliases import AliasService
from gateway.services.code_links import CodeLinks
from gateway.services.concurrency import ConcurrencyService
from gateway.services.event_invoke_configs import EventInvokeConfigService
from gateway.services.functions import FunctionService
from gateway.services.invoke_settings import InvokeSettings
from gateway.services.invoker import Invoker
from gateway.services.metered_invoker import MeteredInvoker
from gateway.services.tags import TagService
from kubelambda.credentials import Keyring
from kubelambda.ports.code import CodeStore
from kubelambda.ports.endpoints import EndpointSource
from kubelambda.ports.management import ManagementStore
from kubelambda.ports.signals import ScaleSignals

__all__ = ["build_gateway"]

# How far a SigV4 request's X-Amz-Date may be from our clock (AWS allows 15 minutes).
_MAX_CLOCK_SKEW = timedelta(minutes=15)


async def build_gateway(
    stack: contextlib.AsyncExitStack,
    *,
    store: ManagementStore,
    code: CodeStore,
    endpoints: EndpointSource,
    signals: ScaleSignals,
    reporter: str,
    keyring: Keyring,
    registry: CollectorRegistry,
    region: str,
    runtimes: Collection[str],
    invoke: InvokeSettings,
) -> Gateway:
    """The gateway's ASGI app. ``reporter`` names this gateway in its scale signals
    (unique per replica)."""
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
    )
    stack.callback(activator.close)
    invoker = Invoker(
        activator=activator, endpoints=endpoints, pool=pool, settings=invoke, region=region
    )
    stack.callback(invoker.close)
    invoker.on_catalog(await store.catalog())
    stack.callback(store.subscribe(invoker.on_catalog))
    services = ManagementServices(
        functions=FunctionService(store, code, runtimes=runtimes),
        aliases=AliasService(store),
        concurrency=ConcurrencyService(store),
        event_invoke_configs=EventInvokeConfigService(store),
        tags=TagService(store),
        code_links=CodeLinks(clock=time.time),
        code=code,
        region=region,
    )
    return Gateway(
        management=create_management_app(services),
        invoke_app=InvokeApp(MeteredInvoker(invoker, metrics)),
        authenticator=Authenticator(
            keyring, max_skew=_MAX_CLOCK_SKEW, clock=lambda: datetime.now(UTC)
        ),
        registry=registry,
    )
