"""Plain Invoke requests answered by the server's protocol itself, without an ASGI cycle.

uvicorn turns every request into an ASGI cycle: a scope, an event, a task, receive and
send messages, a check of every response header on the way out, and the composition's
layers behind them. On the invoke path that was about a third of the gateway's CPU per
invoke (issue 11). ``direct_invoke_protocol`` returns uvicorn's httptools protocol with
one change: once a request's headers are complete, ``Gateway.direct_invoke`` is asked
about it, and a plain Invoke becomes an ``_InvokeExchange`` where uvicorn would make its
``RequestResponseCycle``. The exchange plays the cycle's part towards the protocol (the
body arriving, the end of the message, a disconnect, keep-alive, pipelining and shutdown
reach it through the same attributes), reads the body, awaits the gateway's answer and
writes the response. Every other request, and everything else about a connection, is
uvicorn's, untouched: the ASGI app still answers the requests ``direct_invoke`` declines.

This leans on the httptools protocol's internals (``cycle``, ``pipeline``, ``flow``,
``_start_asgi_task``), so pyproject.toml bounds uvicorn's version; the gateway's HTTP
tests run through this protocol.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.app import DirectInvoke, Gateway, Refusal
from gateway.invoke.app import Reply, error_reply
from kubelambda import errors

__all__ = ["DirectInvokeProtocol", "direct_invoke_protocol"]

log = logging.getLogger(__name__)

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def direct_invoke_protocol(gateway: Gateway) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol answering the plain Invoke requests ``gateway`` takes
    on directly."""

    class ForGateway(DirectInvokeProtocol):
        _gateway = gateway

    return ForGateway


class DirectInvokeProtocol(HttpToolsProtocol):
    _gateway: Gateway

    def on_headers_complete(self) -> None:
        exchange = self._direct_exchange()
        if exchange is None:
            super().on_headers_complete()
            return
        # As uvicorn does with its own cycles: start now, or queue behind the request
        # being answered (pipelining) and stop reading until its turn.
        previous: Any = self.cycle
        self.cycle = exchange  # type: ignore[assignment]
        if previous is None or previous.response_complete:
            self._start_asgi_task(exchange, self.app)  # type: ignore[arg-type]
        else:
            self.flow.pause_reading()
            self.pipeline.appendleft((exchange, self.app))  # type: ignore[arg-type]

    def _direct_exchange(self) -> _InvokeExchange | None:
        if (
            self.parser.get_method() != b"POST"
            or self.expect_100_continue
            or self.parser.should_upgrade()
            or self.limit_concurrency is not None
            or not self.url.startswith(b"/")
        ):
            return None
        raw_path, _, query_string = self.url.partition(b"?")
        decided = self._gateway.direct_invoke(raw_path, query_string, self.headers)
        if decided is None:
            return None
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        return _InvokeExchange(
            decided,
            transport=self.transport,
            flow=self.flow,
            keep_alive=keep_alive,
            on_response=self.on_response_complete,
        )


class _InvokeExchange:
    """Stands where uvicorn keeps its ``RequestResponseCycle``. The protocol appends to
    ``body``, clears ``more_body`` at the end of the message, sets ``disconnected``, and
    calls ``message_event.set()`` after each; it reads ``response_complete``, clears
    ``keep_alive`` at shutdown, and runs ``run_asgi`` when the request's turn comes."""

    def __init__(
        self,
        decided: DirectInvoke | Refusal,
        *,
        transport: asyncio.Transport,
        flow: FlowControl,
        keep_alive: bool,
        on_response: Callable[[], None],
    ) -> None:
        self.body = bytearray()
        self.more_body = True
        self.disconnected = False
        self.keep_alive = keep_alive
        self.response_complete = False
        self.message_event = self
        self._decided = decided
        self._transport = transport
        self._flow = flow
        self._on_response = on_response
        self._running = False
        self._body_read: asyncio.Future[None] | None = None

    def set(self) -> None:
        """Something arrived for this request (the protocol's ``message_event.set()``)."""
        if self.disconnected or not self.more_body:
            if self._body_read is not None and not self._body_read.done():
                self._body_read.set_result(None)
        elif self._running:
            # The protocol stops reading past its high-water mark; the whole body is
            # wanted (its size is known, within the limit and the gateway's budget).
            self._flow.resume_reading()

    async def run_asgi(self, _app: Any) -> None:
        """Answer the request (the name is the protocol's: it starts every cycle so)."""
        decided = self._decided
        if isinstance(decided, Refusal):
            self._send(decided.reply, close=decided.close)
            return
        # Counted in the body budget from now: until its turn came, its body lay unread.
        refusal = decided.admit()
        if refusal is not None:
            self._send(refusal.reply, close=refusal.close)
            return
        self._running = True
        try:
            if self.more_body and not self.disconnected:
                self._flow.resume_reading()
                self._body_read = asyncio.get_running_loop().create_future()
                await self._body_read
        finally:
            if self.disconnected or self.more_body:
                decided.abandon()
        if self.disconnected:
            return
        try:
            reply = await decided.answer(bytes(self.body))
        except Exception:
            log.exception("direct invoke crashed")
            reply = error_reply(errors.ServiceError("Internal error."))
        if not self.disconnected:
            self._send(reply, close=False)

    def _send(self, reply: Reply, *, close: bool) -> None:
        self.response_complete = True
        if self._transport.is_closing():
            return  # the client is gone (and the protocol will not start another request)
        status, headers, body = reply
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b""))]
        head.extend(b"%s: %s\r\n" % (name, value) for name, value in headers)
        head.append(b"content-length: %d\r\n" % len(body))
        if close:
            self.keep_alive = False
        if not self.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        self._transport.write(b"".join(head))
        if body:
            self._transport.write(body)
        if not self.keep_alive:
            self._transport.close()
        self._on_response()
