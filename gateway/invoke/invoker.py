"""The Invoke use case: resolve → check → admit → get capacity → proxy → describe.

Called by ``InvokeApp`` once the request is parsed. Everything it reads comes from the
catalog snapshot it was last given (``on_catalog``, fed by the store's watch) and from
in-process state, so no store or API call happens per request. Metrics are recorded
here, where the resolved function and version are known; unresolved names never
become labels.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from gateway.domain import invocation, responses, routing
from gateway.domain.invocation import InvocationType, InvokeOptions
from gateway.domain.responses import AgentResult
from gateway.invoke import proxy
from gateway.invoke.limits import RESERVED_LIMIT_REASON, ReservedConcurrency
from gateway.invoke.settings import InvokeSettings
from gateway.kits.http_pool import ConnectionPool
from gateway.metrics import GatewayMetrics, Outcome, TargetMetrics
from gateway.services.activator import Activator
from kubelambda import errors
from kubelambda.models import Target
from kubelambda.names import FunctionRef
from kubelambda.ports import Catalog, InstanceBackend, ScaleSignals

__all__ = ["InvokeReply", "Invoker"]

log = logging.getLogger(__name__)

_MAX_BUSY_PAUSE_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class InvokeReply:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Invoker:
    def __init__(
        self,
        *,
        backend: InstanceBackend,
        signals: ScaleSignals,
        metrics: GatewayMetrics,
        settings: InvokeSettings,
        pool: ConnectionPool,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._catalog = Catalog()
        self._backend = backend
        self._metrics = metrics
        self._settings = settings
        self._pool = pool
        self._draw = draw
        self._reserved = ReservedConcurrency(retry_after_seconds=settings.retry_after_seconds)
        self._activator = Activator(
            backend=backend,
            signals=signals,
            metrics=metrics,
            max_waiting=settings.max_waiting_requests,
            retry_after_seconds=settings.retry_after_seconds,
        )
        self._addresses: dict[Target, set[tuple[str, int]]] = {}
        self._unsubscribe = backend.subscribe(self._endpoints_changed)

    def on_catalog(self, catalog: Catalog) -> None:
        """Take the store's newest snapshot; requests from now on resolve against it."""
        self._catalog = catalog

    def close(self) -> None:
        self._unsubscribe()
        self._activator.close()

    def _endpoints_changed(self, target: Target) -> None:
        """Drop idle connections to instances that left, so none linger per dead port."""
        current = {(e.host, e.port) for e in self._backend.endpoints(target)}
        for host, port in self._addresses.get(target, set()) - current:
            self._pool.forget(host, port)
        if current:
            self._addresses[target] = current
        else:
            self._addresses.pop(target, None)

    async def invoke(
        self,
        ref: FunctionRef,
        options: InvokeOptions,
        body: bytes,
        *,
        request_id: str,
        trace_id: str | None = None,
    ) -> InvokeReply:
        resolved = routing.resolve(self._catalog, ref, draw=self._draw)
        payload = invocation.check_payload(body)
        if options.invocation_type is InvocationType.DRY_RUN:
            return InvokeReply(204, [(b"x-amzn-requestid", request_id.encode())], b"")
        target = resolved.target
        bound = self._metrics.target(target)
        try:
            self._reserved.admit(target.function_name, resolved.reserved_concurrency)
        except errors.TooManyRequests:
            self._metrics.throttled(target.function_name, RESERVED_LIMIT_REASON)
            bound.invoked(Outcome.THROTTLED)
            raise
        call = proxy.AgentCall(
            request_id=request_id,
            invoked_function_arn=resolved.invoked_function_arn,
            payload=payload,
            client_context=options.client_context,
            trace_id=trace_id,
            tail=options.tail,
            read_timeout=resolved.version.timeout + self._settings.read_timeout_margin_seconds,
        )
        try:
            result = await self._run(target, call, bound)
        except errors.TooManyRequests:
            bound.invoked(Outcome.THROTTLED)
            raise
        except errors.LambdaError as exc:
            bound.invoked(Outcome.FAILED)
            log.warning(
                "invoke failed request_id=%s function=%s version=%s error=%s",
                request_id,
                target.function_name,
                target.version,
                exc.message,
            )
            raise
        finally:
            self._reserved.leave(target.function_name)
        self._record(target, bound, result, request_id)
        headers = responses.invoke_headers(
            result, request_id=request_id, executed_version=target.version, tail=options.tail
        )
        return InvokeReply(200, headers, result.body)

    async def _run(
        self, target: Target, call: proxy.AgentCall, bound: TargetMetrics
    ) -> AgentResult:
        """Send ``call`` to an instance with a free slot; an instance that says it is
        busy ran nothing, so the call moves on to another, or waits and tries again."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.max_wait_seconds
        pause = self._settings.busy_retry_seconds
        busy: set[str] = set()
        concurrent = bound.concurrent
        while True:
            endpoint = await self._activator.acquire(target, deadline=deadline, exclude=busy)
            concurrent.inc()
            try:
                return await proxy.send(self._pool, endpoint, call)
            except proxy.AgentBusy as exc:
                log.debug("instance busy request_id=%s detail=%s", call.request_id, exc)
                busy.add(endpoint.instance_id)
            finally:
                concurrent.dec()
                self._activator.release(endpoint)
            ready = {e.instance_id for e in self._backend.endpoints(target)}
            if ready <= busy:
                # Every instance refused: back off briefly, then try them all again.
                if loop.time() + pause >= deadline:
                    raise self._activator.throttle(target, "every instance stayed busy")
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_BUSY_PAUSE_SECONDS)
                busy.clear()

    def _record(
        self, target: Target, bound: TargetMetrics, result: AgentResult, request_id: str
    ) -> None:
        duration = result.duration_seconds
        if duration is not None:
            bound.duration_seconds.observe(duration)
        init = result.init_duration_seconds
        if init is not None:
            bound.init_duration_seconds.observe(init)
        if result.function_error:
            error_type = responses.error_type_label(result.body)
            bound.invoked(Outcome.FUNCTION_ERROR)
            bound.function_error(error_type)
            log.info(
                "function error request_id=%s function=%s version=%s error_type=%s",
                request_id,
                target.function_name,
                target.version,
                error_type,
            )
        else:
            bound.invoked(Outcome.SUCCESS)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "invoked request_id=%s function=%s version=%s duration_s=%s init_s=%s",
                request_id,
                target.function_name,
                target.version,
                duration,
                init,
            )
