"""The wire protocol between the gateway and an instance's agent, in one place.

The agent owns it (it ships alone in runtime images and imports nothing of ours); the
gateway's agent client imports it, so both sides read the same names:

    POST /invoke   event in the body (at most ``MAX_EVENT_BYTES``), the request headers
                   below in; 200 for every invocation that ran, with the outcome headers
                   below and the function's result or error body; 503 with
                   ``Kubelambda-Agent-Busy`` when nothing ran (another instance may take it);
                   403 when ``INVOKE_TOKEN`` is not the instance's token (nothing ran)
    GET  /ready    200 while the agent takes invocations, else 503 (the pod's readiness
                   probe, so no token is needed); body ``{"concurrency": n, "idle": k,
                   "started": s}`` with ``INVOKE_TOKEN`` (idle: slots that take an
                   invocation now, those whose runtime would start for it included;
                   started: slots whose runtime has been started), ``{}`` without it

And the other way, in Kubernetes mode, once, when the agent has become ready:

    POST <gateway>/kubelambda/instances/ready   ``{"namespace", "pod", "ip", "proof"}``:
                   this pod serves at ``ip`` now. The kubelet reports a new pod's address
                   only at its next relist (up to a second later); this tells the gateway
                   at once. ``proof`` (``announcement_proof``) is made with the invoke
                   token, so only an agent holding the version's token can announce.
"""

from __future__ import annotations

__all__ = [
    "AGENT_BUSY",
    "ANNOUNCE_PATH",
    "CLIENT_CONTEXT",
    "COGNITO_IDENTITY",
    "DURATION_MS",
    "FUNCTION_ERROR",
    "INIT_DURATION_MS",
    "INVOKED_FUNCTION_ARN",
    "INVOKE_PATH",
    "INVOKE_TOKEN",
    "LOG_RESULT",
    "LOG_TYPE",
    "MAX_EVENT_BYTES",
    "MAX_MEMORY_USED_MB",
    "READY_PATH",
    "REQUEST_ID",
    "TRACE_ID",
    "announcement_proof",
]

INVOKE_PATH = "/invoke"
READY_PATH = "/ready"

# Lambda's synchronous request payload limit (6 MiB); the gateway refuses larger bodies
# before they reach an instance, and the agent refuses them too.
MAX_EVENT_BYTES = 6 * 1024 * 1024

# Request headers (gateway -> agent).
# The instance's secret (see ``kubelambda_agent.invoke_token``): without it the invoke
# port is refused, so only the gateway, which authenticated the caller and counted the
# invocation against the function's concurrency, can run the function.
INVOKE_TOKEN = "Kubelambda-Invoke-Token"
REQUEST_ID = "Kubelambda-Request-Id"
INVOKED_FUNCTION_ARN = "Kubelambda-Invoked-Function-Arn"
# The client context as the Runtime API passes it on: the decoded JSON object, on one
# line. The gateway decodes and checks the caller's base64 once; the agent re-checks
# only that it is one line of JSON.
CLIENT_CONTEXT = "Kubelambda-Client-Context"
COGNITO_IDENTITY = "Kubelambda-Cognito-Identity"
TRACE_ID = "Kubelambda-Trace-Id"
# "Tail": answer with the last 4 KB of the invocation's log in ``LOG_RESULT``.
LOG_TYPE = "Kubelambda-Log-Type"

# Response headers (agent -> gateway).
FUNCTION_ERROR = "Kubelambda-Function-Error"
LOG_RESULT = "Kubelambda-Log-Result"
DURATION_MS = "Kubelambda-Duration-Ms"
INIT_DURATION_MS = "Kubelambda-Init-Duration-Ms"
MAX_MEMORY_USED_MB = "Kubelambda-Max-Memory-Used-Mb"
AGENT_BUSY = "Kubelambda-Agent-Busy"

ANNOUNCE_PATH = "/kubelambda/instances/ready"


def announcement_proof(token: str, *, namespace: str, pod: str, ip: str) -> str:
    """HMAC-SHA256 of the announcement under the instance's invoke token (hex)."""
    import hashlib  # not at module level: the agent imports this module on every start
    import hmac

    message = f"{namespace}\0{pod}\0{ip}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()
