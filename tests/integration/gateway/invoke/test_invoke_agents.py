"""Invoke through a real gateway to real agent processes, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import logging

import httpx
import pytest
from invoke_harness import REPORTER, Platform
from kubelambda_agent import protocol

from tests import factories
from tests.instance_http import instance_client

ARN = "arn:aws:lambda:us-east-1:000000000000:function"


async def _invoke(
    platform: Platform, function: str, event: object = None, **headers: str
) -> httpx.Response:
    body = b"" if event is None else json.dumps(event).encode()
    async with httpx.AsyncClient(timeout=30.0) as client:
        return await client.post(
            platform.invoke_url(function), content=body, headers=platform.auth | headers
        )


async def test_cold_invoke_scales_from_zero_and_returns_the_result(platform: Platform) -> None:
    response = await _invoke(platform, "echo", {"a": 1})
    assert response.status_code == 200
    result = response.json()
    assert result["event"] == {"a": 1}
    assert result["request_id"] == response.headers["x-amzn-requestid"]
    assert result["invoked_arn"] == f"{ARN}:echo"
    assert response.headers["x-amz-executed-version"] == "$LATEST"
    assert response.headers["content-type"] == "application/json"
    assert "x-amz-function-error" not in response.headers
    assert platform.scaler.pokes >= 1
    assert platform.scaler.reporters == {REPORTER}
    assert (
        platform.sample(
            "kubelambda_invocations_total", function="echo", version="$LATEST", outcome="success"
        )
        == 1
    )


async def test_empty_body_reaches_the_function_as_empty_object(platform: Platform) -> None:
    response = await _invoke(platform, "echo")
    assert response.json()["event"] == {}


async def test_alias_reports_the_executed_version_and_invoked_arn(platform: Platform) -> None:
    response = await _invoke(platform, "echo:live", {})
    assert response.headers["x-amz-executed-version"] == "1"
    assert response.json()["invoked_arn"] == f"{ARN}:echo:live"
    assert response.json()["version"] == "1"


async def test_client_context_reaches_the_function_decoded(platform: Platform) -> None:
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    response = await _invoke(platform, "echo", {}, **{"X-Amz-Client-Context": context})
    assert response.json()["client_context"] == {"k": "v"}


async def test_function_error_is_200_with_unhandled_and_counted(platform: Platform) -> None:
    response = await _invoke(platform, "fail", {})
    assert response.status_code == 200
    assert response.headers["x-amz-function-error"] == "Unhandled"
    assert response.json()["errorType"] == "ValueError"
    assert (
        platform.sample(
            "kubelambda_invocation_errors_total",
            function="fail",
            version="$LATEST",
            error_type="Unhandled",
        )
        == 1
    )


async def test_timeout_is_reported_as_sandbox_timedout(platform: Platform) -> None:
    response = await _invoke(platform, "sleep", {"seconds": 3})
    assert response.headers["x-amz-function-error"] == "Unhandled"
    assert response.json()["errorType"] == "Sandbox.Timedout"
    assert (
        platform.sample(
            "kubelambda_invocation_errors_total",
            function="sleep",
            version="$LATEST",
            error_type="Sandbox.Timedout",
        )
        == 1
    )


async def test_tail_returns_the_log(platform: Platform) -> None:
    response = await _invoke(platform, "chatty", {}, **{"X-Amz-Log-Type": "Tail"})
    log = base64.b64decode(response.headers["x-amz-log-result"]).decode()
    assert "hello from the function" in log
    assert f"END RequestId: {response.headers['x-amzn-requestid']}" in log


async def test_concurrent_invokes_are_held_until_instances_are_ready(platform: Platform) -> None:
    responses = await asyncio.gather(
        *(_invoke(platform, "sleep", {"seconds": 0.3}) for _ in range(6))
    )
    assert [r.status_code for r in responses] == [200] * 6
    assert len({r.headers["x-amzn-requestid"] for r in responses}) == 6
    assert (
        platform.sample(
            "kubelambda_activator_wait_seconds_count", function="sleep", version="$LATEST"
        )
        >= 1
    )
    assert (
        platform.sample("kubelambda_concurrent_executions", function="sleep", version="$LATEST")
        == 0
    )


async def test_a_deleted_function_leaves_the_gauges_and_keeps_its_counts(
    platform: Platform,
) -> None:
    assert (await _invoke(platform, "fail", {})).status_code == 200
    labels = {"namespace": "default", "function": "fail", "version": "$LATEST"}
    gauge = "kubelambda_concurrent_executions"
    assert platform.registry.get_sample_value(gauge, labels) == 0

    async with httpx.AsyncClient(timeout=30.0) as client:
        deleted = await client.delete(
            f"{platform.url}/2015-03-31/functions/fail", headers=platform.auth
        )
    assert deleted.status_code == 204
    # The gateway learns of it from the store's watch; metrics are polled, not awaited.
    async with asyncio.timeout(10):
        while platform.registry.get_sample_value(gauge, labels) is not None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    assert (
        platform.registry.get_sample_value("kubelambda_activator_waiting_requests", labels) is None
    )
    assert (
        platform.sample(
            "kubelambda_invocations_total",
            function="fail",
            version="$LATEST",
            outcome="function_error",
        )
        == 1
    )


async def test_reserved_concurrency_throttles_past_the_cap(platform: Platform) -> None:
    first = asyncio.create_task(_invoke(platform, "capped", {"seconds": 1}))
    gauge = "kubelambda_concurrent_executions"
    # Metrics are polled, not awaited: wait until the first one is running.
    while platform.sample(gauge, function="capped", version="$LATEST") < 1:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    second = await _invoke(platform, "capped", {})
    assert second.status_code == 429
    assert second.json()["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert (await first).status_code == 200


async def test_warm_invokes_reuse_the_instance(platform: Platform) -> None:
    for _ in range(3):
        assert (await _invoke(platform, "echo", {})).status_code == 200
    assert len(platform.backend.endpoints(factories.target("echo"))) == 1


async def test_busy_instance_is_retried_until_it_is_free(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.services.invoker")
    # Warm one instance of the single-runtime function through the gateway...
    assert (await _invoke(platform, "sleep", {"seconds": 0})).status_code == 200
    (instance,) = platform.backend.endpoints(factories.target("sleep"))
    # ...then occupy its runtime behind the gateway's back, as another gateway would.
    async with instance_client(instance, timeout=10.0) as direct:
        occupied = asyncio.create_task(
            direct.post(
                protocol.INVOKE_PATH,
                content=b'{"seconds": 0.5}',
                headers={
                    protocol.INVOKE_TOKEN: instance.token,
                    protocol.REQUEST_ID: "direct",
                    protocol.INVOKED_FUNCTION_ARN: f"{ARN}:sleep",
                },
            )
        )
        # The agent's readiness report says when its only runtime is taken.
        token = {protocol.INVOKE_TOKEN: instance.token}
        while (await direct.get(protocol.READY_PATH, headers=token)).json()["idle"] > 0:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        response = await _invoke(platform, "sleep", {"seconds": 0})
        assert (await occupied).status_code == 200
    assert response.status_code == 200
    assert response.json() == {"slept": 0}
    assert platform.backend.endpoints(factories.target("sleep")) == (instance,)
    assert any(r.message.startswith("instance busy") for r in caplog.records)


async def test_a_request_without_credentials_never_reaches_an_instance(
    platform: Platform,
) -> None:
    async with httpx.AsyncClient(timeout=30.0) as client:
        response = await client.post(platform.invoke_url("echo"), content=b"{}")
    assert response.status_code == 403
    assert platform.backend.endpoints(factories.target("echo")) == ()
    assert platform.scaler.pokes == 0
