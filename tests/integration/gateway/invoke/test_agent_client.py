"""How the agent client sorts what an instance's server does: ran, busy, or failed.

A real agent only fails these ways when it crashes or misbehaves, so each failure is
played by a small real server speaking HTTP over a real socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateway.kits import agent_client
from gateway.kits.http_pool import ConnectionPool
from kubelambda import errors
from kubelambda.ports.endpoints import Endpoint
from tests import factories

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
CALL = agent_client.AgentCall(
    request_id="rid",
    invoked_function_arn="arn",
    payload=b"{}",
    read_timeout=0.5,
    client_context='{"custom":{"k":"v"}}',
    trace_id="Root=1",
    tail=True,
)


def _answer(status_line: bytes, *headers: bytes, body: bytes = b"") -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        lines = [status_line, *headers, b"Content-Length: %d" % len(body), b"", body]
        writer.write(b"\r\n".join(lines))
        await writer.drain()
        writer.close()

    return handle


async def _hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.transport.abort()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.read()  # until the client gives up and closes
    writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Endpoint]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> Endpoint:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return Endpoint(factories.target("f", "1"), "i-1", "127.0.0.1", port, 1, token="t")

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def pool() -> AsyncIterator[ConnectionPool]:
    pool = ConnectionPool()
    yield pool
    await pool.aclose()


async def test_ran_returns_body_and_agent_headers(
    serve: Callable[[Handler], Awaitable[Endpoint]], pool: ConnectionPool
) -> None:
    endpoint = await serve(
        _answer(b"HTTP/1.1 200 OK", b"Kubelambda-Function-Error: Unhandled", body=b'{"e": 1}')
    )
    outcome = await agent_client.send(pool, endpoint, CALL)
    assert outcome.body == b'{"e": 1}'
    assert outcome.function_error == "Unhandled"


async def test_busy_answer_is_agent_busy(
    serve: Callable[[Handler], Awaitable[Endpoint]], pool: ConnectionPool
) -> None:
    endpoint = await serve(
        _answer(b"HTTP/1.1 503 Service Unavailable", b"Kubelambda-Agent-Busy: 1")
    )
    with pytest.raises(agent_client.AgentBusy):
        await agent_client.send(pool, endpoint, CALL)


async def test_refused_connection_is_agent_busy(pool: ConnectionPool) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    endpoint = Endpoint(factories.target("f", "1"), "gone", "127.0.0.1", port, 1, token="t")
    sock.close()
    with pytest.raises(agent_client.AgentBusy):
        await agent_client.send(pool, endpoint, CALL)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_answer(b"HTTP/1.1 503 Service Unavailable"), errors.ServiceError),
        (_answer(b"HTTP/1.1 400 Bad Request"), errors.ServiceError),
        (_hang_up, errors.ResourceNotReady),
        (_never_answer, errors.ServiceError),
    ],
)
async def test_failures_map_to_lambda_service_errors(
    serve: Callable[[Handler], Awaitable[Endpoint]],
    pool: ConnectionPool,
    handler: Handler,
    error: type[errors.LambdaError],
) -> None:
    endpoint = await serve(handler)
    with pytest.raises(error) as caught:
        await agent_client.send(pool, endpoint, CALL)
    assert type(caught.value) is error
    assert "RequestId: rid" in caught.value.message


async def test_request_carries_the_agent_protocol_headers(
    serve: Callable[[Handler], Awaitable[Endpoint]], pool: ConnectionPool
) -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        await reader.readexactly(2)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    await agent_client.send(pool, await serve(record), CALL)
    head = seen[0].decode()
    assert head.startswith("POST /invoke HTTP/1.1\r\n")
    for line in (
        "Kubelambda-Invoke-Token: t",
        "Kubelambda-Request-Id: rid",
        "Kubelambda-Invoked-Function-Arn: arn",
        'Kubelambda-Client-Context: {"custom":{"k":"v"}}',
        "Kubelambda-Trace-Id: Root=1",
        "Kubelambda-Log-Type: Tail",
        "Content-Length: 2",
    ):
        assert f"\r\n{line}\r\n" in head
