"""The composition (``gateway.app``): routing table, body limits, authentication and the
hand-off of body and caller, driven with in-memory ASGI messages."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubelambda_agent import protocol
from prometheus_client import CollectorRegistry

from gateway.app import (
    ASYNC_INVOKE_BODY_LIMIT,
    INVOKE_BODY_LIMIT,
    MANAGEMENT_BODY_LIMIT,
    DirectInvoke,
    Gateway,
    Refusal,
)
from gateway.auth import Authenticator
from gateway.auth.request import BODY_KEY, PRINCIPAL_KEY
from kubelambda.credentials import Credentials, Keyring, Principal

KEYS = Credentials("AKIATESTTESTTEST0001", "s" * 40, "api-key")
TEAM_B = Credentials(
    "AKIATESTTESTTEST0002", "t" * 40, "team-b-key", Principal(name="bob", namespace="team-b")
)
AUTH = [(b"authorization", b"Bearer api-key")]
LIMIT = INVOKE_BODY_LIMIT


def named_app(name: str, calls: list[tuple[str, dict[str, Any]]]):
    async def app(scope, receive, send):
        calls.append((name, scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": name.encode()})

    return app


def gateway(calls) -> Gateway:
    return Gateway(
        management=named_app("management", calls),
        invoke_app=named_app("invoke", calls),
        authenticator=Authenticator(Keyring([KEYS, TEAM_B])),
        registry=CollectorRegistry(),
    )


async def call(app, method, path, *, headers=(), chunks=(b"",)):
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


@pytest.mark.parametrize(
    ("method", "path", "target"),
    [
        ("POST", "/2015-03-31/functions/f/invocations", "invoke"),
        (
            "POST",
            "/2015-03-31/functions/arn:aws:lambda:us-east-1:1:function:f/invocations",
            "invoke",
        ),
        ("GET", "/2015-03-31/functions/f/invocations", "management"),
        ("POST", "/2015-03-31/functions/f/invocations/more", "management"),
        ("POST", "/2015-03-31/functions//invocations", "management"),
        ("POST", "/2015-03-31/functions", "management"),
        ("GET", "/kubelambda/code/x.zip", "management"),
    ],
)
async def test_requests_reach_the_right_app(method, path, target):
    calls = []
    status, _, body = await call(gateway(calls), method, path, headers=AUTH)
    assert (status, body.decode()) == (200, target)
    assert [name for name, _ in calls] == [target]


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_open_routes_need_no_credentials(path):
    calls = []
    status, _, _ = await call(gateway(calls), "GET", path)
    assert status == 200
    assert calls == []


async def test_code_links_pass_without_credentials():
    calls = []
    status, _, _ = await call(gateway(calls), "GET", "/kubelambda/code/x.zip")
    assert (status, [name for name, _ in calls]) == (200, ["management"])


async def test_invoke_app_gets_the_body_and_principal():
    calls = []
    await call(
        gateway(calls),
        "POST",
        "/2015-03-31/functions/f/invocations",
        headers=AUTH,
        chunks=(b'{"a":', b" 1}"),
    )
    ((_, scope),) = calls
    assert scope[BODY_KEY] == b'{"a": 1}'
    assert scope[PRINCIPAL_KEY] == KEYS.principal


@pytest.mark.parametrize("path", ["/2015-03-31/functions/f/invocations", "/2015-03-31/functions"])
async def test_each_app_gets_the_principal_its_key_is_bound_to(path):
    calls = []
    await call(gateway(calls), "POST", path, headers=[(b"authorization", b"Bearer team-b-key")])
    ((_, scope),) = calls
    assert scope[PRINCIPAL_KEY] == Principal(name="bob", namespace="team-b")


def test_the_invoke_limit_is_lambdas_6_mib_and_the_agents():
    assert LIMIT == 6 * 1024 * 1024 == protocol.MAX_EVENT_BYTES


@pytest.mark.parametrize(
    ("headers", "chunks", "status"),
    [
        ([(b"content-length", str(LIMIT).encode())], (b"x" * LIMIT,), 200),
        ([(b"content-length", str(LIMIT + 1).encode())], (b"x" * (LIMIT + 1),), 413),
        ([], (b"x" * (LIMIT - 4), b"x" * 4), 200),
        ([], (b"x" * (LIMIT - 4), b"x" * 5), 413),
        ([(b"content-length", b"many")], (b"x",), 400),
    ],
    ids=["declared-at", "declared-over", "streamed-at", "streamed-over", "bad-length"],
)
async def test_invoke_body_limit(headers, chunks, status):
    calls = []
    app = gateway(calls)
    got, response_headers, body = await call(
        app, "POST", "/2015-03-31/functions/f/invocations", headers=AUTH + headers, chunks=chunks
    )
    assert got == status
    assert bool(calls) is (status == 200)
    if status == 413:
        assert response_headers[b"x-amzn-errortype"] == b"RequestEntityTooLargeException"
        assert json.loads(body)["message"].startswith(
            f"Request must be smaller than {LIMIT} bytes for the InvokeFunction operation"
        )


async def test_management_bodies_may_be_larger_than_invoke_ones_but_not_unbounded():
    calls = []
    at_invoke_limit = (b"x" * (LIMIT + 1),)
    status, _, _ = await call(
        gateway(calls), "POST", "/2015-03-31/functions", headers=AUTH, chunks=at_invoke_limit
    )
    assert status == 200
    declared = [(b"content-length", str(MANAGEMENT_BODY_LIMIT + 1).encode())]
    status, headers, _ = await call(
        gateway(calls), "POST", "/2015-03-31/functions", headers=AUTH + declared
    )
    assert (status, headers[b"x-amzn-errortype"]) == (413, b"RequestEntityTooLargeException")
    assert [name for name, _ in calls] == ["management"]


async def test_requests_without_credentials_never_reach_an_app():
    calls = []
    status, headers, _ = await call(gateway(calls), "POST", "/2015-03-31/functions/f/invocations")
    assert status == 403
    assert headers[b"x-amzn-errortype"] == b"MissingAuthenticationTokenException"
    assert calls == []


async def test_management_answers_get_a_request_id():
    calls = []
    _, headers, _ = await call(gateway(calls), "GET", "/2015-03-31/functions", headers=AUTH)
    assert len(headers[b"x-amzn-requestid"]) == 36


@pytest.mark.parametrize(
    ("size", "status"), [(ASYNC_INVOKE_BODY_LIMIT, 200), (ASYNC_INVOKE_BODY_LIMIT + 1, 413)]
)
async def test_an_event_invocation_is_limited_to_one_megabyte(size, status):
    calls = []
    headers = [*AUTH, (b"x-amz-invocation-type", b"Event"), (b"content-length", str(size).encode())]
    got, response_headers, _ = await call(
        gateway(calls),
        "POST",
        "/2015-03-31/functions/f/invocations",
        headers=headers,
        chunks=(b"x" * size,),
    )
    assert got == status
    if status == 413:
        assert response_headers[b"x-amzn-errortype"] == b"RequestEntityTooLargeException"
        assert calls == []


def test_the_event_limit_is_lambdas_one_megabyte():
    assert ASYNC_INVOKE_BODY_LIMIT == 1_048_576


def counting(chunks: list[bytes]) -> tuple[list[int], Any]:
    """A ``receive`` over ``chunks`` that counts its calls (in a one-item list)."""
    received = [0]
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive():
        received[0] += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return received, receive


async def answer(app, receive, headers, path="/2015-03-31/functions"):
    sent: list[dict[str, Any]] = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": list(headers),
    }
    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"])


SIGV4_UNKNOWN_KEY = (
    b"AWS4-HMAC-SHA256 Credential=AKIAUNKNOWNUNKNOWN00/20260102/us-east-1/lambda/aws4_request, "
    b"SignedHeaders=host;x-amz-date, Signature=" + b"0" * 64
)
SIGV4_KNOWN_KEY = SIGV4_UNKNOWN_KEY.replace(b"AKIAUNKNOWNUNKNOWN00", KEYS.access_key_id.encode())


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ([], b"MissingAuthenticationTokenException"),
        ([(b"authorization", b"Bearer nope")], b"UnrecognizedClientException"),
        ([(b"authorization", b"AWS4-HMAC-SHA256 garbage")], b"InvalidSignatureException"),
        (
            [(b"authorization", SIGV4_UNKNOWN_KEY), (b"x-amz-date", b"20260102T030405Z")],
            b"UnrecognizedClientException",
        ),
        ([(b"authorization", SIGV4_KNOWN_KEY)], b"InvalidSignatureException"),  # no date
        (
            [(b"authorization", SIGV4_KNOWN_KEY), (b"x-amz-date", b"20260102T030405Z")],
            b"InvalidSignatureException",  # signed in January 2026: far too skewed
        ),
    ],
    ids=["none", "bearer", "malformed", "unknown-key", "no-date", "skewed"],
)
@pytest.mark.parametrize("path", ["/2015-03-31/functions", "/2015-03-31/functions/f/invocations"])
async def test_what_headers_refuse_is_refused_before_the_body_is_read(headers, code, path):
    calls = []
    received, receive = counting([b"x" * 1000, b"x" * 1000])
    status, response_headers = await answer(
        gateway(calls), receive, [*headers, (b"content-length", b"2000")], path
    )
    assert (status, response_headers[b"x-amzn-errortype"]) == (403, code)
    assert received == [0]
    # The body was never read: the connection cannot be reused for another request.
    assert response_headers[b"connection"] == b"close"
    assert calls == []


def budgeted(calls, budget: int) -> Gateway:
    return Gateway(
        management=named_app("management", calls),
        invoke_app=named_app("invoke", calls),
        authenticator=Authenticator(Keyring([KEYS, TEAM_B])),
        registry=CollectorRegistry(),
        body_budget=budget,
    )


async def test_bodies_past_the_gateway_budget_are_refused_unread():
    calls = []
    app = budgeted(calls, 1000)
    first_read = asyncio.Event()
    release = asyncio.Event()

    async def slow_receive():
        first_read.set()
        await release.wait()
        return {"type": "http.request", "body": b"x" * 600, "more_body": False}

    length = [(b"content-length", b"600")]
    slow = asyncio.create_task(answer(app, slow_receive, AUTH + length))
    await first_read.wait()
    # 600 bytes are being read: another 600 would pass the budget of 1000.
    received, receive = counting([b"x" * 600])
    status, headers = await answer(app, receive, AUTH + length)
    assert (status, headers[b"x-amzn-errortype"]) == (429, b"TooManyRequestsException")
    assert received == [0]
    # A body that fits the rest of the budget is read.
    received, receive = counting([b"x" * 400])
    status, _ = await answer(app, receive, [*AUTH, (b"content-length", b"400")])
    assert status == 200
    release.set()
    assert (await slow)[0] == 200
    # Once read, a body no longer counts: the budget is whole again.
    received, receive = counting([b"x" * 1000])
    status, _ = await answer(app, receive, [*AUTH, (b"content-length", b"1000")])
    assert status == 200


async def test_a_streamed_body_past_the_budget_is_refused():
    calls = []
    _, receive = counting([b"x" * 600, b"x" * 600])
    status, headers = await answer(budgeted(calls, 1000), receive, AUTH)
    assert (status, headers[b"x-amzn-errortype"]) == (429, b"TooManyRequestsException")
    assert calls == []


class Announcements:
    def __init__(self) -> None:
        self.heard: list[dict[str, str]] = []

    def announced(self, **fields: str) -> None:
        self.heard.append(fields)


ANNOUNCEMENT = {"namespace": "ns", "pod": "p", "ip": "10.244.0.9", "proof": "ab" * 32}


async def test_a_pods_announcement_needs_no_credentials_and_reaches_its_listener():
    calls = []
    announcements = Announcements()
    app = Gateway(
        management=named_app("management", calls),
        invoke_app=named_app("invoke", calls),
        authenticator=Authenticator(Keyring([KEYS])),
        registry=CollectorRegistry(),
        announcements=announcements,
    )
    body = json.dumps(ANNOUNCEMENT).encode()
    status, _, answer = await call(app, "POST", "/kubelambda/instances/ready", chunks=(body,))
    assert (status, answer) == (202, b"{}")
    assert announcements.heard == [ANNOUNCEMENT]
    assert calls == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", json.dumps({**ANNOUNCEMENT, "ip": 7}).encode(), b'{"pod": "p"}'],
)
async def test_a_malformed_announcement_is_refused(body):
    announcements = Announcements()
    app = Gateway(
        management=named_app("management", []),
        invoke_app=named_app("invoke", []),
        authenticator=Authenticator(Keyring([KEYS])),
        registry=CollectorRegistry(),
        announcements=announcements,
    )
    status, _, answer = await call(app, "POST", "/kubelambda/instances/ready", chunks=(body,))
    assert status == 400
    assert json.loads(answer)["Type"] == "User"
    assert announcements.heard == []


async def test_where_no_pod_announces_the_route_is_not_open():
    calls = []
    status, _, _ = await call(gateway(calls), "POST", "/kubelambda/instances/ready")
    assert status == 403
    assert calls == []


# --- the direct invoke path (Gateway.direct_invoke) ----------------------------------

INVOKE_PATH = b"/2015-03-31/functions/f/invocations"


def invoke_headers(length: bytes = b"2", *more: tuple[bytes, bytes]) -> list:
    return [*AUTH, (b"content-length", length), *more]


@pytest.mark.parametrize(
    ("raw_path", "headers", "why"),
    [
        (b"/2015-03-31/functions/f/invocations/more", invoke_headers(), "not the Invoke path"),
        (b"/2015-03-31/functions/%66/invocations", invoke_headers(), "percent-escapes"),
        (INVOKE_PATH, AUTH, "no Content-Length"),
        (INVOKE_PATH, invoke_headers(b"2", (b"transfer-encoding", b"chunked")), "chunked"),
        (INVOKE_PATH, invoke_headers(b"2", (b"content-length", b"2")), "two lengths"),
        (INVOKE_PATH, invoke_headers(b"-1"), "a length that is no number"),
        (INVOKE_PATH, invoke_headers(str(LIMIT + 1).encode()), "past the Invoke limit"),
        (
            INVOKE_PATH,
            invoke_headers(
                str(ASYNC_INVOKE_BODY_LIMIT + 1).encode(), (b"x-amz-invocation-type", b"Event")
            ),
            "past the Event limit",
        ),
    ],
)
def test_requests_the_direct_path_leaves_to_asgi(raw_path, headers, why):
    assert gateway([]).direct_invoke(raw_path, b"", headers) is None, why


def test_a_plain_invoke_is_taken_and_counted_in_the_budget_from_its_turn():
    app = Gateway(
        management=named_app("management", []),
        invoke_app=named_app("invoke", []),
        authenticator=Authenticator(Keyring([KEYS])),
        registry=CollectorRegistry(),
        body_budget=100,
    )
    first = app.direct_invoke(INVOKE_PATH, b"", invoke_headers(b"60"))
    second = app.direct_invoke(INVOKE_PATH, b"", invoke_headers(b"60"))
    assert isinstance(first, DirectInvoke) and isinstance(second, DirectInvoke)
    assert first.admit() is None
    refusal = second.admit()
    assert isinstance(refusal, Refusal) and refusal.close
    assert (refusal.reply.status, json.loads(refusal.reply.body)["__type"]) == (
        429,
        "TooManyRequestsException",
    )
    first.abandon()
    assert second.admit() is None


@pytest.mark.parametrize(("length", "closes"), [(b"0", False), (b"2", True)])
def test_refused_credentials_are_answered_from_the_headers(length, closes):
    headers = [(b"authorization", b"Bearer not-a-key"), (b"content-length", length)]
    refusal = gateway([]).direct_invoke(INVOKE_PATH, b"", headers)
    assert isinstance(refusal, Refusal)
    assert refusal.reply.status == 403
    assert refusal.close is closes  # an unread body cannot be followed by another request
