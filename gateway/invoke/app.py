"""The Invoke endpoint as a raw ASGI app: ``POST /2015-03-31/functions/{Fn}/invocations``.

The gateway's composition (``gateway.app``) authenticates, reads and size-checks the
body, puts it in ``scope["kubelambda.body"]`` and calls this app; served alone (tests,
the benchmark) it reads the body itself within the same limit. It stays out of framework
routing and dependency injection on purpose: on this path they cost more than the whole
proxy hop (DESIGN.md §4). It parses, delegates to ``Invoker``, and writes either the
invoke reply or a Lambda error from ``kubelambda.errors``.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from gateway.domain.invocation import InvokeOptions
from gateway.invoke.invoker import Invoker, InvokeReply
from gateway.invoke.settings import InvokeSettings
from gateway.kits.http_pool import ConnectionPool
from gateway.metrics import GatewayMetrics
from kubelambda import errors
from kubelambda.names import parse_function_ref
from kubelambda.ports import Catalog, InstanceBackend, ScaleSignals

__all__ = ["BODY_SCOPE_KEY", "InvokeApp", "is_invoke_path"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

BODY_SCOPE_KEY = "kubelambda.body"
_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"
_WANTED = {
    b"x-amz-invocation-type": "invocation_type",
    b"x-amz-log-type": "log_type",
    b"x-amz-client-context": "client_context",
    b"x-amzn-trace-id": "trace_id",
}


def is_invoke_path(path: str) -> bool:
    """Whether a (percent-decoded) path is an Invoke call; for the composition's router."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return False
    name = path[len(_PREFIX) : -len(_SUFFIX)]
    return bool(name) and "/" not in name


class InvokeApp:
    """ASGI app for Invoke. Give it each new catalog with ``on_catalog``; ``aclose`` it
    at shutdown to close its connections to instances."""

    def __init__(
        self,
        *,
        backend: InstanceBackend,
        signals: ScaleSignals,
        metrics: GatewayMetrics,
        settings: InvokeSettings,
        catalog: Catalog | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._pool = ConnectionPool(
            max_idle_per_endpoint=settings.max_idle_connections_per_instance,
            idle_ttl=settings.idle_connection_ttl_seconds,
            connect_timeout=settings.connect_timeout_seconds,
        )
        self._invoker = Invoker(
            backend=backend,
            signals=signals,
            metrics=metrics,
            settings=settings,
            pool=self._pool,
            draw=draw,
        )
        if catalog is not None:
            self._invoker.on_catalog(catalog)

    def on_catalog(self, catalog: Catalog) -> None:
        self._invoker.on_catalog(catalog)

    async def aclose(self) -> None:
        self._invoker.close()
        await self._pool.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"InvokeApp serves HTTP only, not {scope['type']!r}")
        request_id = str(uuid.uuid4())
        try:
            reply = await self._handle(scope, receive, request_id)
        except errors.LambdaError as exc:
            reply = _error_reply(exc, request_id)
        except Exception:
            log.exception("invoke crashed request_id=%s", request_id)
            reply = _error_reply(errors.ServiceError("Internal error."), request_id)
        # A length, not chunked framing: one body write instead of a chunk and a terminator.
        headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _handle(self, scope: Scope, receive: Receive, request_id: str) -> InvokeReply:
        path: str = scope["path"]
        if scope["method"] != "POST" or not is_invoke_path(path):
            raise errors.UnknownOperation("Unknown operation.")
        qualifier = None
        if scope["query_string"]:
            values = parse_qs(scope["query_string"].decode("latin-1")).get("Qualifier")
            qualifier = values[-1] if values else None
        ref = parse_function_ref(path[len(_PREFIX) : -len(_SUFFIX)], qualifier)
        found: dict[str, str] = {}
        for name, value in scope["headers"]:
            field = _WANTED.get(name.lower())
            if field is not None:
                found[field] = value.decode("latin-1")
        options = InvokeOptions.from_headers(
            invocation_type=found.get("invocation_type"),
            log_type=found.get("log_type"),
            client_context=found.get("client_context"),
        )
        body = scope.get(BODY_SCOPE_KEY)
        if body is None:
            body = await _read_body(receive, self._settings.max_request_bytes)
        return await self._invoker.invoke(
            ref, options, body, request_id=request_id, trace_id=found.get("trace_id")
        )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.InvalidRequestContent("The client closed the connection mid-request.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise errors.RequestTooLarge(
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation"
            )
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _error_reply(exc: errors.LambdaError, request_id: str) -> InvokeReply:
    status, headers, body = exc.to_wire()
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"x-amzn-requestid", request_id.encode()))
    return InvokeReply(status, raw, body)
