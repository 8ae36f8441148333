"""The Invoke ASGI app: parsing, resolution in the caller's namespace, limits, and how a
result is rendered as Lambda's response.

Requests go straight into the ASGI callable with the body and principal in the scope, as
the composition hands them over; the use case below it is the real one, with a scripted
agent (``gateway_fakes``). Invocations of real agents are covered by the integration
tests.
"""

from __future__ import annotations

import base64
import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from gateway_fakes import (
    AgentAnswer,
    InvokePath,
    RecordingSignals,
    ScriptedPool,
    StaticEndpoints,
    endpoint,
    invoke_path,
)
from kubelambda_agent import protocol
from prometheus_client import CollectorRegistry

from gateway.auth.request import BODY_KEY, PRINCIPAL_KEY
from gateway.invoke.app import InvokeApp, is_invoke_path
from kubelambda import errors
from kubelambda.credentials import ADMIN, Principal
from kubelambda.models import DEFAULT_NAMESPACE, FunctionKey, FunctionSettings, State
from kubelambda.ports.catalog import Catalog
from tests import factories

VERSIONS = [
    factories.function_version("f"),
    factories.function_version("f", "1", state=State.PENDING),
    factories.function_version("capped"),
]
CATALOG = Catalog(
    versions={v.target: v for v in VERSIONS},
    settings={
        FunctionKey(DEFAULT_NAMESPACE, "capped"): FunctionSettings(
            DEFAULT_NAMESPACE, "capped", reserved_concurrency=0
        )
    },
)
LATEST = factories.target("f")
PATH = "/2015-03-31/functions/f/invocations"


@pytest.fixture
def wired(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> InvokePath:
    return invoke_path(CATALOG, endpoints=endpoints, signals=signals, registry=registry)


@pytest.fixture
def app(wired: InvokePath) -> InvokeApp:
    return InvokeApp(wired.metered, wired.producer)


async def _call(
    app: InvokeApp,
    path: str = PATH,
    *,
    body: bytes = b"",
    query: bytes = b"",
    headers: dict[str, str] | None = None,
    principal: Principal = ADMIN,
) -> tuple[int, dict[str, str], Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        BODY_KEY: body,
        PRINCIPAL_KEY: principal,
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        raise AssertionError("the body was given in the scope")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body_message = sent
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(response_headers["content-length"]) == len(body_message["body"])
    payload = json.loads(body_message["body"]) if body_message["body"] else None
    return start["status"], response_headers, payload


def _ready(endpoints: StaticEndpoints) -> None:
    endpoints.set_endpoints(LATEST, [endpoint("a", target=LATEST)])


async def test_dry_run_answers_204_after_the_checks(app: InvokeApp) -> None:
    status, headers, body = await _call(app, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert (status, body) == (204, None)
    assert headers["x-amzn-requestid"]


@pytest.mark.parametrize(
    ("path", "query", "status", "code"),
    [
        ("/2015-03-31/functions/nope/invocations", b"", 404, "ResourceNotFoundException"),
        (PATH, b"Qualifier=1", 409, "ResourceConflictException"),
        # The server decodes %3A once: a literal one left in the path is not a name.
        ("/2015-03-31/functions/f%3A1/invocations", b"", 400, "InvalidParameterValueException"),
        ("/2015-03-31/functions/f:7/invocations", b"", 404, "ResourceNotFoundException"),
        (
            "/2015-03-31/functions/f:1/invocations",
            b"Qualifier=2",
            400,
            "InvalidParameterValueException",
        ),
    ],
)
async def test_resolution_errors_are_lambda_shaped(
    app: InvokeApp, path: str, query: bytes, status: int, code: str
) -> None:
    got_status, headers, body = await _call(app, path, query=query)
    assert (got_status, headers["x-amzn-errortype"], body["__type"]) == (status, code, code)
    assert headers["x-amzn-requestid"]


async def test_not_found_message_names_the_qualified_arn(app: InvokeApp) -> None:
    _, _, body = await _call(app, query=b"Qualifier=9")
    assert body["Message"] == (
        "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:9"
    )


async def test_full_arn_with_qualifier_resolves(app: InvokeApp) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST"
    status, _, _ = await _call(
        app,
        f"/2015-03-31/functions/{arn}/invocations",
        headers={"X-Amz-Invocation-Type": "DryRun"},
    )
    assert status == 204


async def test_names_resolve_in_the_callers_namespace(app: InvokeApp) -> None:
    other = Principal(name="bob", namespace="team-b")
    status, headers, _ = await _call(
        app, headers={"X-Amz-Invocation-Type": "DryRun"}, principal=other
    )
    assert (status, headers["x-amzn-errortype"]) == (404, "ResourceNotFoundException")


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, b"{not json", "InvalidRequestContentException"),
        ({"X-Amz-Invocation-Type": "Event"}, b"{not json", "InvalidRequestContentException"),
        ({"X-Amz-Invocation-Type": "Soon"}, b"{}", "ValidationException"),
        ({"X-Amz-Log-Type": "All"}, b"{}", "ValidationException"),
        ({"X-Amz-Client-Context": "%%%"}, b"{}", "InvalidRequestContentException"),
    ],
)
async def test_bad_requests_are_400(
    app: InvokeApp, headers: dict[str, str], body: bytes, code: str
) -> None:
    status, response_headers, _ = await _call(app, headers=headers, body=body)
    assert (status, response_headers["x-amzn-errortype"]) == (400, code)


