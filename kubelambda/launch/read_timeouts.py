"""Time limits on reading a request, so slow clients cannot hold the gateway's connections.

uvicorn times out idle keep-alive connections but not a request that arrives slowly: a
client sending its headers a byte a second (slowloris) keeps a connection, and the
memory behind it, for as long as it likes. ``timed_protocol`` returns uvicorn's
httptools protocol with two limits, which ``serving.serve`` installs:

* ``header_seconds``: from a connection's first moment (or a request's first byte on a
  kept-alive one) until its request line and headers are complete;
* ``body_idle_seconds``: the longest silence while a request's body is still coming
  (time while the gateway itself has paused reading does not count).

Past either the connection is closed without an answer (there is no one to read it).
The protocol also writes each response in one send (``coalesced_writes``).
"""

from __future__ import annotations

import asyncio
import logging
import typing
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kubelambda.launch.coalesced_writes import CoalescedWrites

__all__ = ["timed_protocol"]

log = logging.getLogger(__name__)


def timed_protocol(
    *,
    header_seconds: float,
    body_idle_seconds: float,
    base: type[HttpToolsProtocol] = HttpToolsProtocol,
) -> type[HttpToolsProtocol]:
    """uvicorn's ``http`` protocol class (``base``: it, or a subclass) with the two read
    limits."""

    class TimedHttpToolsProtocol(base):  # type: ignore[valid-type,misc]
        # Timers are armed after each read, for the request it left incomplete, if any: a
        # request that arrives in one read (nearly every one) costs no timer at all.
        _read_timer: asyncio.TimerHandle | None = None
        _timing: str | None = None  # what the armed timer limits: "headers" or "body"
        _reading_headers = False
        _reading_body = False

        def connection_made(self, transport: asyncio.Transport) -> None:
            # One send per response, not one for the head and one for the body.
            writes = CoalescedWrites(transport, self.loop)
            super().connection_made(typing.cast(asyncio.Transport, writes))
            self._arm(header_seconds, "headers")

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._reading_body:
                self._arm(body_idle_seconds, "body")  # any progress restarts the wait
            elif self._reading_headers:
                if self._timing != "headers":
                    self._arm(header_seconds, "headers")  # from its first byte, not extended
            elif self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the request is in; answering it is the gateway's time
            elif self._timing != "headers":
                # Bytes that begin no request (blank lines): they stop uvicorn's keep-alive
                # timeout, so they start the wait for a request's headers.
                self._arm(header_seconds, "headers")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._reading_headers = True

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._reading_headers = False
            self._reading_body = True

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_body = False

        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(seconds, self._expire, what)
            self._timing = what

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None
                self._timing = None

        def _expire(self, what: str) -> None:
            self._read_timer = None
            self._timing = None
            if self.flow.read_paused:
                # The gateway stopped reading, not the client: wait for it.
                self._arm(body_idle_seconds, what)
                return
            client: Any = self.client
            log.info("connection closed reason=slow-%s client=%s", what, client)
            self.transport.close()

    return TimedHttpToolsProtocol
