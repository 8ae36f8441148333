"""boto3 reads the gateway's Invoke answers as it reads AWS Lambda's, signing with SigV4."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from invoke_harness import Platform


def _client(platform: Platform) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=platform.url,
        region_name=platform.region,
        aws_access_key_id=platform.keys.access_key_id,
        aws_secret_access_key=platform.keys.secret_access_key,
        config=Config(retries={"max_attempts": 0}, read_timeout=60),
    )


async def _invoke(platform: Platform, **kwargs: Any) -> dict[str, Any]:
    def call() -> dict[str, Any]:
        response = _client(platform).invoke(**kwargs)
        if "Payload" in response:
            response["Payload"] = response["Payload"].read()
        result: dict[str, Any] = response
        return result

    return await asyncio.to_thread(call)


async def test_result_status_and_executed_version(platform: Platform) -> None:
    response = await _invoke(platform, FunctionName="echo", Qualifier="live", Payload=b'{"x": 1}')
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "1"
    assert json.loads(response["Payload"])["event"] == {"x": 1}
    assert "FunctionError" not in response


async def test_function_error_and_log_tail(platform: Platform) -> None:
    response = await _invoke(platform, FunctionName="fail", LogType="Tail", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"])["errorMessage"] == "bad input"
    assert "REPORT RequestId" in base64.b64decode(response["LogResult"]).decode()


async def test_full_arn_is_accepted(platform: Platform) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo:1"
    response = await _invoke(platform, FunctionName=arn, Payload=b"{}")
    assert response["ExecutedVersion"] == "1"


async def test_an_event_is_202_with_the_request_id_and_no_executed_version(
    platform: Platform,
) -> None:
    response = await _invoke(platform, FunctionName="echo", InvocationType="Event", Payload=b"{}")
    assert response["StatusCode"] == 202
    assert response["ResponseMetadata"]["RequestId"]
    assert "ExecutedVersion" not in response
    assert response["Payload"] == b""


async def test_dry_run_is_204(platform: Platform) -> None:
    response = await _invoke(platform, FunctionName="echo", InvocationType="DryRun")
    assert response["StatusCode"] == 204


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"FunctionName": "missing"}, 404, "ResourceNotFoundException"),
        ({"FunctionName": "echo", "Payload": b"not json"}, 400, "InvalidRequestContentException"),
        (
            {"FunctionName": "missing", "InvocationType": "Event"},
            404,
            "ResourceNotFoundException",
        ),
    ],
)
async def test_service_errors_reach_boto3_with_code_and_status(
    platform: Platform, kwargs: dict[str, Any], status: int, code: str
) -> None:
    with pytest.raises(ClientError) as caught:
        await _invoke(platform, **kwargs)
    error = caught.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code)
    assert error["ResponseMetadata"]["RequestId"]


async def test_throttle_reaches_boto3_with_reason(platform: Platform) -> None:
    running = asyncio.create_task(
        _invoke(platform, FunctionName="capped", Payload=b'{"seconds": 1}')
    )
    gauge = "kubelambda_concurrent_executions"
    # Metrics are polled, not awaited: wait until the first one is running.
    while platform.sample(gauge, function="capped", version="$LATEST") < 1:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    with pytest.raises(ClientError) as caught:
        await _invoke(platform, FunctionName="capped", Payload=b"{}")
    assert caught.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert caught.value.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert (await running)["StatusCode"] == 200
