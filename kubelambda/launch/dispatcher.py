"""Wires and starts the asynchronous dispatcher over a queue and an invoke path.

Called by ``embedded.run`` with the same invoke path as the gateway (and, in Kubernetes
mode, by the dispatcher process's entry point). The dispatcher follows the catalog
watch for event invoke configs and dead-letter configs; the exit stack cancels it,
which leaves running deliveries uncommitted (delivered again at the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from gateway.dispatch.dispatcher import Dispatcher
from gateway.domain.retries import RetrySchedule
from gateway.metrics import AsyncMetrics
from gateway.services.metered_invoker import MeteredInvoker
from kubelambda.ports.catalog import CatalogSource
from kubelambda.ports.queue import Queue

__all__ = ["start_dispatcher"]


async def start_dispatcher(
    stack: contextlib.AsyncExitStack,
    *,
    queue: Queue,
    invoker: MeteredInvoker,
    catalog: CatalogSource,
    metrics: AsyncMetrics,
    region: str,
    retry_delays: Sequence[float],
    throttle_backoff_seconds: float,
) -> Dispatcher:
    dispatcher = Dispatcher(
        queue=queue,
        invoker=invoker,
        metrics=metrics,
        schedule=RetrySchedule(
            function_error_delays=tuple(retry_delays), backoff_first=throttle_backoff_seconds
        ),
        region=region,
    )
    dispatcher.on_catalog(await catalog.catalog())
    stack.callback(catalog.subscribe(dispatcher.on_catalog))
    task = asyncio.create_task(dispatcher.run(), name="dispatcher")

    async def stop() -> None:
        task.cancel()
        # wait, not await: the task's own cancellation is expected, ours must still reach us.
        await asyncio.wait({task})

    stack.push_async_callback(stop)
    return dispatcher
