"""The gateway's ASGI composition: open routes, the invoke hot path, the management API.

Built by the launch package (``kubelambda.launch.gateway``) and served by uvicorn. One
small ASGI callable looks at each request once:

    GET  /healthz, GET /metrics                      open, answered here
    POST /2015-03-31/functions/{Fn}/invocations     headers authenticated
                                                     -> body read (<= 6 MiB, 1 MB for Event)
                                                     -> signature checked
                                                     -> ``invoke_app`` (no framework routing)
    GET  /kubelambda/code/...                        open: presigned code links (FastAPI)
    POST /kubelambda/instances/ready                 open: a pod's agent announcing itself
                                                     (Kubernetes mode; the proof is checked
                                                     by ``announcements``), 202
    anything else                                    headers authenticated -> body read
                                                     (<= ~70 MB) -> signature checked
                                                     -> the FastAPI management app, the
                                                     body labelled JSON whatever its
                                                     Content-Type

A server may also answer plain Invoke requests without an ASGI cycle
(``direct_invoke``; ``kubelambda.launch.invoke_edge`` does, under uvicorn): the same
checks and the same ``InvokeApp.handle``, for the requests that need nothing the ASGI
path has that it lacks (a known length within the limit, no percent-escapes in the
path); all others come here as ASGI.

This is the one place request bodies are read, and only once the headers name a known
caller with a current date (``Authenticator.screen``): a refusal from the headers costs no
byte of the body, and closes the connection. Bodies are refused with 413 from
``Content-Length`` before a byte is read, or as soon as a streamed body passes the limit;
with 429 (unread) when the bytes of all bodies being read at once would pass the
gateway's ``body_budget``. The read body is
handed on in ``scope[BODY_KEY]`` and the caller in ``scope[PRINCIPAL_KEY]`` (keys of
``gateway.auth.request``). Lifespan events go to the management app.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from kubelambda_agent import protocol
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Authenticator, RawRequest
from gateway.auth.authenticator import Screened
from gateway.auth.request import BODY_KEY, PRINCIPAL_KEY
from gateway.domain import invocation
from gateway.invoke import app as invoke
from gateway.invoke.app import InvokeApp, Reply
from gateway.services.code_links import CODE_PATH_PREFIX
from kubelambda import errors
from kubelambda.ports.endpoints import InstanceAnnouncements

__all__ = [
    "ASYNC_INVOKE_BODY_LIMIT",
    "DEFAULT_BODY_BUDGET",
    "INVOKE_BODY_LIMIT",
    "MANAGEMENT_BODY_LIMIT",
    "DirectInvoke",
    "Gateway",
    "Refusal",
]

log = logging.getLogger(__name__)

# After refusing an oversized body, read and drop at most this much more of it, so a
# client still sending gets the 413 instead of a reset connection; past it, hang up.
_DISCARD_BUDGET = 16 * 1024 * 1024
# The Invoke payload limit is the agent's (Lambda's 6 MiB), so both sides agree; an Event
# invocation's is 1 MB.
INVOKE_BODY_LIMIT = protocol.MAX_EVENT_BYTES
ASYNC_INVOKE_BODY_LIMIT = invocation.MAX_ASYNC_PAYLOAD_BYTES
# A 50 MB zip, base64-encoded inside CreateFunction's JSON, with room to spare.
MANAGEMENT_BODY_LIMIT = 70_000_000
# An announcement is four short strings.
_ANNOUNCEMENT_LIMIT = 4096
# Bytes of bodies being read at once, all requests together: three uploads of the largest
# size, or some forty full invoke payloads.
DEFAULT_BODY_BUDGET = 256 * 1024 * 1024


class Gateway:
    """The composed ASGI callable (see the module docstring for the routing table)."""

    def __init__(
        self,
        *,
        management: ASGIApp,
        invoke_app: InvokeApp,
        authenticator: Authenticator,
        registry: CollectorRegistry,
        body_budget: int = DEFAULT_BODY_BUDGET,
        announcements: InstanceAnnouncements | None = None,
    ) -> None:
        self._management = management
        self._announcements = announcements
        self._invoke_app = invoke_app
        self._authenticator = authenticator
        self._registry = registry
        self._budget = _BodyBudget(body_budget)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._management(scope, receive, send)
            return
        if scope["type"] != "http":
            await send({"type": "websocket.close", "code": 1003})
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST" and invoke.is_invoke_path(path):
            await self._authenticated(
                self._invoke_app,
                scope,
                receive,
                send,
                limit=_limit_for(scope["headers"]),
                operation="InvokeFunction",
            )
        elif method == "GET" and path == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}', "application/json")
        elif method == "GET" and path == "/metrics":
            await _respond(send, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        elif path.startswith(CODE_PATH_PREFIX):
            await self._management(scope, receive, send)
        elif method == "POST" and path == protocol.ANNOUNCE_PATH and self._announcements:
            await self._announce(self._announcements, scope, receive, send)
        else:
            # The invoke app names its own request ids; management answers get one here,
            # which botocore reports as ResponseMetadata.RequestId.
            await self._authenticated(
                self._management,
                scope,
                receive,
                _with_request_id(send, str(uuid.uuid4())),
                limit=MANAGEMENT_BODY_LIMIT,
                operation="management",
                json_body=True,
            )

    def direct_invoke(
        self, raw_path: bytes, query_string: bytes, headers: list[tuple[bytes, bytes]]
    ) -> DirectInvoke | Refusal | None:
        """What the headers of a ``POST`` to ``raw_path`` decide for a server that answers
        Invoke requests itself, before a byte of the body: a ``DirectInvoke`` to ``admit``
        when its turn comes and answer once the body is read, a ``Refusal`` to send, or
        None when the request is not a plain Invoke (another path, percent-escapes in it,
        no Content-Length or one past the limit, a chunked body). The ASGI app answers
        those, with every refusal it knows. Header names are lower-case, as in ASGI."""
        if b"%" in raw_path:
            return None
        path = raw_path.decode("latin-1")
        if not invoke.is_invoke_path(path):
            return None
        declared = _plain_length(headers)
        if declared is None or declared > _limit_for(headers):
            return None
        request = RawRequest(
            method="POST", raw_path=raw_path, query_string=query_string, headers=headers, body=b""
        )
        try:
            screened = self._authenticator.screen(request)
        except errors.LambdaError as exc:
            return Refusal(invoke.error_reply(exc), close=declared > 0)
        return DirectInvoke(
            path=path,
            request=request,
            screened=screened,
            authenticator=self._authenticator,
            invoke_app=self._invoke_app,
            budget=self._budget,
            declared=declared,
        )

    async def _announce(
        self, announcements: InstanceAnnouncements, scope: Scope, receive: Receive, send: Send
    ) -> None:
        try:
            body = await self._read_body(
                scope, receive, limit=_ANNOUNCEMENT_LIMIT, operation="announcement"
            )
            fields = json.loads(body)
            announcement = {name: fields[name] for name in ("namespace", "pod", "ip", "proof")}
            if not all(isinstance(value, str) for value in announcement.values()):
                raise ValueError("every field is a string")
        except _Disconnected:
            return
        except _Unread as unread:
            await _respond_error(send, unread.error, close=True)
            return
        except errors.LambdaError as exc:
            await _respond_error(send, exc)
            return
        except (ValueError, KeyError, TypeError):
            message = "An announcement is a JSON object of namespace, pod, ip and proof"
            await _respond_error(send, errors.InvalidRequestContent(message))
            return
        announcements.announced(**announcement)
        # The same answer whatever the proof: nothing here tells a caller what is valid.
        await _respond(send, 202, b"{}", "application/json")

    async def _authenticated(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        limit: int,
        operation: str,
        json_body: bool = False,
    ) -> None:
        request = RawRequest(
            method=scope["method"],
            raw_path=scope.get("raw_path") or scope["path"].encode(),
            query_string=scope.get("query_string", b""),
            headers=scope["headers"],
            body=b"",
        )
        try:
            # Headers first: a request they refuse costs no byte of its body.
            screened = self._authenticator.screen(request)
        except errors.LambdaError as exc:
            await _respond_error(send, exc, close=_may_have_body(scope))
            return
        try:
            body = await self._read_body(scope, receive, limit=limit, operation=operation)
            principal = self._authenticator.confirm(screened, request.with_body(body))
        except _Unread as unread:
            log.info("request refused code=%s path=%s", unread.error.code, scope["path"])
            await _respond_error(send, unread.error, close=True)
            return
        except errors.LambdaError as exc:
            if not isinstance(exc, errors.AccessDenied):  # the authenticator logged those
                log.info("request refused code=%s path=%s", exc.code, scope["path"])
            await _respond_error(send, exc)
            return
        except _Disconnected:
            return
        inner = dict(scope)
        inner[BODY_KEY] = body
        inner[PRINCIPAL_KEY] = principal
        if json_body and body:
            inner["headers"] = _as_json(scope["headers"])
        await app(inner, _replay(body, receive), send)

    async def _read_body(
        self, scope: Scope, receive: Receive, *, limit: int, operation: str
    ) -> bytes:
        too_large = errors.RequestTooLarge(
            f"Request must be smaller than {limit} bytes for the {operation} operation"
        )
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _discard(
                receive, budget=_DISCARD_BUDGET if declared <= limit + _DISCARD_BUDGET else 0
            )
            raise too_large
        # A declared body is counted whole before it is read, a streamed one as it comes.
        reserved = 0
        try:
            if declared:
                self._budget.take(declared)
                reserved = declared
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _Disconnected
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await _discard(receive, budget=_DISCARD_BUDGET)
                    raise too_large
                if size > reserved:
                    self._budget.take(size - reserved)
                    reserved = size
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
        finally:
            self._budget.give(reserved)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An answer decided from the headers; ``close``: the body was left unread, so the
    connection cannot be read on."""

    reply: Reply
    close: bool


