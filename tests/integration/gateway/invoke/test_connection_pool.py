"""The keep-alive pool (gateway.kits.http_pool) against real servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import pytest
import uvloop
from invoke_servers import canned_server, serve_uvicorn

from gateway.kits.http_pool import ConnectionPool, ReadTimeout, RequestNotSent, ResponseFailed
from kubelambda.ports.endpoints import UNIX_PORT

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class EchoApp:
    """Echoes the body; says which client port it came from; counts what it served."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.served = 0

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.delay:
            await asyncio.sleep(self.delay)
        self.served += 1
        headers = [(b"x-client-port", str(scope["client"][1]).encode())]
        headers += [(b"x-echo-" + k, v) for k, v in scope["headers"] if k.startswith(b"x-")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def _post(pool: ConnectionPool, port: int, body: bytes = b"{}", **kw: Any) -> Any:
    kw.setdefault("read_timeout", 5.0)
    return await pool.request(
        "127.0.0.1", port, method="POST", path="/invoke", headers=[("X-Id", "1")], body=body, **kw
    )


async def test_response_carries_status_headers_and_body() -> None:
    pool = ConnectionPool()
    async with serve_uvicorn(EchoApp()) as port:
        response = await _post(pool, port, b'{"big": "' + b"x" * 300_000 + b'"}')
        await pool.aclose()
    assert response.status == 200
    assert response.headers["x-echo-x-id"] == "1"
    assert len(response.body) == 300_011


async def test_keep_alive_connection_is_reused() -> None:
    pool = ConnectionPool()
    async with serve_uvicorn(EchoApp()) as port:
        first = await _post(pool, port)
        second = await _post(pool, port)
        await pool.aclose()
    assert first.headers["x-client-port"] == second.headers["x-client-port"]


def test_keep_alive_connection_is_reused_under_uvloop() -> None:
    """The gateway runs on uvloop, whose transports are not ``asyncio.Transport``
    subclasses: a type check on them once failed every pooled connection there, which
    callers saw as read timeouts."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(test_keep_alive_connection_is_reused())


async def test_connection_closed_by_server_while_idle_is_replaced_without_resending() -> None:
    app = EchoApp()
    pool = ConnectionPool(idle_ttl=60.0)
    async with serve_uvicorn(app, timeout_keep_alive=0.1) as port:
        first = await _post(pool, port)
        await asyncio.sleep(0.5)
        second = await _post(pool, port)
        await pool.aclose()
    assert second.status == 200
    assert first.headers["x-client-port"] != second.headers["x-client-port"]
    assert app.served == 2


async def test_close_the_loop_has_not_seen_yet_is_detected_before_reuse() -> None:
    pool = ConnectionPool(idle_ttl=60.0)
    with canned_server(close_after=0.05) as server:
        await _post(pool, server.port)
        # Block the loop: the server's FIN arrives but our protocol cannot see it.
        time.sleep(0.3)  # noqa: ASYNC251
        second = await _post(pool, server.port)
        await pool.aclose()
    assert second.body == b"ok"
    assert server.requests == 2


async def test_connection_idle_past_ttl_is_not_reused() -> None:
    pool = ConnectionPool(idle_ttl=0.05)
    async with serve_uvicorn(EchoApp()) as port:
        first = await _post(pool, port)
        await asyncio.sleep(0.1)
        second = await _post(pool, port)
        await pool.aclose()
    assert first.headers["x-client-port"] != second.headers["x-client-port"]


async def test_sockets_have_tcp_nodelay() -> None:
    pool = ConnectionPool()
    async with serve_uvicorn(EchoApp()) as port:
        await _post(pool, port)
        sockets = pool.idle_sockets("127.0.0.1", port)
        options = [s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sockets]
        await pool.aclose()
    assert options == [1]


async def test_concurrent_requests_each_get_their_own_response() -> None:
    pool = ConnectionPool(max_idle_per_endpoint=8)
    async with serve_uvicorn(EchoApp(delay=0.05)) as port:
        bodies = [f'{{"n": {n}}}'.encode() for n in range(32)]
        responses = await asyncio.gather(*(_post(pool, port, body) for body in bodies))
        idle = pool.idle_count("127.0.0.1", port)
        await pool.aclose()
    assert [r.body for r in responses] == bodies
    assert idle == 8


async def test_refused_connection_is_request_not_sent() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(RequestNotSent):
        await _post(ConnectionPool(), port)


async def test_slow_response_times_out_and_connection_is_dropped() -> None:
    app = EchoApp(delay=0.5)
    pool = ConnectionPool()
    async with serve_uvicorn(app) as port:
        with pytest.raises(ReadTimeout):
            await _post(pool, port, read_timeout=0.1)
        idle = pool.idle_count("127.0.0.1", port)
        await pool.aclose()
    assert idle == 0


async def test_connection_lost_before_response_is_response_failed() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(ResponseFailed):
            await _post(ConnectionPool(), port)


async def test_closed_pool_refuses_requests() -> None:
    pool = ConnectionPool()
    await pool.aclose()
    with pytest.raises(RequestNotSent):
        await _post(pool, 1)


async def test_forget_closes_idle_connections_to_an_endpoint() -> None:
    pool = ConnectionPool()
    async with serve_uvicorn(EchoApp()) as port:
        first = await _post(pool, port)
        pool.forget("127.0.0.1", port)
        idle = pool.idle_count("127.0.0.1", port)
        second = await _post(pool, port)
        await pool.aclose()
    assert idle == 0
    assert first.headers["x-client-port"] != second.headers["x-client-port"]


@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_an_endpoint_on_a_unix_socket_keeps_its_connection_alive(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # uvloop, which the gateway runs on, cannot connect to an abstract name by itself.
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        answers, connections, idle = runner.run(_two_requests_over_a_unix_socket())

    assert [(a.status, a.body) for a in answers] == [(200, b'{"n": 0}'), (200, b'{"n": 1}')]
    assert answers[0].headers["x-host"] == "localhost"
    assert (connections, idle) == (1, 1)


async def _two_requests_over_a_unix_socket() -> tuple[list[Any], int, int]:
    connections = 0
    hung_up = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                host = head.lower().split(b"host: ")[1].split(b"\r\n")[0]
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Host: %s\r\n\r\n%s"
                    % (len(body), host, body)
                )
                await writer.drain()
        writer.close()
        hung_up.set()

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind("")  # an abstract name the kernel picks, as an embedded agent's
    address = listener.getsockname().decode("latin-1")
    server = await asyncio.start_unix_server(serve, sock=listener)
    pool = ConnectionPool()
    try:
        answers = [
            await pool.request(
                address,
                UNIX_PORT,
                method="POST",
                path="/invoke",
                headers=[],
                body=b'{"n": %d}' % n,
                read_timeout=5.0,
            )
            for n in range(2)
        ]
        idle = pool.idle_count(address, UNIX_PORT)
        pool.forget(address, UNIX_PORT)
        await asyncio.wait_for(hung_up.wait(), 5)  # forgetting closed the connection
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()
    return answers, connections, idle
