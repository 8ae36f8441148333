"""The direct invoke path (``kubelambda.launch.invoke_edge``) in real uvicorn, with the
gateway's composition and authenticator, over raw sockets.

Behind it an ``InvokeApp`` whose ``handle`` records what it was given, and a ``Gateway``
that counts the requests reaching it through ASGI: so each test sees which way a request
went, and that both ways answer alike. The invoke use case itself is covered by the
gateway's integration tests, which are served through this same protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from gateway.app import INVOKE_BODY_LIMIT, Gateway
from gateway.auth import Authenticator
from gateway.invoke.app import InvokeApp, Reply
from kubelambda.credentials import Credentials, Keyring, Principal
from kubelambda.launch import serving

KEYS = Credentials(
    "AKIATESTTESTTEST0002", "t" * 40, "team-key", Principal(name="bob", namespace="team-b")
)
BODY_IDLE_SECONDS = 0.5
BUDGET = 1000
INVOKE = "/2015-03-31/functions/f/invocations"


@dataclass
class Handled:
    principal: Principal
    path: str
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


class RecordingInvokeApp(InvokeApp):
    """``handle`` records and echoes the body; ``pause`` holds each answer a while."""

    def __init__(self) -> None:
        super().__init__(invoker=None, producer=None)  # type: ignore[arg-type]
        self.handled: list[Handled] = []
        self.pause = 0.0
        self.crash = False

    async def handle(
        self,
        principal: Principal,
        path: str,
        query_string: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
    ) -> Reply:
        self.handled.append(Handled(principal, path, query_string, list(headers), body))
        await asyncio.sleep(self.pause)
        if self.crash:
            raise RuntimeError("handler bug")
        return Reply(200, [(b"x-amzn-requestid", b"rid-%d" % len(self.handled))], body)


class CountingGateway(Gateway):
    """Counts the HTTP requests that reach the gateway through ASGI."""

    asgi_paths: list[str]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.asgi_paths.append(scope["path"])
        await super().__call__(scope, receive, send)


async def management(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    headers = [(b"content-length", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"management"})


@dataclass
class Served:
    port: int
    invoke: RecordingInvokeApp
    gateway: CountingGateway = field(repr=False)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    invoke = RecordingInvokeApp()
    gateway = CountingGateway(
        management=management,
        invoke_app=invoke,
        authenticator=Authenticator(Keyring([KEYS])),
        registry=CollectorRegistry(),
        body_budget=BUDGET,
    )
    gateway.asgi_paths = []
    listener = serving.bind("127.0.0.1", 0)
    config = uvicorn.Config(
        gateway,
        log_config=None,
        lifespan="off",
        http=serving.http_protocol(gateway, header_timeout=5, body_idle_timeout=BODY_IDLE_SECONDS),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    yield Served(listener.getsockname()[1], invoke, gateway)
    server.should_exit = True
    await task
    listener.close()


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def post(
    body: bytes = b"{}",
    *,
    path: str = INVOKE,
    key: str = KEYS.api_key,
    extra: Sequence[str] = (),
    version: str = "1.1",
    length: int | None = None,
) -> bytes:
    lines = [
        f"POST {path} HTTP/{version}",
        "Host: gateway",
        f"Authorization: Bearer {key}",
        f"Content-Length: {len(body) if length is None else length}",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Response(int(status_line.split()[1]), headers, body)


Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Opens client connections, and closes them all after the test."""
    writers: list[asyncio.StreamWriter] = []

    async def open_one(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield open_one
    for writer in writers:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (within a few seconds)."""
    try:
        return await asyncio.wait_for(reader.read(), 5) == b""
    except (ConnectionResetError, TimeoutError):
        return False


async def test_plain_invokes_are_answered_without_an_asgi_cycle(
    connect: Connect, served: Served
) -> None:
    reader, writer = await connect(served.port)
    for n in range(3):
        writer.write(post(b'{"n": %d}' % n, path=INVOKE + "?Qualifier=live"))
        answer = await read_response(reader)
        assert (answer.status, answer.body) == (200, b'{"n": %d}' % n)
        assert answer.headers["x-amzn-requestid"] == f"rid-{n + 1}"
        assert answer.headers["content-length"] == str(len(answer.body))
    assert served.gateway.asgi_paths == []
    first = served.invoke.handled[0]
    assert (first.path, first.query_string) == (INVOKE, b"Qualifier=live")
    assert first.principal.namespace == "team-b"
    assert (b"authorization", f"Bearer {KEYS.api_key}".encode()) in first.headers


async def test_pipelined_requests_of_both_kinds_are_answered_in_order(
    connect: Connect, served: Served
) -> None:
    served.invoke.pause = 0.05
    reader, writer = await connect(served.port)
    management_request = b"GET /2015-03-31/functions HTTP/1.1\r\nHost: gateway\r\n"
    management_request += f"Authorization: Bearer {KEYS.api_key}\r\n\r\n".encode()
    writer.write(post(b'"first"') + management_request + post(b'"third"'))
    answers = [await read_response(reader) for _ in range(3)]
    assert [a.body for a in answers] == [b'"first"', b"management", b'"third"']
    assert served.gateway.asgi_paths == ["/2015-03-31/functions"]


@pytest.mark.parametrize(
    ("request_bytes", "why"),
    [
        (
            (
                f"POST {INVOKE} HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {KEYS.api_key}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n4\r\n{}{}\r\n0\r\n\r\n"
            ).encode(),
            "chunked: no length known up front",
        ),
        (post(b"{}", path="/2015-03-31/functions/%66/invocations"), "percent-escapes"),
        (post(b"{}", extra=["Expect: 100-continue"]), "the client waits for 100 Continue"),
    ],
)
async def test_requests_the_direct_path_declines_are_answered_through_asgi(
    connect: Connect, served: Served, request_bytes: bytes, why: str
) -> None:
    reader, writer = await connect(served.port)
    writer.write(request_bytes)
    answer = await read_response(reader)
    if answer.status == 100:
        answer = await read_response(reader)
    assert answer.status == 200, why
    assert served.gateway.asgi_paths == [INVOKE], why
    assert served.invoke.handled[0].path == INVOKE


@pytest.mark.parametrize("expect", [[], ["Expect: 100-continue"]], ids=["plain", "expect"])
async def test_a_body_far_over_the_limit_is_refused_at_once_unread(
    connect: Connect, served: Served, expect: list[str]
) -> None:
    reader, writer = await connect(served.port)
    # Only the headers: the answer must not wait for a body (nor invite it with a
    # 100 Continue) that would be dropped unread anyway.
    writer.write(post(b"", length=INVOKE_BODY_LIMIT + 64 * 1024 * 1024, extra=expect))
    answer = await read_response(reader)
    assert answer.status == 413
    assert json.loads(answer.body)["__type"] == "RequestEntityTooLargeException"
    assert await closed(reader)
    assert served.invoke.handled == []


async def test_refused_credentials_answer_at_once_and_close_an_unread_body(
    connect: Connect,
    served: Served,
) -> None:
    reader, writer = await connect(served.port)
    writer.write(post(b"", key="not-a-key", length=10))  # the body is never sent
    answer = await read_response(reader)
    assert answer.status == 403
    assert json.loads(answer.body)["__type"] == "UnrecognizedClientException"
    assert answer.headers["connection"] == "close"
    assert await closed(reader)
    assert served.invoke.handled == []
    assert served.gateway.asgi_paths == []


async def test_a_body_being_read_counts_in_the_budget_until_its_client_leaves(
    connect: Connect,
    served: Served,
) -> None:
    held_reader, held = await connect(served.port)
    held.write(post(b"x" * 10, length=900))  # 890 bytes still to come
    await held.drain()
    await asyncio.sleep(0.1)
    reader, writer = await connect(served.port)
    writer.write(post(b"y" * 200))
    answer = await read_response(reader)
    assert answer.status == 429
    assert answer.headers["connection"] == "close"
    held.close()
    assert await closed(held_reader)
    reader, writer = await connect(served.port)
    writer.write(post(b"z" * 900))
    assert (await read_response(reader)).status == 200
    assert [h.body for h in served.invoke.handled] == [b"z" * 900]


async def test_a_direct_invoke_whose_body_stops_coming_is_cut_off(
    connect: Connect, served: Served
) -> None:
    reader, writer = await connect(served.port)
    writer.write(post(b"ab", length=4))
    started = asyncio.get_running_loop().time()
    assert await closed(reader)
    assert asyncio.get_running_loop().time() - started < BODY_IDLE_SECONDS + 1.0
    assert served.invoke.handled == []


async def test_an_http_1_0_invoke_closes_after_its_answer(connect: Connect, served: Served) -> None:
    reader, writer = await connect(served.port)
    writer.write(post(b"[1]", version="1.0"))
    answer = await read_response(reader)
    assert (answer.status, answer.body, answer.headers["connection"]) == (200, b"[1]", "close")
    assert await closed(reader)


async def test_a_crash_behind_the_direct_path_is_a_service_error(
    connect: Connect, served: Served, caplog: Any
) -> None:
    served.invoke.crash = True
    reader, writer = await connect(served.port)
    writer.write(post())
    answer = await read_response(reader)
    assert answer.status == 500
    assert json.loads(answer.body)["__type"] == "ServiceException"
    assert "direct invoke crashed" in caplog.text
    writer.write(post())  # the connection still serves
    assert (await read_response(reader)).status == 500