async def test_reserved_zero_throttles_everything(
    app: InvokeApp, registry: CollectorRegistry
) -> None:
    status, headers, body = await _call(app, "/2015-03-31/functions/capped/invocations")
    assert status == 429
    assert body["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert headers["retry-after"] == "1"
    assert (
        registry.get_sample_value(
            "kubelambda_invocations_total",
            {
                "namespace": "default",
                "function": "capped",
                "version": "$LATEST",
                "outcome": "throttled",
            },
        )
        == 1
    )


async def test_no_capacity_in_time_is_throttled_and_pokes(
    app: InvokeApp, signals: RecordingSignals
) -> None:
    status, _, body = await _call(app, body=b"{}")
    assert (status, body["Reason"]) == (429, "ConcurrentInvocationLimitExceeded")
    assert signals.pokes == [LATEST]


async def test_new_catalog_is_used_for_the_next_request(app: InvokeApp, wired: InvokePath) -> None:
    wired.invoker.on_catalog(Catalog())
    status, _, _ = await _call(app, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert status == 404


async def test_success_is_200_with_the_result_and_lambdas_headers(
    app: InvokeApp, wired: InvokePath, endpoints: StaticEndpoints
) -> None:
    wired.pool.answers = [AgentAnswer.ran({"ok": True}, **{protocol.LOG_RESULT: "bG9n"})]
    _ready(endpoints)
    status, headers, body = await _call(app, body=b'{"a": 1}')
    assert (status, body) == (200, {"ok": True})
    request_id = headers.pop("x-amzn-requestid")
    assert headers == {
        "content-type": "application/json",
        "x-amz-executed-version": "$LATEST",
        "content-length": "12",
    }
    assert wired.pool.sent[0].headers[protocol.REQUEST_ID] == request_id


async def test_function_error_is_200_with_the_function_error_header(
    app: InvokeApp, wired: InvokePath, endpoints: StaticEndpoints
) -> None:
    wired.pool.answers = [AgentAnswer.function_error("ValueError")]
    _ready(endpoints)
    status, headers, body = await _call(app)
    assert (status, headers["x-amz-function-error"]) == (200, "Unhandled")
    assert body["errorType"] == "ValueError"


@pytest.mark.parametrize(("log_type", "present"), [("Tail", True), ("None", False), (None, False)])
async def test_log_result_only_when_tail_asked(
    app: InvokeApp,
    wired: InvokePath,
    endpoints: StaticEndpoints,
    log_type: str | None,
    present: bool,
) -> None:
    wired.pool.answers = [AgentAnswer.ran(1, **{protocol.LOG_RESULT: "bG9n"})]
    _ready(endpoints)
    headers = {"X-Amz-Log-Type": log_type} if log_type else {}
    _, response_headers, _ = await _call(app, headers=headers)
    assert ("x-amz-log-result" in response_headers) is present
    assert (protocol.LOG_TYPE in wired.pool.sent[0].headers) is present


async def test_the_agent_gets_the_decoded_client_context_trace_and_payload(
    app: InvokeApp, wired: InvokePath, endpoints: StaticEndpoints
) -> None:
    _ready(endpoints)
    context = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
    await _call(
        app,
        body=b"",
        headers={"X-Amz-Client-Context": context, "X-Amzn-Trace-Id": "Root=1-abc"},
    )
    (sent,) = wired.pool.sent
    assert sent.path == protocol.INVOKE_PATH
    assert sent.body == b"{}"
    assert sent.headers[protocol.CLIENT_CONTEXT] == '{"custom":{"k":"v"}}'
    assert sent.headers[protocol.TRACE_ID] == "Root=1-abc"
    assert sent.headers[protocol.INVOKED_FUNCTION_ARN] == (
        "arn:aws:lambda:us-east-1:000000000000:function:f"
    )


async def test_invoked_arn_carries_the_installations_region(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    wired = invoke_path(
        CATALOG, endpoints=endpoints, signals=signals, registry=registry, region="eu-west-1"
    )
    _ready(endpoints)
    await _call(InvokeApp(wired.metered, wired.producer), query=b"Qualifier=$LATEST")
    assert wired.pool.sent[0].headers[protocol.INVOKED_FUNCTION_ARN] == (
        "arn:aws:lambda:eu-west-1:000000000000:function:f:$LATEST"
    )


async def test_an_instance_that_cannot_answer_is_a_service_error(
    app: InvokeApp, wired: InvokePath, endpoints: StaticEndpoints
) -> None:
    wired.pool.answers = [AgentAnswer(500, {}, b"")]
    _ready(endpoints)
    status, headers, body = await _call(app)
    assert (status, headers["x-amzn-errortype"]) == (500, "ServiceException")
    assert headers["x-amzn-requestid"] in body["Message"]


async def test_an_unexpected_crash_is_a_500_not_a_dropped_connection(
    endpoints: StaticEndpoints, signals: RecordingSignals, registry: CollectorRegistry
) -> None:
    class CrashingPool(ScriptedPool):
        async def request(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("bug")

    wired = invoke_path(
        CATALOG, endpoints=endpoints, signals=signals, registry=registry, pool=CrashingPool()
    )
    _ready(endpoints)
    status, headers, _ = await _call(InvokeApp(wired.metered, wired.producer))
    assert (status, headers["x-amzn-errortype"]) == (500, "ServiceException")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (PATH, True),
        ("/2015-03-31/functions/f", False),
        ("/2015-03-31/functions//invocations", False),
        ("/2015-03-31/functions/invocations", False),
        ("/2015-03-31/functions/f/invocations/x", False),
        ("/2015-03-31/functions/a/b/invocations", False),
    ],
)
def test_is_invoke_path(path: str, expected: bool) -> None:
    assert is_invoke_path(path) is expected


async def test_an_event_invocation_is_202_once_published(wired: InvokePath) -> None:
    app = InvokeApp(wired.metered, wired.producer)

    status, headers, body = await _call(
        app,
        body=b'{"n": 1}',
        query=b"Qualifier=$LATEST",
        headers={"X-Amz-Invocation-Type": "Event", "X-Amz-Log-Type": "Tail"},
    )

    (event,) = wired.queue.published
    assert (status, body) == (202, None)  # an empty body
    assert headers["x-amzn-requestid"] == event.request_id
    assert "x-amz-executed-version" not in headers and "x-amz-log-result" not in headers
    assert (event.function, event.qualifier, event.payload) == (
        FunctionKey(DEFAULT_NAMESPACE, "f"),
        "$LATEST",
        b'{"n": 1}',
    )
    assert (event.attempt, event.accepted_at) == (1, 1000.0)
    assert wired.pool.sent == []


async def test_an_event_the_queue_refuses_is_an_error_not_a_202(wired: InvokePath) -> None:
    wired.queue.refuse = errors.ServiceError("The event queue is unavailable.")
    app = InvokeApp(wired.metered, wired.producer)

    status, headers, _ = await _call(app, headers={"X-Amz-Invocation-Type": "Event"})

    assert (status, headers["x-amzn-errortype"]) == (500, "ServiceException")


async def test_an_event_for_an_unknown_function_is_404_and_not_queued(wired: InvokePath) -> None:
    app = InvokeApp(wired.metered, wired.producer)

    status, _, _ = await _call(
        app, "/2015-03-31/functions/nope/invocations", headers={"X-Amz-Invocation-Type": "Event"}
    )

    assert status == 404
    assert wired.queue.published == []


async def test_an_event_for_a_pending_version_is_409_as_a_sync_invoke(wired: InvokePath) -> None:
    app = InvokeApp(wired.metered, wired.producer)

    status, _, _ = await _call(
        app, query=b"Qualifier=1", headers={"X-Amz-Invocation-Type": "Event"}
    )

    assert status == 409
    assert wired.queue.published == []
