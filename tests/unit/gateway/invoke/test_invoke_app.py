"""The Invoke ASGI app's answers that need no instance: parsing, resolution, limits.

Requests go straight into the ASGI callable; invocations that reach an instance are
covered by the integration tests against real agents.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import pytest
from gateway_fakes import RecordingSignals, StaticBackend
from prometheus_client import CollectorRegistry

from gateway.invoke.app import BODY_SCOPE_KEY, InvokeApp, is_invoke_path
from gateway.invoke.settings import InvokeSettings
from gateway.metrics import GatewayMetrics
from kubelambda.models import FunctionSettings, FunctionVersion, State, Target
from kubelambda.ports import Catalog
from tests import factories


def _version(name: str, number: str, state: State = State.ACTIVE) -> FunctionVersion:
    return factories.function_version(name, number, state=state)


CATALOG = Catalog(
    versions={
        Target("f", "$LATEST"): _version("f", "$LATEST"),
        Target("f", "1"): _version("f", "1", State.PENDING),
        Target("capped", "$LATEST"): _version("capped", "$LATEST"),
    },
    settings={"capped": FunctionSettings("capped", reserved_concurrency=0)},
)


@pytest.fixture
def app(
    backend: StaticBackend, signals: RecordingSignals, registry: CollectorRegistry
) -> InvokeApp:
    return InvokeApp(
        backend=backend,
        signals=signals,
        metrics=GatewayMetrics(registry),
        settings=InvokeSettings(max_wait_seconds=0.05),
        catalog=CATALOG,
    )


async def _call(
    app: InvokeApp,
    path: str,
    *,
    body: bytes = b"",
    query: bytes = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, dict[str, str], Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        BODY_SCOPE_KEY: body,
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        raise AssertionError("the body was given in the scope")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body_message = sent
    response_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    payload = json.loads(body_message["body"]) if body_message["body"] else None
    return start["status"], response_headers, payload


PATH = "/2015-03-31/functions/f/invocations"


async def test_dry_run_answers_204_after_the_checks(app: InvokeApp) -> None:
    status, headers, body = await _call(app, PATH, headers={"X-Amz-Invocation-Type": "DryRun"})
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
        ("/2015-03-31/functions/invocations", b"", 404, "UnknownOperationException"),
    ],
)
async def test_resolution_errors_are_lambda_shaped(
    app: InvokeApp, path: str, query: bytes, status: int, code: str
) -> None:
    got_status, headers, body = await _call(app, path, query=query)
    assert (got_status, headers["x-amzn-errortype"], body["__type"]) == (status, code, code)


async def test_not_found_message_names_the_qualified_arn(app: InvokeApp) -> None:
    _, _, body = await _call(app, PATH, query=b"Qualifier=9")
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


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        ({}, b"{not json", "InvalidRequestContentException"),
        ({"X-Amz-Invocation-Type": "Event"}, b"{}", "InvalidParameterValueException"),
        ({"X-Amz-Invocation-Type": "Soon"}, b"{}", "ValidationException"),
        ({"X-Amz-Client-Context": "%%%"}, b"{}", "InvalidRequestContentException"),
    ],
)
async def test_bad_requests_are_400(
    app: InvokeApp, headers: dict[str, str], body: bytes, code: str
) -> None:
    status, response_headers, _ = await _call(app, PATH, headers=headers, body=body)
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
            {"function": "capped", "version": "$LATEST", "outcome": "throttled"},
        )
        == 1
    )


async def test_no_capacity_in_time_is_throttled_and_pokes(
    app: InvokeApp, signals: RecordingSignals
) -> None:
    status, _, body = await _call(app, PATH, body=b"{}")
    assert (status, body["Reason"]) == (429, "ConcurrentInvocationLimitExceeded")
    assert signals.pokes == [Target("f", "$LATEST")]


async def test_new_catalog_is_used_for_the_next_request(app: InvokeApp) -> None:
    app.on_catalog(Catalog())
    status, _, _ = await _call(app, PATH, headers={"X-Amz-Invocation-Type": "DryRun"})
    assert status == 404


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (PATH, True),
        ("/2015-03-31/functions/f", False),
        ("/2015-03-31/functions//invocations", False),
        ("/2015-03-31/functions/f/invocations/x", False),
        ("/2015-03-31/functions/a/b/invocations", False),
    ],
)
def test_is_invoke_path(path: str, expected: bool) -> None:
    assert is_invoke_path(path) is expected
