"""Metrics and the function-error log around the Invoke use case.

The HTTP edge (and the async dispatcher) call ``MeteredInvoker.invoke``; it resolves the
request once, so every count carries the version that really ran, then hands it to the
``Invoker`` and records how it ended. Unresolved names never become labels: a 404 is
raised before any metric is touched. Concurrency and the activator's queue are counted
by the activator itself, where slots are taken and given back.
"""

from __future__ import annotations

import logging

from gateway.domain import function_errors, routing
from gateway.domain.invocation import InvokeRequest, InvokeResult
from gateway.metrics import GatewayMetrics, Outcome, TargetMetrics
from gateway.services.invoker import Invoker
from kubelambda import errors
from kubelambda.names import FunctionRef

__all__ = ["MeteredInvoker"]

log = logging.getLogger(__name__)


class MeteredInvoker:
    def __init__(self, invoker: Invoker, metrics: GatewayMetrics) -> None:
        self._invoker = invoker
        self._metrics = metrics

    def resolve(self, ref: FunctionRef) -> routing.Resolved:
        return self._invoker.resolve(ref)

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        resolved = self._invoker.resolve(request.ref)
        target = resolved.target
        bound = self._metrics.target(target)
        try:
            result = await self._invoker.run(resolved, request)
        except errors.TooManyRequests as exc:
            self._metrics.throttled(target.function, exc.reason)
            bound.invoked(Outcome.THROTTLED)
            raise
        except errors.LambdaError:
            bound.invoked(Outcome.FAILED)
            raise
        _record(bound, result, resolved)
        return result


def _record(bound: TargetMetrics, result: InvokeResult, resolved: routing.Resolved) -> None:
    if result.duration_seconds is not None:
        bound.duration_seconds.observe(result.duration_seconds)
    if result.init_duration_seconds is not None:
        bound.init_duration_seconds.observe(result.init_duration_seconds)
    target = resolved.target
    if result.function_error:
        error_type = function_errors.error_type_label(result.payload)
        bound.invoked(Outcome.FUNCTION_ERROR)
        bound.function_error(error_type)
        log.info(
            "function error request_id=%s namespace=%s function=%s version=%s error_type=%s",
            result.request_id,
            target.namespace,
            target.function_name,
            target.version,
            error_type,
        )
    else:
        bound.invoked(Outcome.SUCCESS)
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "invoked request_id=%s namespace=%s function=%s version=%s duration_s=%s init_s=%s",
            result.request_id,
            target.namespace,
            target.function_name,
            target.version,
            result.duration_seconds,
            result.init_duration_seconds,
        )
