"""One send per response: a transport that joins the writes of one step of the event loop.

uvicorn writes a response's status line and headers, then its body, as two writes: two
``send`` calls and, with ``TCP_NODELAY``, two segments the client wakes up for. The
gateway's protocol (``read_timeouts.timed_protocol``) hands uvicorn this wrapper instead
of the socket's transport: writes made in the same step are joined and written once, at
the end of the step (``call_soon``), or at once when the transport is closed. About 4% of
the gateway's CPU per invoke (issue 11's measurements); every other call goes straight
to the real transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["CoalescedWrites"]


class CoalescedWrites:
    """Wraps ``transport``; ``write`` is deferred to the end of the loop's current step."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def _flush(self) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
