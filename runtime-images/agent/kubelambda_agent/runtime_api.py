"""The Lambda Runtime API as one runtime sees it: routes, status codes and error bodies.

Each ``slot`` serves this on its own ``127.0.0.1`` listener, so every request here comes
from that slot's runtime; ``handle`` turns a request into a call on the slot (through the
``RuntimeApiTarget`` protocol) and the slot's verdict into Lambda's answer.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from typing import Protocol

from kubelambda_agent import error_bodies
from kubelambda_agent.http_server import Request, Responder

__all__ = ["PREFIX", "Reply", "RuntimeApiTarget", "Verdict", "handle"]

PREFIX = "/2018-06-01/runtime/"
_ERROR_TYPE_HEADER = "lambda-runtime-function-error-type"
_ACCEPTED = json.dumps({"status": "OK"}).encode()
_JSON = (("Content-Type", "application/json"),)


class Verdict(enum.Enum):
    """What the slot made of a runtime's answer to an invocation."""

    ACCEPTED = 202
    UNKNOWN_ID = 400
    ALREADY_ANSWERED = 403
    TOO_LARGE = 413


class Reply(Protocol):
    """Where the answer to a runtime's ``next`` goes: an HTTP ``Responder``, or the
    python bootstrap's channel (``runtime_channel.ChannelReply``)."""

    @property
    def closed(self) -> bool: ...

    def respond(
        self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
    ) -> None: ...


class RuntimeApiTarget(Protocol):
    def next_requested(self, responder: Reply) -> None:
        """Answer with the next invocation, now or when one arrives (a long poll)."""
        ...

    def invocation_answered(
        self,
        request_id: str,
        body: bytes,
        *,
        is_error: bool,
        error_type: str | None,
        too_large: bool,
    ) -> Verdict: ...

    def init_failed(self, body: bytes, error_type: str | None) -> bool:
        """Record an init error; False when the runtime is past init."""
        ...


_VERDICT_BODIES = {
    Verdict.ACCEPTED: _ACCEPTED,
    Verdict.UNKNOWN_ID: error_bodies.runtime_api_error("InvalidRequestID", "Invalid request ID"),
    Verdict.ALREADY_ANSWERED: error_bodies.runtime_api_error(
        "InvalidStateTransition", "Invocation has already been answered"
    ),
    Verdict.TOO_LARGE: error_bodies.runtime_api_error(
        "RequestEntityTooLarge",
        f"Exceeded maximum allowed payload size ({error_bodies.MAX_RESPONSE_BYTES} bytes).",
    ),
}


def handle(target: RuntimeApiTarget, request: Request, responder: Responder) -> None:
    if not request.path.startswith(PREFIX):
        _not_found(request, responder)
        return
    route = request.path[len(PREFIX) :]
    if route == "invocation/next":
        if request.method != "GET":
            _method_not_allowed(responder)
            return
        target.next_requested(responder)
        return
    if route == "init/error":
        if request.method != "POST":
            _method_not_allowed(responder)
            return
        if target.init_failed(request.body, request.headers.get(_ERROR_TYPE_HEADER)):
            responder.respond(202, _ACCEPTED, _JSON)
        else:
            responder.respond(
                403,
                error_bodies.runtime_api_error(
                    "InvalidStateTransition", "Init has already completed"
                ),
                _JSON,
            )
        return
    kind, _, rest = route.partition("/")
    request_id, _, action = rest.partition("/")
    if kind != "invocation" or not request_id or action not in ("response", "error"):
        _not_found(request, responder)
        return
    if request.method != "POST":
        _method_not_allowed(responder)
        return
    verdict = target.invocation_answered(
        request_id,
        request.body,
        is_error=action == "error",
        error_type=request.headers.get(_ERROR_TYPE_HEADER),
        too_large=request.body_too_large,
    )
    responder.respond(verdict.value, _VERDICT_BODIES[verdict], _JSON)


def _not_found(request: Request, responder: Responder) -> None:
    responder.respond(
        404,
        error_bodies.runtime_api_error("InvalidURL", f"No Runtime API route at {request.path}"),
        _JSON,
    )


def _method_not_allowed(responder: Responder) -> None:
    responder.respond(
        405, error_bodies.runtime_api_error("MethodNotAllowed", "Method not allowed"), _JSON
    )
