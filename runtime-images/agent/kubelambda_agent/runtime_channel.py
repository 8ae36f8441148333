"""The built-in python bootstrap's channel to its slot: the Runtime API without HTTP.

Every python runtime gets one end of a Unix socket pair when it is spawned
(``process.spawn``, its descriptor number in ``config.CHANNEL_FD_VARIABLE``), and the bootstrap
(``python_bootstrap``) speaks the framing below on it; the slot serves it with
``ChannelProtocol``, which calls the very methods the HTTP Runtime API calls
(``runtime_api.RuntimeApiTarget``), so an invocation behaves the same either way. Per
invocation that is one message each way (the answer travels with the request for the
next event) instead of two HTTP exchanges on a TCP connection: the agent and the runtime
each wake once, parse nothing, and skip the loopback TCP stack. Custom runtimes and
``awslambdaric`` use the HTTP Runtime API, which every runtime is still served.

A frame is a kind (1 byte), the meta and body lengths (4 bytes each, big-endian), the
meta, the body. From the runtime: ``n`` the next event, please; ``r`` a response (meta:
request id); ``e`` an error (meta: request id, newline, error type); ``i`` an init error
(meta: error type). From the agent: ``v`` an invocation (meta: its Runtime API headers,
``name: value`` lines, names lower-case; body: the event), ``a`` init error recorded.

The runtime's frames are untrusted (the function's code runs in its process): a frame of
another kind, or with a meta over ``MAX_META_BYTES``, closes the channel (the runtime then
exits on its end of file, and the slot handles that as any runtime exit); a body over
``max_body`` is discarded as it arrives and counts as a response too large.
"""

from __future__ import annotations

import asyncio
import struct
import typing
from collections.abc import Sequence

from kubelambda_agent.runtime_api import RuntimeApiTarget

__all__ = ["MAX_META_BYTES", "ChannelProtocol", "ChannelReply"]

# A request id and an error type; Lambda caps error types far below this.
MAX_META_BYTES = 16 * 1024

_HEAD = struct.Struct(">cII")
_NEXT, _RESPONSE, _ERROR, _INIT_ERROR = b"n", b"r", b"e", b"i"
_INVOCATION, _INIT_RECORDED = b"v", b"a"
_FROM_RUNTIME = frozenset({_NEXT, _RESPONSE, _ERROR, _INIT_ERROR})


class ChannelReply:
    """The answer to one ``n`` frame: the invocation, whenever the slot has one (the
    ``Responder`` of the HTTP long poll, as ``RuntimeApiTarget.next_requested`` takes)."""

    __slots__ = ("_channel", "answered")

    def __init__(self, channel: ChannelProtocol) -> None:
        self._channel = channel
        self.answered = False

    @property
    def closed(self) -> bool:
        return self._channel.closed

    def respond(
        self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        if status != 200:
            raise ValueError(f"the channel carries invocations only, not a {status}")
        if self.answered:
            raise RuntimeError("request already answered")
        self.answered = True
        meta = "".join(f"{name.lower()}: {value}\n" for name, value in headers).encode()
        self._channel.send(_INVOCATION, meta, body)


class ChannelProtocol(asyncio.Protocol):
    """The slot's end of one runtime's channel."""

    def __init__(self, target: RuntimeApiTarget, *, max_body: int) -> None:
        self._target = target
        self._max_body = max_body
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._frame: tuple[bytes, int, int] | None = None
        self._discard = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = typing.cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    def send(self, kind: bytes, meta: bytes, body: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.writelines([_HEAD.pack(kind, len(meta), len(body)), meta, body])

    def data_received(self, data: bytes) -> None:
        if self._discard:
            dropped = min(self._discard, len(data))
            self._discard -= dropped
            data = data[dropped:]
        self._buffer += data
        while not self.closed and self._take_frame():
            pass

    def _take_frame(self) -> bool:
        """Handle the next complete frame in the buffer; False when there is none."""
        buffer = self._buffer
        if self._frame is None:
            if len(buffer) < _HEAD.size:
                return False
            kind, meta_length, body_length = _HEAD.unpack_from(buffer)
            if kind not in _FROM_RUNTIME or meta_length > MAX_META_BYTES:
                self.close()
                return False
            del buffer[: _HEAD.size]
            self._frame = (kind, meta_length, body_length)
        kind, meta_length, body_length = self._frame
        too_large = body_length > self._max_body
        wanted = meta_length if too_large else meta_length + body_length
        if len(buffer) < wanted:
            return False
        meta = bytes(buffer[:meta_length]).decode("utf-8", "replace")
        body = b"" if too_large else bytes(buffer[meta_length:wanted])
        del buffer[:wanted]
        if too_large:
            dropped = min(body_length, len(buffer))
            del buffer[:dropped]
            self._discard = body_length - dropped
        self._frame = None
        self._dispatch(kind, meta, body, too_large=too_large)
        return True

    def _dispatch(self, kind: bytes, meta: str, body: bytes, *, too_large: bool) -> None:
        if kind == _NEXT:
            self._target.next_requested(ChannelReply(self))
        elif kind == _INIT_ERROR:
            self._target.init_failed(body, meta or None)
            # The bootstrap exits once this arrives: the failure is recorded by then.
            self.send(_INIT_RECORDED, b"", b"")
        else:
            request_id, _, error_type = meta.partition("\n")
            self._target.invocation_answered(
                request_id,
                body,
                is_error=kind == _ERROR,
                error_type=error_type or None,
                too_large=too_large,
            )
