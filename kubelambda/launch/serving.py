"""Serving the gateway: the listening socket, uvicorn, the URL file and the banner.

Shared by both platforms (``embedded.run`` and ``kubernetes.run``): whatever adapters
sit behind the gateway, it is served the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.app import Gateway
from kubelambda.launch import invoke_edge, read_timeouts
from kubelambda.launch.errors import PlatformStartError

__all__ = ["bind", "http_protocol", "print_banner", "serve", "signals_end_serving_only"]

log = logging.getLogger(__name__)


async def serve(
    app: ASGIApp,
    listener: socket.socket,
    *,
    url: str,
    url_file: Path | None,
    stack: contextlib.AsyncExitStack,
    announce: Callable[[], Awaitable[None]],
    header_timeout: float,
    body_idle_timeout: float,
) -> None:
    """Serve ``app`` on ``listener`` until uvicorn stops; once it serves, record ``url``
    in ``url_file`` (for ``kubelambda env``; in cluster there is none) and ``announce``
    it. Connections are served by ``http_protocol``."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            http=http_protocol(
                app, header_timeout=header_timeout, body_idle_timeout=body_idle_timeout
            ),
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
    # Everything made while starting (modules, the API's schemas, the composition) lives
    # as long as the process: out of the collector's sight from now on. A full collection
    # walked those ~130,000 objects in 50-70 ms, which set the p99 of invokes under load
    # (issue 11). Garbage from the start is collected first, not frozen with them.
    gc.collect()
    gc.freeze()
    if url_file is not None:
        await asyncio.to_thread(url_file.write_text, url + "\n")
        stack.callback(_remove_url_file, url_file, url)
    log.info("gateway listening url=%s", url)
    await announce()
    await serving


def http_protocol(
    app: ASGIApp, *, header_timeout: float, body_idle_timeout: float
) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` protocol for ``app``: a request's headers must arrive within
    ``header_timeout`` and its body may pause ``body_idle_timeout`` at most
    (``read_timeouts``); when ``app`` is the gateway, plain Invoke requests skip the ASGI
    cycle (``invoke_edge``)."""
    base = HttpToolsProtocol
    if isinstance(app, Gateway):
        base = invoke_edge.direct_invoke_protocol(app)
    return read_timeouts.timed_protocol(
        header_seconds=header_timeout, body_idle_seconds=body_idle_timeout, base=base
    )


@contextlib.contextmanager
def signals_end_serving_only() -> Iterator[None]:
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


def bind(host: str, port: int) -> socket.socket:
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


def print_banner(url: str, *, deploy_example: bool) -> None:
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
