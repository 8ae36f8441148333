"""Send one invocation to an instance's agent and read what happened.

Called by the invoker with a slot the activator reserved. Speaks the agent's protocol
(``kubelambda_agent.protocol``, which the agent owns) over the gateway's connection
pool, presenting the instance's invoke token from its ``Endpoint``, and sorts every
outcome into: it ran (``AgentOutcome``), nothing ran so another
instance may take it (``AgentBusy``), or a Lambda service error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubelambda_agent import protocol

from gateway.kits import http_pool
from kubelambda import errors
from kubelambda.ports.endpoints import Endpoint

__all__ = ["AgentBusy", "AgentCall", "AgentOutcome", "send"]

# The pool hands response header names in lower case.
_FUNCTION_ERROR = protocol.FUNCTION_ERROR.lower()
_LOG_RESULT = protocol.LOG_RESULT.lower()
_DURATION_MS = protocol.DURATION_MS.lower()
_INIT_DURATION_MS = protocol.INIT_DURATION_MS.lower()
_AGENT_BUSY = protocol.AGENT_BUSY.lower()


class AgentBusy(Exception):
    """The instance ran nothing (no idle runtime, draining, or unreachable before the
    request was written): the invocation may go to another instance."""


@dataclass(frozen=True, slots=True)
class AgentCall:
    """One invocation as the agent receives it. ``client_context`` is the decoded JSON."""

    request_id: str
    invoked_function_arn: str
    payload: bytes
    read_timeout: float
    client_context: str | None = None
    trace_id: str | None = None
    tail: bool = False

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            (protocol.REQUEST_ID, self.request_id),
            (protocol.INVOKED_FUNCTION_ARN, self.invoked_function_arn),
        ]
        if self.client_context:
            headers.append((protocol.CLIENT_CONTEXT, self.client_context))
        if self.trace_id:
            headers.append((protocol.TRACE_ID, self.trace_id))
        if self.tail:
            headers.append((protocol.LOG_TYPE, "Tail"))
        return headers


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    """What an agent reported for an invocation that ran: the function's result or error
    body, and how it went."""

    body: bytes
    function_error: str | None
    log_result: str | None
    duration_seconds: float | None
    init_duration_seconds: float | None

    @classmethod
    def from_response(cls, body: bytes, headers: Mapping[str, str]) -> AgentOutcome:
        return cls(
            body=body,
            function_error=headers.get(_FUNCTION_ERROR),
            log_result=headers.get(_LOG_RESULT),
            duration_seconds=_millis_to_seconds(headers.get(_DURATION_MS)),
            init_duration_seconds=_millis_to_seconds(headers.get(_INIT_DURATION_MS)),
        )


async def send(pool: http_pool.ConnectionPool, endpoint: Endpoint, call: AgentCall) -> AgentOutcome:
    try:
        response = await pool.request(
            endpoint.host,
            endpoint.port,
            method="POST",
            path=protocol.INVOKE_PATH,
            headers=[(protocol.INVOKE_TOKEN, endpoint.token), *call.headers()],
            body=call.payload,
            read_timeout=call.read_timeout,
        )
    except http_pool.RequestNotSent as exc:
        raise AgentBusy(str(exc)) from exc
    except http_pool.ReadTimeout as exc:
        raise errors.ServiceError(
            f"The function instance did not answer in time (RequestId: {call.request_id})"
        ) from exc
    except http_pool.ResponseFailed as exc:
        # It may have run: never resend, report the instance as not ready.
        raise errors.ResourceNotReady(
            f"The function instance failed during the invocation (RequestId: {call.request_id})"
        ) from exc
    if response.status == 200:
        return AgentOutcome.from_response(response.body, response.headers)
    if response.status == 503 and response.headers.get(_AGENT_BUSY):
        raise AgentBusy(f"instance {endpoint.instance_id} is busy")
    raise errors.ServiceError(
        f"The function instance answered {response.status} (RequestId: {call.request_id})"
    )


def _millis_to_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value) / 1000.0
    except ValueError:
        return None
