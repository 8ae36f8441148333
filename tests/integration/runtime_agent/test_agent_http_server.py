"""The agent's HTTP/1.1 server protocol on a real socket, driven by a raw client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pytest
import uvloop
from kubelambda_agent.http_server import Handler, HttpProtocol, Request, Responder


class Connect(Protocol):
    async def __call__(
        self, handler: Handler = ..., max_body: int = ...
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


def echo(request: Request, responder: Responder) -> None:
    """Answers at once with what it saw."""
    summary = f"{request.method} {request.path} {len(request.body)} {request.body_too_large}"
    responder.respond(200, summary.encode(), [("X-Seen", request.headers.get("x-tag", ""))])


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def open_connection(
        handler: Handler = echo, max_body: int = 1000
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: HttpProtocol(handler, max_body=max_body), "127.0.0.1", 0
        )
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield open_connection
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *header_lines = head.decode().split("\r\n")[:-2]
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in header_lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return status_line.encode(), headers, body


async def test_keep_alive_serves_several_requests_on_one_connection(connect: Connect) -> None:
    reader, writer = await connect()

    bodies = []
    for tag in ("a", "b"):
        writer.write(f"GET /x HTTP/1.1\r\nHost: h\r\nX-Tag: {tag}\r\n\r\n".encode())
        status, headers, body = await read_response(reader)
        bodies.append((status, headers["x-seen"], body))

    assert bodies == [
        (b"HTTP/1.1 200 OK", "a", b"GET /x 0 False"),
        (b"HTTP/1.1 200 OK", "b", b"GET /x 0 False"),
    ]


def test_keep_alive_serves_several_requests_under_uvloop() -> None:
    """The agent serves on uvloop, whose transports are not ``asyncio.Transport``
    subclasses: the protocol must take them as they are."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: HttpProtocol(echo, max_body=1000), "127.0.0.1", 0)
        connections: list[asyncio.StreamWriter] = []
        try:

            async def connect(handler: Handler = echo, max_body: int = 1000) -> Any:
                port = server.sockets[0].getsockname()[1]
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                connections.append(writer)
                return reader, writer

            await test_keep_alive_serves_several_requests_on_one_connection(connect)
        finally:
            for writer in connections:
                writer.close()
            server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_pipelined_requests_are_answered_in_order(connect: Connect) -> None:
    parked: list[Responder] = []
    slow_arrived = asyncio.Event()

    def first_waits(request: Request, responder: Responder) -> None:
        if request.path == "/slow":
            parked.append(responder)
            slow_arrived.set()
        else:
            responder.respond(200, b"fast")

    reader, writer = await connect(first_waits)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /fast HTTP/1.1\r\nHost: h\r\n\r\n")
    await asyncio.wait_for(slow_arrived.wait(), 5)
    parked[0].respond(200, b"slow")

    first = await read_response(reader)
    second = await read_response(reader)

    assert (first[2], second[2]) == (b"slow", b"fast")


async def test_expect_continue_gets_an_interim_answer(connect: Connect) -> None:
    reader, writer = await connect()

    writer.write(
        b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.write(b"abc")
    _, _, body = await read_response(reader)

    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert body == b"POST /p 3 False"


async def test_body_over_the_limit_is_flagged_not_kept(connect: Connect) -> None:
    reader, writer = await connect(max_body=10)

    writer.write(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n" + b"x" * 11)
    _, _, body = await read_response(reader)

    assert body == b"POST /p 0 True"


async def test_chunked_bodies_are_decoded(connect: Connect) -> None:
    reader, writer = await connect()

    writer.write(
        b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    _, _, body = await read_response(reader)

    assert body == b"POST /p 5 False"


async def test_connection_close_is_honoured(connect: Connect) -> None:
    reader, writer = await connect()

    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    _, headers, _ = await read_response(reader)

    assert headers["connection"] == "close"
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_malformed_request_gets_400_and_a_closed_connection(connect: Connect) -> None:
    reader, writer = await connect()

    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    status, _, _ = await read_response(reader)

    assert status == b"HTTP/1.1 400 Bad Request"
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_upgrade_request_is_answered_then_the_connection_closed(connect: Connect) -> None:
    reader, writer = await connect()

    writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
    status, _, _ = await read_response(reader)

    assert status == b"HTTP/1.1 200 OK"
    assert await asyncio.wait_for(reader.read(), 5) == b""


async def test_many_pipelined_requests_are_all_answered(connect: Connect) -> None:
    reader, writer = await connect()

    writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(100)))
    bodies = [(await read_response(reader))[2] for _ in range(100)]

    assert bodies == [b"GET /%d 0 False" % i for i in range(100)]


async def test_pipelined_requests_beyond_the_queue_limit_wait_and_are_answered(
    connect: Connect,
) -> None:
    arrived: asyncio.Queue[tuple[Request, Responder]] = asyncio.Queue()

    def later(request: Request, responder: Responder) -> None:
        arrived.put_nowait((request, responder))

    async def answer_in_turn() -> None:
        for _ in range(100):
            request, responder = await arrived.get()
            await asyncio.sleep(0)
            responder.respond(200, request.path.encode())

    reader, writer = await connect(later)
    answering = asyncio.create_task(answer_in_turn())
    writer.write(b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(100)))
    bodies = [(await read_response(reader))[2] for _ in range(100)]
    await answering

    assert bodies == [b"/%d" % i for i in range(100)]
