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
        _read_timer: asyncio.TimerHandle | None = None
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
            if self._reading_body and not self.transport.is_closing():
                self._arm(body_idle_seconds, "body")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._read_timer is None:
                self._arm(header_seconds, "headers")

        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            self._reading_body = True
            self._arm(body_idle_seconds, "body")

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_body = False
            self._disarm()

        def _arm(self, seconds: float, what: str) -> None:
            self._disarm()
            self._read_timer = self.loop.call_later(seconds, self._expire, what)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _expire(self, what: str) -> None:
            self._read_timer = None
            if self.flow.read_paused:
                # The gateway stopped reading, not the client: wait for it.
                self._arm(body_idle_seconds, what)
                return
            client: Any = self.client
            log.info("connection closed reason=slow-%s client=%s", what, client)
            self.transport.close()

    return TimedHttpToolsProtocol
