"""Send one invocation to an instance's agent and read what happened.

Called by the invoker with a slot the activator reserved. Speaks the agent's fixed
protocol (``POST /invoke`` with ``Kubelambda-*`` headers) over the gateway's pool, and
sorts every outcome into: it ran (``AgentResult``), nothing ran so another instance may
take it (``AgentBusy``), or a Lambda service error.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.domain.responses import AgentResult
from gateway.kits import http_pool
from kubelambda import errors
from kubelambda.ports import Endpoint

__all__ = ["AgentBusy", "AgentCall", "send"]


class AgentBusy(Exception):
    """The instance ran nothing (no idle runtime, draining, or unreachable before the
    request was written): the invocation may go to another instance."""


@dataclass(frozen=True, slots=True)
class AgentCall:
    request_id: str
    invoked_function_arn: str
    payload: bytes
    read_timeout: float
    client_context: str | None = None
    trace_id: str | None = None
    tail: bool = False

    def headers(self) -> list[tuple[str, str]]:
        headers = [
            ("Kubelambda-Request-Id", self.request_id),
            ("Kubelambda-Invoked-Function-Arn", self.invoked_function_arn),
        ]
        if self.client_context:
            headers.append(("Kubelambda-Client-Context", self.client_context))
        if self.trace_id:
            headers.append(("Kubelambda-Trace-Id", self.trace_id))
        if self.tail:
            headers.append(("Kubelambda-Log-Type", "Tail"))
        return headers


async def send(pool: http_pool.ConnectionPool, endpoint: Endpoint, call: AgentCall) -> AgentResult:
    try:
        response = await pool.request(
            endpoint.host,
            endpoint.port,
            method="POST",
            path="/invoke",
            headers=call.headers(),
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
        return AgentResult(body=response.body, headers=response.headers)
    if response.status == 503 and response.headers.get("kubelambda-agent-busy"):
        raise AgentBusy(f"instance {endpoint.instance_id} is busy")
    raise errors.ServiceError(
        f"The function instance answered {response.status} (RequestId: {call.request_id})"
    )
