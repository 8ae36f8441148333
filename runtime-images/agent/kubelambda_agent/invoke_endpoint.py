"""The invoke endpoint the gateway calls: ``POST /invoke`` and ``GET /ready``.

``agent`` serves ``InvokeEndpoint.handle`` on the agent's public listener. The contract
(paths, header names, 200 for every invocation that ran, 503 + ``Kubelambda-Agent-Busy``
when nothing ran so the gateway may retry elsewhere) is ``protocol``, which the gateway
imports too.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from kubelambda_agent import invoke_token, protocol
from kubelambda_agent.http_server import Request, Responder
from kubelambda_agent.invocation import Invocation, Outcome
from kubelambda_agent.slot import RUNNING_STATES, IdleSlots, Slot, SlotState
from kubelambda_agent.trace_ids import TraceIds

__all__ = ["InvokeEndpoint"]

_JSON = ("Content-Type", "application/json")
_BUSY_HEADERS = (_JSON, (protocol.AGENT_BUSY, "1"))


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


# The HTTP server hands header names in lower case.
_REQUEST_ID = protocol.REQUEST_ID.lower()
_INVOKED_FUNCTION_ARN = protocol.INVOKED_FUNCTION_ARN.lower()
_CLIENT_CONTEXT = protocol.CLIENT_CONTEXT.lower()
_COGNITO_IDENTITY = protocol.COGNITO_IDENTITY.lower()
_TRACE_ID = protocol.TRACE_ID.lower()
_LOG_TYPE = protocol.LOG_TYPE.lower()
_INVOKE_TOKEN = protocol.INVOKE_TOKEN.lower()

_BUSY_BODY = _error("AgentBusy", "No idle runtime in this instance")
_DRAINING_BODY = _error("AgentDraining", "This instance is shutting down")
_FORBIDDEN_BODY = _error("AccessDenied", f"Missing or wrong {protocol.INVOKE_TOKEN}")


class InvokeEndpoint:
    def __init__(
        self,
        slots: Sequence[Slot],
        *,
        idle_slots: IdleSlots,
        token: str,
        slots_per_environment: int,
    ) -> None:
        self._slots = slots
        self._idle_slots = idle_slots
        self._slots_per_environment = slots_per_environment
        self._token = token
        self.ready = False
        self.draining = False
        self._in_flight = 0
        self._drained: asyncio.Future[None] | None = None
        # The execution environments placed here (``place``): invocations at once, and
        # runtimes alive, at most. Runtimes beyond it stop as soon as they are idle.
        self.limit = len(slots)
        self._surplus = False
        self._trace_ids = TraceIds()

    def place(self, environments: int) -> None:
        """Serve ``environments`` from now on (1 to as many as the slots make)."""
        self.limit = environments * self._slots_per_environment
        self._shed()

    def _shed(self) -> None:
        """Stop idle runtimes, the last slots' first, while more run than ``limit``."""
        running = [s for s in self._slots if s.state in RUNNING_STATES]
        surplus = len(running) - self.limit
        for slot in reversed(running):
            if surplus <= 0:
                break
            if slot.state is SlotState.IDLE:
                slot.retire()
                surplus -= 1
        # Busy ones: looked at again as invocations complete.
        self._surplus = surplus > 0

    def handle(self, request: Request, responder: Responder) -> None:
        if request.path == protocol.INVOKE_PATH:
            if request.method == "POST":
                self._invoke(request, responder)
            else:
                responder.respond(405, _error("MethodNotAllowed", "POST /invoke"), (_JSON,))
        elif request.path == protocol.READY_PATH:
            if request.method == "GET":
                self._ready(request, responder)
            else:
                responder.respond(405, _error("MethodNotAllowed", "GET /ready"), (_JSON,))
        else:
            responder.respond(404, _error("NotFound", f"No route at {request.path}"), (_JSON,))

    async def drain(self) -> None:
        """Refuse new invocations and wait for those in flight (each ends by its timeout)."""
        self.draining = True
        if self._in_flight:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def _ready(self, request: Request, responder: Responder) -> None:
        status = 200 if self.ready and not self.draining else 503
        # Unauthenticated, it is the kubelet's readiness probe: the status alone. How busy
        # the instance is would tell any pod in the cluster when the function runs.
        if not invoke_token.matches(self._token, request.headers.get(_INVOKE_TOKEN)):
            responder.respond(status, b"{}", (_JSON,))
            return
        started = sum(1 for slot in self._slots if slot.state is not SlotState.UNSTARTED)
        running = sum(1 for slot in self._slots if slot.state in RUNNING_STATES)
        idle_runtimes = sum(1 for slot in self._slots if slot.state is SlotState.IDLE)
        unstarted = len(self._slots) - started
        idle = min(
            self.limit - self._in_flight,
            idle_runtimes + min(unstarted, max(0, self.limit - running)),
        )
        body = json.dumps(
            {"concurrency": self.limit, "idle": max(0, idle), "started": started}
        ).encode()
        responder.respond(status, body, (_JSON,))

    def _invoke(self, request: Request, responder: Responder) -> None:
        # First of all: whoever lacks the token learns nothing else about this instance.
        if not invoke_token.matches(self._token, request.headers.get(_INVOKE_TOKEN)):
            responder.respond(403, _FORBIDDEN_BODY, (_JSON,))
            return
        if self.draining:
            responder.respond(503, _DRAINING_BODY, _BUSY_HEADERS)
            return
        if request.body_too_large:
            message = f"Request payload exceeds {protocol.MAX_EVENT_BYTES} bytes"
            responder.respond(413, _error("RequestTooLarge", message), (_JSON,))
            return
        headers = request.headers
        request_id = headers.get(_REQUEST_ID, "").strip()
        function_arn = headers.get(_INVOKED_FUNCTION_ARN, "").strip()
        if not request_id or not function_arn:
            missing = protocol.REQUEST_ID if not request_id else protocol.INVOKED_FUNCTION_ARN
            responder.respond(400, _error("InvalidRequest", f"Missing header {missing}"), (_JSON,))
            return
        if not _valid_request_id(request_id):
            message = f"{protocol.REQUEST_ID} must be printable ASCII without spaces or '/'"
            responder.respond(400, _error("InvalidRequest", message), (_JSON,))
            return
        try:
            client_context = _json_header(protocol.CLIENT_CONTEXT, headers.get(_CLIENT_CONTEXT))
            cognito_identity = _json_header(
                protocol.COGNITO_IDENTITY, headers.get(_COGNITO_IDENTITY)
            )
        except ValueError as exc:
            responder.respond(400, _error("InvalidRequest", str(exc)), (_JSON,))
            return
        slot = self._free_slot()
        if slot is None:
            responder.respond(503, _BUSY_BODY, _BUSY_HEADERS)
            return

        def complete(outcome: Outcome) -> None:
            self._in_flight -= 1
            if self._drained is not None and not self._in_flight and not self._drained.done():
                self._drained.set_result(None)
            if self._surplus:
                # Once the slot is idle again, which it becomes after this returns.
                asyncio.get_running_loop().call_soon(self._shed)
            responder.respond(200, outcome.body, _outcome_headers(outcome))

        self._in_flight += 1
        slot.assign(
            Invocation(
                request_id=request_id,
                function_arn=function_arn,
                event=request.body,
                trace_id=headers.get(_TRACE_ID) or self._trace_ids(),
                complete=complete,
                client_context=client_context,
                cognito_identity=cognito_identity,
                want_tail=headers.get(_LOG_TYPE, "").lower() == "tail",
            )
        )

    def _free_slot(self) -> Slot | None:
        """A running runtime before one that would have to start, within ``limit``: the
        one that asked for its next event last, else one still to ask (it answered its
        last invocation a moment ago, or has an init failure to report)."""
        if self._in_flight >= self.limit:
            return None
        idle = self._idle_slots.take() or next(
            (s for s in self._slots if s.state is SlotState.IDLE), None
        )
        if idle is not None:
            return idle
        if sum(1 for s in self._slots if s.state in RUNNING_STATES) >= self.limit:
            return None
        return next((s for s in self._slots if s.state is SlotState.UNSTARTED), None)


def _valid_request_id(request_id: str) -> bool:
    # It becomes part of Runtime API paths (/invocation/<id>/response) and of log lines.
    return (
        request_id.isascii()
        and request_id.isprintable()
        and " " not in request_id
        and "/" not in request_id
    )


def _json_header(name: str, text: str | None) -> str | None:
    """A JSON object, re-serialised on one line so no newline can reach a header."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not a JSON object")
    return json.dumps(value, separators=(",", ":"))


def _outcome_headers(outcome: Outcome) -> list[tuple[str, str]]:
    headers = [
        _JSON,
        (protocol.DURATION_MS, f"{outcome.duration_ms:.3f}"),
        (protocol.MAX_MEMORY_USED_MB, str(outcome.max_memory_used_mb)),
    ]
    if outcome.function_error:
        headers.append((protocol.FUNCTION_ERROR, "Unhandled"))
    if outcome.init_duration_ms is not None:
        headers.append((protocol.INIT_DURATION_MS, f"{outcome.init_duration_ms:.3f}"))
    if outcome.log_tail is not None:
        headers.append((protocol.LOG_RESULT, outcome.log_tail))
    return headers
