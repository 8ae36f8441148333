"""A real gateway for the management tests: uvicorn on a free port, SQLite in a directory.

The server runs in its own thread and event loop, so the tests drive it with blocking
clients (boto3, the AWS CLI, httpx) exactly as users do. The invoke route is served by a
tiny ASGI app defined here, which echoes what the composition handed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import boto3
import uvicorn
from botocore.config import Config
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from gateway.app import BODY_KEY, PRINCIPAL_KEY, CompositionSettings, create_app
from kubelambda import credentials
from kubelambda.credentials import Credentials, Keyring
from kubelambda.store import SqliteStore

T = TypeVar("T")
ROLE = "arn:aws:iam::123456789012:role/lambda-role"
RUNTIMES = ("python3.11", "provided.al2023", "provided")


async def echo_invoke(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the invoke path: reports the body and principal it was given."""
    principal = scope[PRINCIPAL_KEY]
    body = json.dumps(
        {"path": scope["path"], "size": len(scope[BODY_KEY]), "principal": principal.name}
    ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@dataclass
class RunningGateway:
    url: str
    keys: Credentials
    home: Path
    store: SqliteStore
    loop: asyncio.AbstractEventLoop

    def client(self, **overrides: Any) -> Any:
        """A boto3 Lambda client with the generated keys and no retries."""
        settings = {
            "aws_access_key_id": self.keys.access_key_id,
            "aws_secret_access_key": self.keys.secret_access_key,
        } | overrides
        return boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name="us-east-1",
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
    home: Path, *, runtimes: tuple[str, ...] = RUNTIMES, **settings: Any
) -> Iterator[RunningGateway]:
    """Serve a gateway over ``home`` (store, keys) until the block ends; ``settings`` are
    ``CompositionSettings`` fields."""
    keys = credentials.load_or_create(home)
    created = threading.Event()
    holder: dict[str, Any] = {}

    async def serve() -> None:
        async with SqliteStore.open(home) as store:
            app = create_app(
                store=store,
                keyring=Keyring([keys]),
                invoke_app=echo_invoke,
                registry=CollectorRegistry(),
                runtimes=runtimes,
                settings=CompositionSettings(**settings),
            )
            config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
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
    thread.join(10)
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
