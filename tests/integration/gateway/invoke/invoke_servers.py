"""Real servers for the invoke path's integration tests: uvicorn on a free port, and a
bare socket server in a thread whose timing the test controls."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


@contextlib.asynccontextmanager
async def serve_uvicorn(app: Any, **config: Any) -> AsyncIterator[int]:
    """Serve ``app`` with real uvicorn on 127.0.0.1 in this loop; yields the port.
    ``config`` are ``uvicorn.Config`` options (lifespan events are off unless asked for)."""
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = {"lifespan": "off", "log_level": "warning", "http": "httptools", **config}
    server = uvicorn.Server(uvicorn.Config(app, **config))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn exposes only a flag, no event, for "listening".
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


class CannedServer:
    """Answers each request with a fixed keep-alive response from a thread, then closes
    the connection ``close_after`` seconds later: it lets a test make the server close
    while the client's event loop is not looking."""

    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"

    def __init__(self, close_after: float) -> None:
        self.close_after = close_after
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> CannedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._listener.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            conn.sendall(self.RESPONSE)
            threading.Event().wait(self.close_after)


@contextlib.contextmanager
def canned_server(close_after: float) -> Iterator[CannedServer]:
    with CannedServer(close_after) as server:
        yield server
