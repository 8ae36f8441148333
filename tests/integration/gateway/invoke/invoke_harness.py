"""A real gateway, built by the launcher's ``build_gateway``, in front of real runtime agents.

The wiring is the embedded platform's: the SQLite store, code on the local disk, the
local-process backend (which is also the gateway's ``EndpointSource``), and the
controller's ``PackageSettler`` to make the test functions Active. Only the autoscaler is
replaced, by ``PokeScaler``: the least that answers the invoke path's signals (scale up
on a poke, to cover what is in flight and waiting), so these tests do not depend on its
windows; the real autoscaler is tested with the controller. The gateway is served by
real uvicorn and authenticates as in production: clients send the generated keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import textwrap
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from invoke_servers import serve_uvicorn
from prometheus_client import CollectorRegistry

from controller.backends.local import LocalProcessBackend
from controller.packages.settler import PackageSettler
from gateway.app import DEFAULT_BODY_BUDGET
from gateway.metrics import AsyncMetrics
from gateway.services.invoke_settings import InvokeSettings
from kubelambda import credentials, runtimes
from kubelambda.credentials import Credentials, Keyring
from kubelambda.launch import serving
from kubelambda.launch.gateway import build_gateway, build_invoke_path
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    Alias,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
    Target,
)
from kubelambda.store import LocalCodeStore, SqliteStore
from kubelambda.store.queue import SqliteQueue
from tests import checkout, factories

HANDLERS = textwrap.dedent(
    """
    import json
    import os
    import time


    def echo(event, context):
        return {
            "event": event,
            "request_id": context.aws_request_id,
            "invoked_arn": context.invoked_function_arn,
            "version": context.function_version,
            "client_context": getattr(context.client_context, "custom", None),
            "region": os.environ.get("AWS_REGION"),
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

# (function, handler, timeout, published): every one runs the code above.
FUNCTIONS = (
    ("echo", "echo", 3, True),
    ("fail", "fail", 3, False),
    ("sleep", "sleep", 1, False),
    ("chatty", "chatty", 3, False),
    ("capped", "sleep", 3, False),
)
REPORTER = "test-gateway"


@dataclass
class PokeScaler:
    """ScaleSignals for tests: on a poke, scale to cover in-flight plus waiting."""

    backend: LocalProcessBackend
    versions: dict[Target, FunctionVersion] = field(default_factory=dict)
    concurrency: int = 1
    max_replicas: int = 4
    counts: dict[Target, tuple[int, int]] = field(default_factory=dict)
    reporters: set[str] = field(default_factory=set)
    pokes: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
        self.reporters.add(reporter)
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
    keys: Credentials
    region: str
    backend: LocalProcessBackend
    scaler: PokeScaler
    registry: CollectorRegistry

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys.api_key}"}

    def invoke_url(self, function: str) -> str:
        return f"{self.url}/2015-03-31/functions/{function}/invocations"

    def sample(self, name: str, **labels: str) -> float:
        """A metric sample of the default namespace (where every test function lives)."""
        labels = {"namespace": DEFAULT_NAMESPACE, **labels}
        return self.registry.get_sample_value(name, labels) or 0.0


def handlers_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLERS)
    return buffer.getvalue()


async def _create_functions(store: SqliteStore, package: CodePackage) -> None:
    """What CreateFunction stores, and the alias and reservation the tests use."""
    for name, handler, timeout, published in FUNCTIONS:
        latest = factories.function_version(
            name,
            handler=f"app.{handler}",
            timeout=timeout,
            code_sha256=package.code_sha256,
            code_size=package.size,
            state=State.PENDING,
            last_update_status=LastUpdateStatus.IN_PROGRESS,
        )
        await store.create_function(
            latest, FunctionSettings(DEFAULT_NAMESPACE, name), publish=published
        )
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "echo", "live", "1", ""))
    await store.put_reserved_concurrency(FunctionKey(DEFAULT_NAMESPACE, "capped"), 1)


async def _until_active(store: SqliteStore) -> dict[Target, FunctionVersion]:
    # The settler reports through the store; its catalog is polled, not awaited.
    async with asyncio.timeout(30):
        while True:
            versions = (await store.catalog()).versions
            if all(v.state is State.ACTIVE for v in versions.values()):
                return dict(versions)
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def start_platform(tmp_path: Path, *, region: str = "us-east-1") -> AsyncIterator[Platform]:
    """State under ``tmp_path/home``; the test functions are Active when this yields."""
    home = tmp_path / "home"
    home.mkdir()
    keys = credentials.generate()
    registry = CollectorRegistry()
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(SqliteStore.open(home, region=region))
        code = LocalCodeStore(home / "code")
        backend = LocalProcessBackend(
            home,
            code=code,
            region=region,
            command=checkout.AGENT_COMMAND,
            zygote_command=checkout.ZYGOTE_COMMAND,
        )
        stack.push_async_callback(backend.aclose)
        settler = PackageSettler(store, code, backend, grace_seconds=3600)
        await settler.start()
        stack.push_async_callback(settler.aclose)
        await _create_functions(store, await code.put(handlers_zip()))
        scaler = PokeScaler(backend, await _until_active(store))
        invoker = await build_invoke_path(
            stack,
            catalog=store,
            endpoints=backend,
            signals=scaler,
            reporter=REPORTER,
            registry=registry,
            region=region,
            invoke=InvokeSettings(max_waiting_requests=50, max_wait_seconds=20.0),
        )
        queue = await stack.enter_async_context(SqliteQueue.open(home))
        app = build_gateway(
            store=store,
            code=code,
            invoker=invoker,
            queue=queue,
            async_metrics=AsyncMetrics(registry),
            keyring=Keyring([keys]),
            registry=registry,
            region=region,
            runtimes=runtimes.available_runtimes(),
            body_budget=DEFAULT_BODY_BUDGET,
        )
        # The production protocol: plain invokes take the direct path, others ASGI.
        protocol = serving.http_protocol(app, header_timeout=10, body_idle_timeout=10)
        port = await stack.enter_async_context(serve_uvicorn(app, lifespan="on", http=protocol))
        yield Platform(port, keys, region, backend, scaler, registry)