class DirectInvoke:
    """One plain Invoke request whose headers passed. From ``admit`` (when the server
    starts reading its body: a request pipelined behind another waits unread) its body
    counts in the gateway's body budget, until ``answer`` is called with it, or
    ``abandon`` (the client went away)."""

    def __init__(
        self,
        *,
        path: str,
        request: RawRequest,
        screened: Screened,
        authenticator: Authenticator,
        invoke_app: InvokeApp,
        budget: _BodyBudget,
        declared: int,
    ) -> None:
        self._path = path
        self._request = request
        self._screened = screened
        self._authenticator = authenticator
        self._invoke_app = invoke_app
        self._budget = budget
        self._declared = declared
        self._reserved = False

    def admit(self) -> Refusal | None:
        """Count the body in the budget, or the 429 (its body unread) past it."""
        try:
            self._budget.take(self._declared)
        except _Unread as unread:
            log.info("request refused code=%s path=%s", unread.error.code, self._path)
            return Refusal(invoke.error_reply(unread.error), close=True)
        self._reserved = True
        return None

    async def answer(self, body: bytes) -> Reply:
        """The response to the request with its whole ``body``."""
        self._give_back()  # read: no longer a body being received
        request = self._request.with_body(body)
        try:
            principal = self._authenticator.confirm(self._screened, request)
        except errors.LambdaError as exc:
            if not isinstance(exc, errors.AccessDenied):  # the authenticator logged those
                log.info("request refused code=%s path=%s", exc.code, self._path)
            return invoke.error_reply(exc)
        return await self._invoke_app.handle(
            principal, self._path, request.query_string, request.headers, body
        )

    def abandon(self) -> None:
        """The client went away before its body was read."""
        self._give_back()

    def _give_back(self) -> None:
        # Once; nothing to give before ``admit``.
        if self._reserved:
            self._reserved = False
            self._budget.give(self._declared)


