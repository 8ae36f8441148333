"""A keep-alive HTTP/1.1 client pool to function instances: ``asyncio.Protocol`` + httptools.

The invoke path sends every invocation through one ``ConnectionPool`` (created by the
invoke app, closed with it). It exists because the generic clients cost too much here
(DESIGN.md §4): this one writes one buffer per request, parses with httptools, sets
TCP_NODELAY, and keeps idle connections per endpoint: a host and a port, or a Unix socket
address and ``UNIX_PORT`` (``kubelambda.ports.endpoints``).

Reusing a connection is only safe when the server has not closed it: a POST written to
a dead connection may or may not have run, so it must never be resent. Before reuse a
connection is therefore checked three ways: our protocol saw no EOF, the socket is not
readable (an idle HTTP connection is readable only when the peer closed it or sent
junk), and it has been idle for less than ``idle_ttl`` (below the servers' keep-alive
timeout, so they do not close it while we write).

Errors say whether the request may have reached the server:

    PoolError
    ├── RequestNotSent      nothing was written: safe to send elsewhere
    └── ResponseFailed      written, but no complete response: it may have run
        └── ReadTimeout
"""

from __future__ import annotations

import asyncio
import collections
import select
import socket
import typing
from collections.abc import Sequence
from dataclasses import dataclass

import httptools

from kubelambda.ports.endpoints import UNIX_PORT

__all__ = [
    "ConnectionPool",
    "PoolError",
    "ReadTimeout",
    "RequestNotSent",
    "Response",
    "ResponseFailed",
]

_DEAD_WHEN_IDLE = select.POLLIN | select.POLLHUP | select.POLLERR


class PoolError(Exception):
    """The pool could not deliver a request or read its response."""


class RequestNotSent(PoolError):
    """No byte of the request left this process: the server never saw it."""


class ResponseFailed(PoolError):
    """The request was written but no complete response came back."""


class ReadTimeout(ResponseFailed):
    """No complete response within the request's timeout."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection that carries one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._closed = False
        self._keep_alive = True
        self._poller = select.poll()
        self.idle_since = 0.0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        transport = typing.cast(asyncio.Transport, transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock.family != socket.AF_UNIX:
            # Without it, a request written in two segments waits for the peer's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._poller.register(sock.fileno(), _DEAD_WHEN_IDLE)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Nothing was asked: the connection is out of step, never reuse it.
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ResponseFailed(f"malformed response: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self._closed = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._fail(ResponseFailed(f"connection closed before the response: {exc or 'EOF'}"))

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._headers = {}
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            status = self._parser.get_status_code()
            waiter.set_result(Response(status, self._headers, b"".join(self._body)))

    # used by the pool

    @property
    def socket(self) -> socket.socket | None:
        if self._transport is None:
            return None
        sock: socket.socket = self._transport.get_extra_info("socket")
        return sock

    def is_open(self) -> bool:
        """Neither side has asked to close it, as far as this process has seen."""
        return not (
            self._closed
            or not self._keep_alive
            or self._transport is None
            or self._transport.is_closing()
        )

    def reusable(self) -> bool:
        """Open, and no EOF or stray bytes waiting in the socket that we have not read yet."""
        return self.is_open() and not self._poller.poll(0)

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Response]:
        assert self._transport is not None
        self._waiter = loop.create_future()
        self._transport.write(data)
        return self._waiter

    def time_out(self) -> None:
        self._fail(ReadTimeout("no response before the timeout"))
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: PoolError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class ConnectionPool:
    """Keep-alive connections per ``(host, port)``, used one request at a time each."""

    def __init__(
        self,
        *,
        max_idle_per_endpoint: int = 64,
        idle_ttl: float = 4.0,
        connect_timeout: float = 2.0,
    ) -> None:
        self._max_idle = max_idle_per_endpoint
        self._idle_ttl = idle_ttl
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], collections.deque[_Connection]] = {}
        self._closed = False

    def idle_count(self, host: str, port: int) -> int:
        return len(self._idle.get((host, port), ()))

    async def request(
        self,
        host: str,
        port: int,
        *,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        read_timeout: float,
    ) -> Response:
        """Send one request and read its response within ``read_timeout`` seconds."""
        if self._closed:
            raise RequestNotSent("the connection pool is closed")
        loop = asyncio.get_running_loop()
        key = (host, port)
        conn = self._take_idle(key, loop.time()) or await self._connect(key)
        if not conn.is_open():
            # The server hung up on a new connection before we wrote anything.
            conn.close()
            raise RequestNotSent(f"{host}:{port} closed the connection at once")
        authority = "localhost" if port == UNIX_PORT else f"{host}:{port}"
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {authority}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in headers)
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        waiter = conn.send("".join(lines).encode("latin-1") + body, loop)
        timer = loop.call_later(read_timeout, conn.time_out)
        try:
            response = await waiter
        except BaseException:
            # Failed, timed out, or the caller went away mid-response: the connection
            # may hold a partial response, so it cannot carry another request.
            conn.close()
            raise
        finally:
            timer.cancel()
        self._put_idle(key, conn, loop.time())
        return response

    def idle_sockets(self, host: str, port: int) -> list[socket.socket]:
        """The sockets of the idle connections to an endpoint (diagnostics and tests)."""
        return [conn.socket for conn in self._idle.get((host, port), ()) if conn.socket]

    def forget(self, host: str, port: int) -> None:
        """Close the idle connections to an endpoint that went away."""
        for conn in self._idle.pop((host, port), ()):
            conn.close()

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()

    def _take_idle(self, key: tuple[str, int], now: float) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            # Most recently used first: the least likely to have been closed.
            conn = idle.pop()
            if now - conn.idle_since < self._idle_ttl and conn.reusable():
                return conn
            conn.close()
        if idle is not None:
            del self._idle[key]
        return None

    def _put_idle(self, key: tuple[str, int], conn: _Connection, now: float) -> None:
        idle = self._idle.setdefault(key, collections.deque())
        if self._closed or len(idle) >= self._max_idle or not conn.is_open():
            conn.close()
            return
        conn.idle_since = now
        idle.append(conn)

    async def _connect(self, key: tuple[str, int]) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                if key[1] == UNIX_PORT:
                    _, conn = await loop.create_unix_connection(
                        _Connection, sock=await _unix_socket(key[0], loop)
                    )
                else:
                    _, conn = await loop.create_connection(_Connection, *key)
        except (OSError, TimeoutError) as exc:
            raise RequestNotSent(f"cannot connect to {key[0]!r}:{key[1]}: {exc!r}") from exc
        return conn


async def _unix_socket(address: str, loop: asyncio.AbstractEventLoop) -> socket.socket:
    """A socket connected to the Unix socket ``address``. (uvloop cannot connect to an
    abstract name itself: its ``create_unix_connection`` takes the leading NUL for the
    end of the path.)"""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock
