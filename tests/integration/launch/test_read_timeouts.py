"""Slow clients against a real uvicorn with the gateway's read limits, over raw sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from kubelambda.launch import read_timeouts, serving

HEADER_SECONDS = 0.5
BODY_IDLE_SECONDS = 0.5
REQUEST = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n"


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    listener = serving.bind("127.0.0.1", 0)
    config = uvicorn.Config(
        echo_length,
        log_config=None,
        lifespan="off",
        http=read_timeouts.timed_protocol(
            header_seconds=HEADER_SECONDS, body_idle_seconds=BODY_IDLE_SECONDS
        ),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    yield listener.getsockname()[1]
    server.should_exit = True
    await task
    listener.close()


async def closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (reading whatever it sends)."""
    started = time.monotonic()
    while await reader.read(1024):
        pass
    return time.monotonic() - started


async def trickle(writer: asyncio.StreamWriter, data: bytes, *, pause: float) -> None:
    for byte in data:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(pause)


async def trickled_until_closed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> float:
    """Send ``data`` a byte every 0.1 s; seconds until the server closes the connection."""
    sending = asyncio.create_task(trickle(writer, data, pause=0.1))
    try:
        return await asyncio.wait_for(closed_after(reader), 5)
    finally:
        sending.cancel()


async def answered_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST + b"wxyz")
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    assert await reader.readexactly(1) == b"4"


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    waited = await asyncio.wait_for(closed_after(reader), 5)
    assert HEADER_SECONDS * 0.8 <= waited < HEADER_SECONDS + 1.0
    writer.close()


async def test_headers_sent_a_byte_at_a_time_are_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    waited = await trickled_until_closed(reader, writer, REQUEST)
    # The whole request would take 0.1 s a byte * 48 bytes: it was cut off long before.
    assert waited < HEADER_SECONDS + 1.0
    writer.close()


async def test_a_body_that_stops_coming_is_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST + b"ab")
    await writer.drain()
    waited = await asyncio.wait_for(closed_after(reader), 5)
    assert BODY_IDLE_SECONDS * 0.8 <= waited < BODY_IDLE_SECONDS + 1.0
    writer.close()


async def test_a_slow_body_that_keeps_coming_and_kept_alive_requests_are_answered(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    # Longer in all than both limits, but never idle for as long as one.
    await trickle(writer, b"abcd", pause=BODY_IDLE_SECONDS / 2)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    assert await reader.readexactly(1) == b"4"
    # A kept-alive connection, idle a while between requests, serves the next one.
    await asyncio.sleep(HEADER_SECONDS * 1.5)
    writer.write(REQUEST + b"wxyz")
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.close()


async def test_a_kept_alive_connections_next_headers_sent_a_byte_at_a_time_are_cut_off(
    port: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await answered_once(reader, writer)
    assert await trickled_until_closed(reader, writer, REQUEST) < HEADER_SECONDS + 1.0
    writer.close()


async def test_blank_lines_on_a_kept_alive_connection_do_not_keep_it_open(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await answered_once(reader, writer)
    # Blank lines before a request are allowed, and stop uvicorn's keep-alive timeout.
    assert await trickled_until_closed(reader, writer, b"\r\n" * 40) < HEADER_SECONDS + 1.0
    writer.close()