class _Unread(Exception):
    """A request refused with (part of) its body unread: its connection must close."""

    def __init__(self, error: errors.LambdaError) -> None:
        super().__init__(error.message)
        self.error = error


class _BodyBudget:
    """Bytes of request bodies being read at once, gateway-wide. A body that would pass
    the budget is refused (429, unread) rather than buffered: bodies are read before their
    signature can be checked, so this is what bounds the memory a flood of large,
    unauthenticated-yet POSTs can take. One event loop: no lock."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._used = 0

    def take(self, size: int) -> None:
        if self._used + size > self._limit:
            raise _Unread(
                errors.TooManyRequests(
                    "Too many request bodies are being received at once. Retry the request.",
                    reason="CallerRateLimitExceeded",
                )
            )
        self._used += size

    def give(self, size: int) -> None:
        self._used -= size


def _limit_for(headers: list[tuple[bytes, bytes]]) -> int:
    # Decided from the header before a byte of the body is read.
    for name, value in headers:
        if name.lower() == b"x-amz-invocation-type":
            return ASYNC_INVOKE_BODY_LIMIT if value == b"Event" else INVOKE_BODY_LIMIT
    return INVOKE_BODY_LIMIT


def _plain_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The body's length when one Content-Length gives it and nothing else frames it."""
    length = None
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and length is not None):
            return None
        if name == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
    return length


class _Disconnected(Exception):
    """The client went away before its body was read."""


def _as_json(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    # Lambda's management API is REST-JSON: a body is JSON whatever its Content-Type says
    # (botocore always sends application/json; curl -d sends a form type, or none).
    kept = [(name, value) for name, value in headers if name != b"content-type"]
    return [*kept, (b"content-type", b"application/json")]


def _may_have_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError as exc:
                raise errors.InvalidRequestContent("Invalid Content-Length header") from exc
    return None


async def _discard(receive: Receive, *, budget: int) -> None:
    # With no budget nothing is read, not even a first chunk: a client that sent only
    # its headers gets its answer now (and one waiting for 100 Continue is not invited).
    dropped = 0
    while dropped < budget:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _with_request_id(send: Send, request_id: str) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", ()), (b"x-amzn-requestid", request_id.encode())]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_id


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields the already-read body once, then waits on the client
    (so the inner app still learns of a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _respond_error(send: Send, error: errors.LambdaError, *, close: bool = False) -> None:
    status, headers, body = error.to_wire()
    encoded: list[tuple[bytes, bytes]] = [
        (name.lower().encode(), value.encode()) for name, value in headers.items()
    ]
    encoded.append((b"content-length", str(len(body)).encode()))
    if close:
        # The body was left unread: the server must not read it as the next request.
        encoded.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
