"""The Invoke use case, transport-free: resolve → admit → get capacity → run on an agent.

Used by the HTTP invoke edge (``gateway.invoke``) now and by the async dispatcher next,
through ``MeteredInvoker`` which records the outcome. It takes an ``InvokeRequest`` and
gives an ``InvokeResult``, or raises a ``kubelambda.errors.LambdaError``; it knows no
HTTP headers. Everything it reads comes from the catalog snapshot it was last given
(``on_catalog``, fed by the store's watch) and from in-process state, so no store or
API call happens per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from gateway.domain import routing
from gateway.domain.invocation import InvokeRequest, InvokeResult
from gateway.domain.limits import ReservedConcurrency
from gateway.kits import agent_client
from gateway.kits.http_pool import ConnectionPool
from gateway.services.activator import Activator
from gateway.services.invoke_settings import InvokeSettings
from kubelambda import errors
from kubelambda.models import Target
from kubelambda.names import FunctionRef
from kubelambda.ports.catalog import Catalog
from kubelambda.ports.endpoints import EndpointSource

__all__ = ["Invoker"]

log = logging.getLogger(__name__)

_MAX_BUSY_PAUSE_SECONDS = 0.5


class Invoker:
    """Runs invocations on ready instances. ``close`` at shutdown (the launcher closes
    the pool it passed in)."""

    def __init__(
        self,
        *,
        activator: Activator,
        endpoints: EndpointSource,
        pool: ConnectionPool,
        settings: InvokeSettings,
        region: str,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._catalog = Catalog()
        self._activator = activator
        self._endpoints = endpoints
        self._pool = pool
        self._settings = settings
        self._region = region
        self._draw = draw
        self._reserved = ReservedConcurrency(retry_after_seconds=settings.retry_after_seconds)
        self._addresses: dict[Target, set[tuple[str, int]]] = {}
        self._unsubscribe = endpoints.subscribe(self._endpoints_changed)

    def on_catalog(self, catalog: Catalog) -> None:
        """Take the store's newest snapshot; requests from now on resolve against it."""
        self._catalog = catalog

    def close(self) -> None:
        self._unsubscribe()

    def resolve(self, ref: FunctionRef) -> routing.Resolved:
        """The version ``ref`` runs on (alias weights drawn now), or Lambda's 404/409."""
        return routing.resolve(self._catalog, ref, region=self._region, draw=self._draw)

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        return await self.run(self.resolve(request.ref), request)

    async def run(self, resolved: routing.Resolved, request: InvokeRequest) -> InvokeResult:
        """Run ``request`` on the version it resolved to."""
        target = resolved.target
        self._reserved.admit(target.function, resolved.reserved_concurrency)
        call = agent_client.AgentCall(
            request_id=request.request_id,
            invoked_function_arn=resolved.invoked_function_arn,
            payload=request.payload,
            client_context=request.client_context,
            trace_id=request.trace_id,
            tail=request.tail,
            read_timeout=resolved.version.timeout + self._settings.read_timeout_margin_seconds,
        )
        try:
            outcome = await self._run(target, call)
        except errors.LambdaError as exc:
            if not isinstance(exc, errors.TooManyRequests):
                log.warning(
                    "invoke failed request_id=%s namespace=%s function=%s version=%s error=%s",
                    request.request_id,
                    target.namespace,
                    target.function_name,
                    target.version,
                    exc.message,
                )
            raise
        finally:
            self._reserved.leave(target.function)
        return InvokeResult(
            request_id=request.request_id,
            executed_version=target.version,
            payload=outcome.body,
            function_error=outcome.function_error,
            log_result=outcome.log_result,
            duration_seconds=outcome.duration_seconds,
            init_duration_seconds=outcome.init_duration_seconds,
        )

    def _endpoints_changed(self, target: Target) -> None:
        """Drop idle connections to instances that left, so none linger per dead port."""
        current = {(e.host, e.port) for e in self._endpoints.endpoints(target)}
        for host, port in self._addresses.get(target, set()) - current:
            self._pool.forget(host, port)
        if current:
            self._addresses[target] = current
        else:
            self._addresses.pop(target, None)

    async def _run(self, target: Target, call: agent_client.AgentCall) -> agent_client.AgentOutcome:
        """Send ``call`` to an instance with a free slot; an instance that says it is
        busy ran nothing, so the call moves on to another, or waits and tries again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.max_wait_seconds
        pause = self._settings.busy_retry_seconds
        busy: set[str] = set()
        while True:
            endpoint = await self._activator.acquire(target, deadline=deadline, exclude=busy)
            try:
                return await agent_client.send(self._pool, endpoint, call)
            except agent_client.AgentBusy as exc:
                log.debug("instance busy request_id=%s detail=%s", call.request_id, exc)
                busy.add(endpoint.instance_id)
            finally:
                self._activator.release(endpoint)
            ready = {e.instance_id for e in self._endpoints.endpoints(target)}
            if ready <= busy:
                # Every instance refused: back off briefly, then try them all again.
                if loop.time() + pause >= deadline:
                    raise self._activator.throttle(target, "every instance stayed busy")
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_BUSY_PAUSE_SECONDS)
                busy.clear()
