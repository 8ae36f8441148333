"""An instance's invoke port runs nothing for whoever bypasses the gateway.

The gateway authenticates the caller and counts the invocation against the function's
concurrency; a process on the same host that found the port must get neither.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from invoke_harness import Platform

from tests import factories
from tests.instance_http import instance_client

HOSTILE_ID = "hostile-request-0001"


def _boto3_invoke(platform: Platform) -> dict[str, Any]:
    client = boto3.client(
        "lambda",
        endpoint_url=platform.url,
        region_name=platform.region,
        aws_access_key_id=platform.keys.access_key_id,
        aws_secret_access_key=platform.keys.secret_access_key,
        config=Config(retries={"max_attempts": 0}, read_timeout=60),
    )
    response: dict[str, Any] = client.invoke(FunctionName="echo", Payload=b'{"via": "gateway"}')
    response["Payload"] = response["Payload"].read()
    return response


async def test_raw_post_to_the_instance_port_is_refused(platform: Platform, tmp_path: Path) -> None:
    # Through the gateway: runs, and leaves a warm instance whose port we then find.
    through_gateway = await asyncio.to_thread(_boto3_invoke, platform)
    assert through_gateway["StatusCode"] == 200
    assert b'"via": "gateway"' in through_gateway["Payload"]
    [endpoint] = platform.backend.endpoints(factories.target("echo", "$LATEST"))

    async with instance_client(endpoint, timeout=10.0) as client:
        raw = await client.post(
            "/invoke",
            content=b"{}",
            headers={
                "Kubelambda-Request-Id": HOSTILE_ID,
                "Kubelambda-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:0:function:echo",
            },
        )

    assert raw.status_code == 403
    logs = "".join(p.read_text() for p in (tmp_path / "home" / "logs").rglob("*.log"))
    assert HOSTILE_ID not in logs
    # And the gateway still gets through to the same instance.
    again = await asyncio.to_thread(_boto3_invoke, platform)
    assert again["StatusCode"] == 200
