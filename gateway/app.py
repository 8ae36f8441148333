"""The gateway's ASGI composition: open routes, the invoke hot path, the management API.

Built by the launch package (``kubelambda.launch.gateway``) and served by uvicorn. One
small ASGI callable looks at each request once:

    GET  /healthz, GET /metrics                      open, answered here
    POST /2015-03-31/functions/{Fn}/invocations     body read (<= 6 MiB, 1 MB for Event)
                                                     -> authenticate
                                                     -> ``invoke_app`` (no framework routing)
    GET  /kubelambda/code/...                        open: presigned code links (FastAPI)
    anything else                                    body read (<= ~70 MB) -> authenticate
                                                     -> the FastAPI management app

This is the one place request bodies are read: refused with 413 from ``Content-Length``
before a byte is read, or as soon as a streamed body passes the limit; the read body is
handed on in ``scope[BODY_KEY]`` and the caller in ``scope[PRINCIPAL_KEY]`` (keys of
``gateway.auth.request``). Lifespan events go to the management app.
"""

from __future__ import annotations

import logging
import uuid

from kubelambda_agent import protocol
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import Authenticator, RawRequest
from gateway.auth.request import BODY_KEY, PRINCIPAL_KEY
from gateway.domain import invocation
from gateway.invoke import app as invoke
from gateway.services.code_links import CODE_PATH_PREFIX
from kubelambda import errors

__all__ = ["ASYNC_INVOKE_BODY_LIMIT", "INVOKE_BODY_LIMIT", "MANAGEMENT_BODY_LIMIT", "Gateway"]

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


class Gateway:
    """The composed ASGI callable (see the module docstring for the routing table)."""

    def __init__(
        self,
        *,
        management: ASGIApp,
        invoke_app: ASGIApp,
        authenticator: Authenticator,
        registry: CollectorRegistry,
    ) -> None:
        self._management = management
        self._invoke_app = invoke_app
        self._authenticator = authenticator
        self._registry = registry

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
                limit=_invoke_body_limit(scope),
                operation="InvokeFunction",
            )
        elif method == "GET" and path == "/healthz":
            await _respond(send, 200, b'{"status":"ok"}', "application/json")
        elif method == "GET" and path == "/metrics":
            await _respond(send, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)
        elif path.startswith(CODE_PATH_PREFIX):
            await self._management(scope, receive, send)
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
            )

    async def _authenticated(
        self,
        app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        limit: int,
        operation: str,
    ) -> None:
        try:
            body = await _read_body(scope, receive, limit=limit, operation=operation)
            principal = self._authenticator.authenticate(
                RawRequest(
                    method=scope["method"],
                    raw_path=scope.get("raw_path") or scope["path"].encode(),
                    query_string=scope.get("query_string", b""),
                    headers=scope["headers"],
                    body=body,
                )
            )
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
        await app(inner, _replay(body, receive), send)


def _invoke_body_limit(scope: Scope) -> int:
    # Decided from the header before a byte of the body is read.
    for name, value in scope["headers"]:
        if name.lower() == b"x-amz-invocation-type":
            return ASYNC_INVOKE_BODY_LIMIT if value == b"Event" else INVOKE_BODY_LIMIT
    return INVOKE_BODY_LIMIT


class _Disconnected(Exception):
    """The client went away before its body was read."""


async def _read_body(scope: Scope, receive: Receive, *, limit: int, operation: str) -> bytes:
    too_large = errors.RequestTooLarge(
        f"Request must be smaller than {limit} bytes for the {operation} operation"
    )
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        await _discard(
            receive, budget=_DISCARD_BUDGET if declared <= limit + _DISCARD_BUDGET else 0
        )
        raise too_large
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
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError as exc:
                raise errors.InvalidRequestContent("Invalid Content-Length header") from exc
    return None


async def _discard(receive: Receive, *, budget: int) -> None:
    dropped = 0
    while dropped <= budget:
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


async def _respond_error(send: Send, error: errors.LambdaError) -> None:
    status, headers, body = error.to_wire()
    encoded: list[tuple[bytes, bytes]] = [
        (name.lower().encode(), value.encode()) for name, value in headers.items()
    ]
    encoded.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})
