"""Wires the controller's reconcilers over the ports it is handed, and starts them.

Called by ``embedded.run`` with the SQLite store and the local-process backend (and, in
Kubernetes mode, by the controller process's entry point with the cluster's adapters).
The returned autoscaler is also the gateway's ``ScaleSignals`` when both run in one
process. Everything started here stops through the exit stack, in reverse order.
"""

from __future__ import annotations

import contextlib

from controller.autoscaler.loop import Autoscaler
from controller.metrics import ControllerMetrics
from controller.packages.settler import PackageSettler
from kubelambda.ports.code import CodeStore
from kubelambda.ports.control import ControllerStore
from kubelambda.ports.instances import InstanceBackend

__all__ = ["start_controller"]


async def start_controller(
    stack: contextlib.AsyncExitStack,
    *,
    store: ControllerStore,
    code: CodeStore,
    backend: InstanceBackend,
    metrics: ControllerMetrics,
    package_grace_seconds: float,
) -> Autoscaler:
    settler = PackageSettler(
        store, code, backend, grace_seconds=package_grace_seconds, metrics=metrics
    )
    await settler.start()
    stack.push_async_callback(settler.aclose)
    autoscaler = Autoscaler(store, backend, metrics=metrics)
    await autoscaler.start()
    stack.push_async_callback(autoscaler.aclose)
    return autoscaler
