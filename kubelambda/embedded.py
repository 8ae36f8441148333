"""The embedded platform: gateway, autoscaler and local instances in one process.

Called by ``kubelambda up``. Picks the embedded adapters for each port (SQLite store,
local-process instance backend), wires the store's watch into the invoke path and the
autoscaler, serves the gateway with uvicorn, and on exit stops everything it started,
instances included, in reverse order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import importlib.resources
import io
import json
import logging
import signal
import socket
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry

from controller.autoscaler.loop import Autoscaler
from controller.backends.local import LocalProcessBackend
from controller.metrics import ControllerMetrics
from gateway.app import CompositionSettings, create_app
from gateway.invoke.app import InvokeApp
from gateway.invoke.settings import InvokeSettings
from gateway.metrics import GatewayMetrics
from kubelambda import credentials, runtimes
from kubelambda.settings import EmbeddedSettings
from kubelambda.store.sqlite import SqliteStore

__all__ = ["run"]

log = logging.getLogger(__name__)

EXAMPLE_NAME = "hello"
EXAMPLES_PACKAGE = "kubelambda.examples"  # the repository's examples/, as package data


async def run(settings: EmbeddedSettings, *, deploy_example: bool = False) -> None:
    """Serve until SIGINT/SIGTERM, then stop every instance and close the store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    keys = credentials.load_or_create(settings.home)
    registry = CollectorRegistry()
    listener = _bind(settings.host, settings.port)
    host, port = listener.getsockname()[:2]
    url = f"http://{host}:{port}"

    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(_signals_end_serving_only())
        store = await stack.enter_async_context(SqliteStore.open(settings.home))
        controller_metrics = ControllerMetrics(registry)
        backend = LocalProcessBackend(
            settings.home, region=settings.region, metrics=controller_metrics
        )
        stack.push_async_callback(backend.aclose)
        autoscaler = Autoscaler(store, backend, metrics=controller_metrics)
        invoke_app = InvokeApp(
            backend=backend,
            signals=autoscaler,
            metrics=GatewayMetrics(registry),
            settings=InvokeSettings(
                max_waiting_requests=settings.activator_max_waiting,
                max_wait_seconds=settings.activator_max_wait_seconds,
            ),
            catalog=await store.catalog(),
        )
        stack.push_async_callback(invoke_app.aclose)
        stack.callback(store.subscribe(invoke_app.on_catalog))
        await autoscaler.start()
        stack.push_async_callback(autoscaler.aclose)

        app = create_app(
            store=store,
            keyring=credentials.Keyring([keys]),
            invoke_app=invoke_app,
            registry=registry,
            runtimes=runtimes.available_runtimes(),
            settings=CompositionSettings(region=settings.region),
        )
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                http="httptools",
                lifespan="on",
                timeout_graceful_shutdown=30,
                proxy_headers=False,
                server_header=False,
                date_header=False,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        # uvicorn exposes readiness only as a flag, so it is polled (for milliseconds).
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if serving.done():
            await serving  # raises the reason it could not start
            return
        settings.url_file.write_text(url + "\n")
        stack.callback(settings.url_file.unlink, missing_ok=True)
        log.info("gateway listening url=%s home=%s", url, settings.home)
        if deploy_example:
            await asyncio.to_thread(_deploy_example, host, port, keys.api_key)
        _print_banner(url, deploy_example=deploy_example)
        await serving


@contextlib.contextmanager
def _signals_end_serving_only() -> Iterator[None]:
    """uvicorn re-raises the SIGINT/SIGTERM that stopped it once it has shut down; with
    the default handlers that would kill us before the instances are stopped. Under these
    handlers the re-raised signal is only noted, and the shutdown runs to its end."""

    def note(signum: int, _frame: FrameType | None) -> None:
        log.info("shutting down signal=%s", signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP (not 0) makes asyncio set TCP_NODELAY on accepted connections; without
    # it every keep-alive response waits ~40 ms for the client's delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    return listener


def _deploy_example(host: str, port: int, api_key: str) -> None:
    """Create (or refresh) the example through the public API, as any client would."""
    example = importlib.resources.files(EXAMPLES_PACKAGE) / EXAMPLE_NAME
    with importlib.resources.as_file(example) as directory:
        code = _zip_directory(directory)
    body = {
        "FunctionName": EXAMPLE_NAME,
        "Runtime": "python3.11",
        "Role": "arn:aws:iam::000000000000:role/kubelambda-example",
        "Handler": "app.handler",
        "Code": {"ZipFile": code},
        "Description": "The example function of `make run`",
    }
    status, answer = _api(host, port, api_key, "POST", "/2015-03-31/functions", body)
    if status == 409:
        path = f"/2015-03-31/functions/{EXAMPLE_NAME}/code"
        status, answer = _api(host, port, api_key, "PUT", path, {"ZipFile": code})
    if status not in (200, 201):
        raise RuntimeError(f"could not deploy the example function: {status} {answer}")
    log.info("example deployed function=%s", EXAMPLE_NAME)


def _api(
    host: str, port: int, api_key: str, method: str, path: str, body: Mapping[str, object]
) -> tuple[int, str]:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(
            method,
            path,
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def _zip_directory(directory: Path) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*.py")):
            archive.write(path, path.relative_to(directory).as_posix())
    return base64.b64encode(buffer.getvalue()).decode()


def _print_banner(url: str, *, deploy_example: bool) -> None:
    lines = [
        f"kubelambda is up at {url}",
        'Connect a shell: eval "$(.venv/bin/kubelambda env)"',
    ]
    if deploy_example:
        lines += [
            "Invoke the example function 'hello':",
            '  aws lambda invoke --function-name hello --payload \'{"name":"you"}\' out.json'
            "   # AWS CLI v2: add --cli-binary-format raw-in-base64-out",
            f'  curl -s -H "Authorization: Bearer $KUBELAMBDA_API_KEY" -d \'{{"name":"you"}}\' '
            f"{url}/2015-03-31/functions/hello/invocations",
            '  python -c \'import boto3, json; r = boto3.client("lambda").invoke('
            'FunctionName="hello", Payload=b"{}"); print(json.load(r["Payload"]))\'',
        ]
    lines.append("Stop with Ctrl-C.")
    print("\n".join(lines), flush=True)
