"""A TCP relay in front of the real kube-apiserver that a test can cut, to make one client
lose the apiserver while others keep it (a network partition, not a fake apiserver).

While cut, open connections are reset and new ones are accepted but never answered, so a
client sees both failures a partition causes: errors, and requests that hang.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["TcpRelay", "relay_to"]


class TcpRelay:
    def __init__(self, server: asyncio.Server, *, upstream: tuple[str, int]) -> None:
        self._server = server
        self._upstream = upstream
        self._open: set[asyncio.StreamWriter] = set()
        self.is_cut = False

    @property
    def port(self) -> int:
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        self.is_cut = True
        for writer in self._open:
            writer.transport.abort()
        self._open.clear()

    def restore(self) -> None:
        self.is_cut = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open.add(writer)
        try:
            with contextlib.suppress(ConnectionError):
                await self._serve(reader, writer)
        finally:
            self._open.discard(writer)
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            await reader.read()  # hold the connection unanswered until the client drops it
            return
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._open.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open.discard(up_writer)
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side ended: end the other, so neither waits forever


@contextlib.asynccontextmanager
async def relay_to(host: str, port: int) -> AsyncIterator[TcpRelay]:
    """A relay listening on ``host`` (so the apiserver's certificate still matches) at a
    free port, forwarding to ``host``:``port``."""
    relay: TcpRelay | None = None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert relay is not None
        await relay.handle(reader, writer)

    server = await asyncio.start_server(handle, host, 0)
    relay = TcpRelay(server, upstream=(host, port))
    try:
        yield relay
    finally:
        relay.cut()
        server.close()
        await server.wait_closed()
