"""A small HTTP/1.1 server protocol on asyncio + httptools, shared by both of the agent's APIs.

``agent`` serves the invoke endpoint with it and ``slot`` serves each runtime's Runtime
API. Both are on the invoke hot path, so this stays minimal: keep-alive, TCP_NODELAY,
``Expect: 100-continue``, requests answered in order, a body limit that counts past the
limit without storing it (so an oversized runtime response can still be answered 413),
and a handler that may answer later (the Runtime API's ``/next`` is a long poll). The
handler is a plain callable, not a coroutine: most answers need no task at all.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import typing
from collections.abc import Callable, Sequence
from http import HTTPStatus

import httptools

__all__ = ["Handler", "HttpProtocol", "Request", "Responder"]

log = logging.getLogger(__name__)

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}
# Below this size a response goes out in one write; above it, headers and body are written
# separately so a 6 MB body is not copied just to prepend a few header bytes.
_JOIN_LIMIT = 64 * 1024
# Pipelined requests waiting for their turn; past this, stop reading from that client.
_MAX_PENDING = 16
# Each connection reads into one buffer of its own. (asyncio's plain Protocol allocates a
# fresh 256 KiB bytes object per read: an mmap, mremap and munmap per request, which on
# these VMs cost more than everything else the agent does.)
_READ_BUFFER = 64 * 1024


class Request:
    """One complete request. Header names are lower-case; values are decoded as Latin-1."""

    __slots__ = ("body", "body_too_large", "headers", "method", "path")

    def __init__(
        self, method: str, path: str, headers: dict[str, str], body: bytes, body_too_large: bool
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.body_too_large = body_too_large


class Responder:
    """Answers one request, now or later, exactly once."""

    __slots__ = ("_conn", "_keep_alive", "answered")

    def __init__(self, conn: HttpProtocol, keep_alive: bool) -> None:
        self._conn = conn
        self._keep_alive = keep_alive
        self.answered = False

    @property
    def closed(self) -> bool:
        """The client went away: an answer would reach no one."""
        return self._conn.closed

    def respond(
        self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        if self.answered:
            raise RuntimeError("request already answered")
        self.answered = True
        self._conn.send_response(status, body, headers, keep_alive=self._keep_alive)


Handler = Callable[[Request, Responder], None]


class HttpProtocol(asyncio.BufferedProtocol):
    """One server connection. ``connections`` lets the owner close them all at once;
    ``admit`` may refuse a connection as it is made (it is then closed unread)."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_body: int,
        connections: set[HttpProtocol] | None = None,
        admit: Callable[[asyncio.Transport], bool] | None = None,
    ) -> None:
        self._handler = handler
        self._admit = admit
        self._max_body = max_body
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._buffer = memoryview(bytearray(_READ_BUFFER))
        self._transport: asyncio.Transport | None = None
        self._pending: collections.deque[tuple[Request, bool]] = collections.deque()
        self._in_progress = False
        self._dispatching = False
        self._close_after_answer = False
        self.closed = False
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        transport = typing.cast(asyncio.Transport, transport)
        if self._admit is not None and not self._admit(transport):
            # Refused before a byte is read: nothing it sends is ever handled.
            self.closed = True
            transport.abort()
            return
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._connections is not None:
            self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pending.clear()
        if self._connections is not None:
            self._connections.discard(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self._parser.feed_data(self._buffer[:nbytes])
        except httptools.HttpParserUpgrade:
            # Neither API speaks anything but HTTP/1.1; the request itself was complete
            # and is answered, but the connection cannot be parsed past the upgrade.
            self._pending.clear()
            self._close_after_answer = True
            if not self._in_progress:
                self.close()
        except httptools.HttpParserError as exc:
            log.debug("bad request, closing connection error=%s", exc)
            self.send_response(HTTPStatus.BAD_REQUEST, b"", (), keep_alive=False)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.closed = True

    # httptools callbacks

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        if self._headers.get("expect", "").lower() == "100-continue" and self._transport:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size <= self._max_body:
            self._body.append(body)

    def on_message_complete(self) -> None:
        too_large = self._body_size > self._max_body
        request = Request(
            method=self._parser.get_method().decode("ascii"),
            path=self._url.partition(b"?")[0].decode("latin-1"),
            headers=self._headers,
            body=b"" if too_large else b"".join(self._body),
            body_too_large=too_large,
        )
        self._pending.append((request, self._parser.should_keep_alive()))
        self._reset_message()
        if len(self._pending) >= _MAX_PENDING and self._transport is not None:
            self._transport.pause_reading()
        if not self._in_progress:
            self._dispatch_next()

    # responses

    def _dispatch_next(self) -> None:
        # HTTP/1.1 answers requests in the order they came, so a pipelined request waits
        # until the one before it has been answered. A handler that answers at once
        # re-enters here through send_response; the flag turns that into the loop's next
        # turn instead of recursion.
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending and not self._in_progress and not self.closed:
                request, keep_alive = self._pending.popleft()
                self._in_progress = True
                responder = Responder(self, keep_alive)
                try:
                    self._handler(request, responder)
                except Exception:
                    log.exception("request handler failed path=%s", request.path)
                    if not responder.answered:
                        responder.respond(HTTPStatus.INTERNAL_SERVER_ERROR)
        finally:
            self._dispatching = False
        if (
            len(self._pending) < _MAX_PENDING
            and self._transport is not None
            and not self.closed
            and not self._transport.is_reading()
        ):
            self._transport.resume_reading()

    def send_response(
        self,
        status: int,
        body: bytes,
        headers: Sequence[tuple[str, str]],
        *,
        keep_alive: bool,
    ) -> None:
        self._in_progress = False
        if self.closed or self._transport is None:
            return
        head = [b"HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, _REASONS[status], len(body))]
        head.extend(b"%s: %s\r\n" % (k.encode("latin-1"), v.encode("utf-8")) for k, v in headers)
        keep_alive = keep_alive and not self._close_after_answer
        if not keep_alive:
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if len(body) < _JOIN_LIMIT:
            head.append(body)
            self._transport.write(b"".join(head))
        else:
            self._transport.write(b"".join(head))
            self._transport.write(body)
        if not keep_alive:
            self.close()
            return
        self._dispatch_next()
