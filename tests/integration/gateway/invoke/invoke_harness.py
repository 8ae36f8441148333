"""A gateway invoke path served by real uvicorn in front of real runtime-agent processes.

Instances come from the controller's local-process backend. The autoscaler is replaced
by ``PokeScaler``, the least that answers the invoke path's signals (scale up on a
poke, to cover what is in flight and waiting); the real autoscaler is tested with the
controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from invoke_servers import serve_uvicorn
from prometheus_client import CollectorRegistry

from controller.backends.local import LocalProcessBackend
from gateway.invoke.app import InvokeApp
from gateway.invoke.settings import InvokeSettings
from gateway.metrics import GatewayMetrics
from kubelambda.models import Alias, FunctionSettings, FunctionVersion, Target
from kubelambda.ports import Catalog
from tests import factories

HANDLERS = textwrap.dedent(
    """
    import json
    import time


    def echo(event, context):
        return {
            "event": event,
            "request_id": context.aws_request_id,
            "invoked_arn": context.invoked_function_arn,
            "version": context.function_version,
            "client_context": getattr(context.client_context, "custom", None),
        }


    def fail(event, context):
        raise ValueError("bad input")


    def sleep(event, context):
        time.sleep(event.get("seconds", 0))
        return {"slept": event.get("seconds", 0)}


    def chatty(event, context):
        print("hello from the function")
        return "done"
    """
)


@dataclass
class PokeScaler:
    """ScaleSignals for tests: on a poke, scale to cover in-flight plus waiting."""

    backend: LocalProcessBackend
    versions: dict[Target, FunctionVersion]
    concurrency: int = 1
    max_replicas: int = 4
    counts: dict[Target, tuple[int, int]] = field(default_factory=dict)
    pokes: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def report(self, target: Target, *, in_flight: int, waiting: int) -> None:
        self.counts[target] = (in_flight, waiting)

    def poke(self, target: Target) -> None:
        self.pokes += 1
        in_flight, waiting = self.counts.get(target, (0, 1))
        replicas = min(self.max_replicas, math.ceil((in_flight + waiting) / self.concurrency))
        task = asyncio.create_task(
            self.backend.scale(
                self.versions[target], replicas=max(replicas, 1), concurrency=self.concurrency
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@dataclass
class Platform:
    port: int
    app: InvokeApp
    backend: LocalProcessBackend
    scaler: PokeScaler
    registry: CollectorRegistry

    def url(self, function: str) -> str:
        return f"http://127.0.0.1:{self.port}/2015-03-31/functions/{function}/invocations"

    def sample(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def _version(name: str, number: str, code: Path, handler: str, timeout: int = 3) -> FunctionVersion:
    return factories.function_version(
        name,
        number,
        handler=f"app.{handler}",
        code_sha256="sha",
        code_path=str(code),
        revision_id=f"{name}-{number}",
        timeout=timeout,
    )


def build_catalog(code: Path) -> Catalog:
    versions = [
        _version("echo", "$LATEST", code, "echo"),
        _version("echo", "1", code, "echo"),
        _version("fail", "$LATEST", code, "fail"),
        _version("sleep", "$LATEST", code, "sleep", timeout=1),
        _version("chatty", "$LATEST", code, "chatty"),
        _version("capped", "$LATEST", code, "sleep"),
    ]
    return Catalog(
        versions={Target(v.function_name, v.version): v for v in versions},
        aliases={("echo", "live"): Alias("echo", "live", "1", "rev")},
        settings={"capped": FunctionSettings("capped", reserved_concurrency=1)},
    )


@contextlib.asynccontextmanager
async def start_platform(tmp_path: Path) -> AsyncIterator[Platform]:
    """Handlers in ``tmp_path/code``, agent state in ``tmp_path/home``."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text(HANDLERS)
    catalog = build_catalog(code)
    backend = LocalProcessBackend(tmp_path / "home")
    scaler = PokeScaler(backend, dict(catalog.versions))
    registry = CollectorRegistry()
    app = InvokeApp(
        backend=backend,
        signals=scaler,
        metrics=GatewayMetrics(registry),
        settings=InvokeSettings(max_wait_seconds=20.0, max_waiting_requests=50),
        catalog=catalog,
    )
    try:
        async with serve_uvicorn(app) as port:
            yield Platform(port, app, backend, scaler, registry)
    finally:
        await app.aclose()
        await backend.aclose()
