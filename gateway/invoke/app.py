"""The Invoke endpoint as a raw ASGI app: ``POST /2015-03-31/functions/{Fn}/invocations``.

The gateway's composition (``gateway.app``) matches the path with ``is_invoke_path``,
reads and size-checks the body, authenticates, and hands the request on with the body
and the caller: through ASGI (``scope[BODY_KEY]``, ``scope[PRINCIPAL_KEY]``, keys of
``gateway.auth.request``), or straight to ``InvokeApp.handle`` from the server's direct
invoke path (``Gateway.direct_invoke``), which skips the ASGI cycle. It stays out of
framework routing and dependency injection on purpose: on this path they cost more than
the whole proxy hop (DESIGN.md §4). It parses the request into an ``InvokeRequest``,
hands it to the use case (or, for an Event invocation, to the event producer), and
renders the ``InvokeResult`` (or a Lambda error) as Lambda's response (a ``Reply``): the
only place that knows the Invoke HTTP headers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from gateway.auth.request import BODY_KEY, PRINCIPAL_KEY
from gateway.domain import invocation
from gateway.domain.invocation import InvocationType, InvokeOptions, InvokeRequest, InvokeResult
from gateway.invoke.request_ids import RequestIds
from gateway.services.event_producer import EventProducer
from gateway.services.metered_invoker import MeteredInvoker
from kubelambda import errors
from kubelambda.credentials import Principal
from kubelambda.names import parse_function_ref

__all__ = ["InvokeApp", "Reply", "error_reply", "is_invoke_path"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_PREFIX = "/2015-03-31/functions/"
_SUFFIX = "/invocations"
_WANTED = {
    b"x-amz-invocation-type": "invocation_type",
    b"x-amz-log-type": "log_type",
    b"x-amz-client-context": "client_context",
    b"x-amzn-trace-id": "trace_id",
}


Headers = list[tuple[bytes, bytes]]


class Reply(NamedTuple):
    """A whole response: status, headers (lower-case names, no length) and body."""

    status: int
    headers: Headers
    body: bytes


def is_invoke_path(path: str) -> bool:
    """Whether a (percent-decoded) path is an Invoke call; for the composition's router."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return False
    name = path[len(_PREFIX) : -len(_SUFFIX)]
    return bool(name) and "/" not in name


class InvokeApp:
    """ASGI app for Invoke requests the composition has matched, read and authenticated."""

    def __init__(self, invoker: MeteredInvoker, producer: EventProducer) -> None:
        self._invoker = invoker
        self._producer = producer
        self._request_ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self.handle(
            scope[PRINCIPAL_KEY],
            scope["path"],
            scope["query_string"],
            scope["headers"],
            scope[BODY_KEY],
        )
        # A length, not chunked framing: one body write instead of a chunk and a terminator.
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def handle(
        self,
        principal: Principal,
        path: str,
        query_string: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
    ) -> Reply:
        """Answer one authenticated Invoke request: ``path`` percent-decoded and matched
        by ``is_invoke_path``, header names lower-case, ``body`` read whole."""
        request_id = self._request_ids()
        try:
            return await self._handle(principal, path, query_string, headers, body, request_id)
        except errors.LambdaError as exc:
            return error_reply(exc, request_id)
        except Exception:
            log.exception("invoke crashed request_id=%s", request_id)
            return error_reply(errors.ServiceError("Internal error."), request_id)

    async def _handle(
        self,
        principal: Principal,
        path: str,
        query_string: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        request_id: str,
    ) -> Reply:
        qualifier = None
        if query_string:
            values = parse_qs(query_string.decode("latin-1")).get("Qualifier")
            qualifier = values[-1] if values else None
        ref = parse_function_ref(
            path[len(_PREFIX) : -len(_SUFFIX)], qualifier, namespace=principal.namespace
        )
        found: dict[str, str] = {}
        for name, value in headers:
            field = _WANTED.get(name)
            if field is not None:
                found[field] = value.decode("latin-1")
        options = InvokeOptions.from_headers(
            invocation_type=found.get("invocation_type"),
            log_type=found.get("log_type"),
            client_context=found.get("client_context"),
        )
        payload = invocation.check_payload(body)
        if options.invocation_type is InvocationType.DRY_RUN:
            self._invoker.resolve(ref)
            return Reply(204, [(b"x-amzn-requestid", request_id.encode())], b"")
        if options.invocation_type is InvocationType.EVENT:
            # 202 only once the event is durable; no executed version: none ran yet.
            await self._producer.accept(ref, payload, request_id=request_id)
            return Reply(202, [(b"x-amzn-requestid", request_id.encode())], b"")
        result = await self._invoker.invoke(
            InvokeRequest(
                ref=ref,
                payload=payload,
                request_id=request_id,
                client_context=options.client_context,
                trace_id=found.get("trace_id"),
                tail=options.tail,
            )
        )
        return Reply(200, _result_headers(result, tail=options.tail), result.payload)


def _result_headers(result: InvokeResult, *, tail: bool) -> Headers:
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-requestid", result.request_id.encode()),
        (b"x-amz-executed-version", result.executed_version.encode()),
    ]
    if result.function_error:
        headers.append((b"x-amz-function-error", result.function_error.encode()))
    if tail and result.log_result is not None:
        headers.append((b"x-amz-log-result", result.log_result.encode()))
    return headers


def error_reply(exc: errors.LambdaError, request_id: str | None = None) -> Reply:
    """Lambda's error response for ``exc``, naming ``request_id`` if there is one."""
    status, headers, body = exc.to_wire()
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if request_id is not None:
        raw.append((b"x-amzn-requestid", request_id.encode()))
    return Reply(status, raw, body)
