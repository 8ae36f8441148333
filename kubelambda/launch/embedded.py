"""The embedded platform: gateway, controller and local instances in one process.

Called by ``kubelambda up``. Picks the embedded adapter for each port (SQLite store,
code on the local disk, local-process instances, the autoscaler itself as the
gateway's scale signals, the event queue in SQLite or on Kafka), hands them to the
controller, dispatcher and gateway builders, serves the gateway with uvicorn, and on
exit stops everything it started, instances included, in reverse order. Before any of
that it makes the home owner-only, locks it (one platform per home, see ``home``) and
reaps the instances a killed earlier run left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry

from controller.backends.local import LocalProcessBackend
from controller.metrics import ControllerMetrics
from gateway.metrics import AsyncMetrics
from gateway.services.invoke_settings import InvokeSettings
from kubelambda import credentials, runtimes
from kubelambda.launch import example, home, queues
from kubelambda.launch.controller import start_controller
from kubelambda.launch.dispatcher import start_dispatcher
from kubelambda.launch.errors import PlatformStartError
from kubelambda.launch.gateway import build_gateway, build_invoke_path
from kubelambda.launch.settings import EmbeddedSettings
from kubelambda.store.code import LocalCodeStore
from kubelambda.store.sqlite import SqliteStore

__all__ = ["run"]

log = logging.getLogger(__name__)

# The only gateway of an embedded platform, as its scale signals name it.
_REPORTER = "embedded"


async def run(settings: EmbeddedSettings, *, deploy_example: bool = False) -> None:
    """Serve until SIGINT/SIGTERM, then stop every instance and close the store."""
    home.make_private(settings.home)
    async with contextlib.AsyncExitStack() as stack:
        stack.enter_context(home.lock(settings.home, url_file=settings.url_file))
        # An earlier run that was killed outright may have left its instances behind,
        # and its URL (holding the lock, we know that run is gone).
        await LocalProcessBackend.reap_leftovers(settings.home)
        settings.url_file.unlink(missing_ok=True)
        keys = credentials.load_or_create(settings.home)
        registry = CollectorRegistry()
        listener = stack.enter_context(contextlib.closing(_bind(settings.host, settings.port)))
        host, port = listener.getsockname()[:2]
        url = f"http://{host}:{port}"
        stack.enter_context(_signals_end_serving_only())
        store = await stack.enter_async_context(
            SqliteStore.open(settings.home, region=settings.region)
        )
        queue = (await stack.enter_async_context(queues.open_queue(settings))).queue
        code = LocalCodeStore(settings.home / "code")
        controller_metrics = ControllerMetrics(registry)
        backend = LocalProcessBackend(
            settings.home, code=code, region=settings.region, metrics=controller_metrics
        )
        stack.push_async_callback(backend.aclose)
        autoscaler = await start_controller(
            stack,
            store=store,
            code=code,
            backend=backend,
            metrics=controller_metrics,
            package_grace_seconds=settings.package_grace_seconds,
        )
        invoker = await build_invoke_path(
            stack,
            catalog=store,
            endpoints=backend,
            signals=autoscaler,
            reporter=_REPORTER,
            registry=registry,
            region=settings.region,
            invoke=InvokeSettings(
                max_waiting_requests=settings.activator_max_waiting,
                max_wait_seconds=settings.activator_max_wait_seconds,
            ),
        )
        async_metrics = AsyncMetrics(registry)
        await start_dispatcher(
            stack,
            queue=queue,
            invoker=invoker,
            catalog=store,
            metrics=async_metrics,
            region=settings.region,
            retry_delays=settings.async_retry_delays,
        )
        app = build_gateway(
            store=store,
            code=code,
            invoker=invoker,
            queue=queue,
            async_metrics=async_metrics,
            keyring=credentials.Keyring([keys]),
            registry=registry,
            region=settings.region,
            runtimes=runtimes.available_runtimes(),
            body_budget=settings.body_budget_bytes,
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
        stack.callback(_remove_url_file, settings.url_file, url)
        log.info("gateway listening url=%s home=%s", url, settings.home)
        if deploy_example:
            await asyncio.to_thread(example.deploy, host, port, keys.api_key)
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


def _remove_url_file(url_file: Path, url: str) -> None:
    # Only our own: the home's lock should make another run's impossible, but a file
    # someone else wrote meanwhile is not ours to delete.
    with contextlib.suppress(FileNotFoundError):
        if url_file.read_text().strip() == url:
            url_file.unlink()


def _bind(host: str, port: int) -> socket.socket:
    # IPPROTO_TCP (not 0) makes asyncio set TCP_NODELAY on accepted connections; without
    # it every keep-alive response waits ~40 ms for the client's delayed ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise PlatformStartError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(another program uses the port? choose another with --port)"
        ) from exc
    listener.listen(1024)
    listener.setblocking(False)
    return listener


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
