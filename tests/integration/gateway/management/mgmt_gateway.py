"""A real gateway for the management tests, wired as the embedded platform wires it.

The launcher's ``build_gateway`` composes the gateway over the SQLite store, code on the
local disk and the local-process backend; the controller's ``PackageSettler`` runs beside
it, so Pending functions become Active (and replaced packages are collected) as in
production. The autoscaler is the gateway's ``ScaleSignals``; its loop runs only with
``autoscale=True`` (tests that invoke), so elsewhere a test may play the controller's
provisioned-concurrency reports without racing it. uvicorn serves the gateway in its own
thread and event loop, so the tests drive it with blocking clients (boto3, the AWS CLI,
httpx) exactly as users do.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import uvicorn
from botocore.config import Config
from prometheus_client import CollectorRegistry

from controller.autoscaler.loop import Autoscaler
from controller.backends.local import LocalProcessBackend
from controller.metrics import ControllerMetrics
from controller.packages.settler import PackageSettler
from gateway.app import DEFAULT_BODY_BUDGET
from gateway.metrics import AsyncMetrics
from gateway.services.invoke_settings import InvokeSettings
from kubelambda import credentials
from kubelambda.credentials import Credentials, Keyring
from kubelambda.launch import serving
from kubelambda.launch.gateway import build_gateway, build_invoke_path
from kubelambda.models import DEFAULT_NAMESPACE, FunctionKey
from kubelambda.store import LocalCodeStore, SqliteStore
from kubelambda.store.queue import SqliteQueue
from tests import checkout

T = TypeVar("T")
ROLE = "arn:aws:iam::123456789012:role/lambda-role"
RUNTIMES = ("python3.11", "provided.al2023", "provided")
REGION = "us-east-1"


def key(name: str, namespace: str = DEFAULT_NAMESPACE) -> FunctionKey:
    return FunctionKey(namespace, name)


@dataclass
class RunningGateway:
    url: str
    keys: Credentials
    home: Path
    store: SqliteStore
    loop: asyncio.AbstractEventLoop

    def client(self, keys: Credentials | None = None, **overrides: Any) -> Any:
        """A boto3 Lambda client with ``keys`` (the generated admin keys by default) and
        no retries."""
        keys = keys or self.keys
        settings = {
            "aws_access_key_id": keys.access_key_id,
            "aws_secret_access_key": keys.secret_access_key,
        } | overrides
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name=REGION,
            config=Config(retries={"max_attempts": 0}, read_timeout=30),
            **settings,
        )

    def run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the server's loop (e.g. the controller's store reports)."""
        future = asyncio.run_coroutine_threadsafe(_call(call), self.loop)
        return future.result(timeout=10)


async def _call(call: Callable[[], Awaitable[T]]) -> T:
    return await call()


@contextlib.contextmanager
def running_gateway(
    home: Path,
    *,
    runtimes: tuple[str, ...] = RUNTIMES,
    package_grace_seconds: float = 3600.0,
    autoscale: bool = False,
    more_keys: Sequence[Credentials] = (),
    instance_key: bytes | None = None,
) -> Iterator[RunningGateway]:
    """Serve a gateway and its controller over ``home`` (store, code, keys) until the
    block ends. ``more_keys`` are accepted besides the admin keys of ``home``;
    ``instance_key`` lets instances fetch code with code tokens (Kubernetes mode)."""
    keys = credentials.load_or_create(home)
    created = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        registry = CollectorRegistry()
        async with contextlib.AsyncExitStack() as stack:
            store = await stack.enter_async_context(SqliteStore.open(home, region=REGION))
            code = LocalCodeStore(home / "code")
            controller_metrics = ControllerMetrics(registry)
            backend = LocalProcessBackend(
                home,
                code=code,
                region=REGION,
                metrics=controller_metrics,
                command=checkout.AGENT_COMMAND,
                zygote_command=checkout.ZYGOTE_COMMAND,
            )
            stack.push_async_callback(backend.aclose)
            stack.callback(backend.follow(store))
            settler = PackageSettler(store, code, backend, grace_seconds=package_grace_seconds)
            await settler.start()
            stack.push_async_callback(settler.aclose)
            autoscaler = Autoscaler(store, backend, metrics=controller_metrics)
            if autoscale:
                await autoscaler.start()
                stack.push_async_callback(autoscaler.aclose)
            invoker = await build_invoke_path(
                stack,
                catalog=store,
                endpoints=backend,
                signals=autoscaler,
                reporter="test-gateway",
                registry=registry,
                region=REGION,
                invoke=InvokeSettings(max_waiting_requests=50, max_wait_seconds=20.0),
            )
            queue = await stack.enter_async_context(SqliteQueue.open(home))
            app = build_gateway(
                store=store,
                code=code,
                invoker=invoker,
                queue=queue,
                async_metrics=AsyncMetrics(registry),
                keyring=Keyring([keys, *more_keys]),
                registry=registry,
                region=REGION,
                runtimes=runtimes,
                body_budget=DEFAULT_BODY_BUDGET,
                instance_key=instance_key,
            )
            protocol = serving.http_protocol(app, header_timeout=10, body_idle_timeout=10)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=0, log_level="warning", http=protocol
            )
            server = uvicorn.Server(config)
            holder.update(server=server, store=store, loop=asyncio.get_running_loop())
            created.set()
            await server.serve()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert created.wait(10), "the gateway could not be created"
    server = holder["server"]
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield RunningGateway(
        url=f"http://127.0.0.1:{port}",
        keys=keys,
        home=home,
        store=holder["store"],
        loop=holder["loop"],
    )
    server.should_exit = True
    thread.join(30)
    assert not thread.is_alive(), "the gateway did not stop"


def make_zip(files: dict[str, str] | None = None, *, executable: tuple[str, ...] = ()) -> bytes:
    """A deployment package; names in ``executable`` get mode 0755."""
    files = files or {"app.py": "def handler(event, context):\n    return event\n"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name in executable else 0o644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def slow_zip() -> bytes:
    """A package that takes a good second to unpack (thousands of files), which keeps a
    create Pending or an update InProgress long enough to collide with."""
    files = {f"data/{i % 50}/f{i}.txt": "x" for i in range(3000)}
    return make_zip({"app.py": "def handler(event, context):\n    return 1\n", **files})


def create(client: Any, name: str = "f", *, wait: bool = True, **overrides: Any) -> Any:
    """CreateFunction with sensible defaults; waits for Active unless told not to."""
    params = {
        "FunctionName": name,
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": make_zip()},
    } | overrides
    created = client.create_function(**params)
    if wait:
        client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
        )
    return created
