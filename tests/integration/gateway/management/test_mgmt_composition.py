"""The ASGI composition: the invoke route's body limit and hand-off, errors of the edge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import httpx
import pytest
from kubelambda_agent import protocol
from mgmt_gateway import RunningGateway, create, make_zip, running_gateway

LIMIT = 6_291_456
# Echoes an object event; reports only the length of a string one (the 6 MiB test).
HANDLER = (
    "def handler(event, context):\n"
    "    return {'length': len(event)} if isinstance(event, str) else event\n"
)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """Invokes run here: the autoscaler runs, so functions scale from zero."""
    with running_gateway(tmp_path, autoscale=True) as running:
        yield running


@pytest.fixture
def function(gateway: RunningGateway) -> str:
    create(gateway.client(), "f", Code={"ZipFile": make_zip({"app.py": HANDLER})})
    return "f"


def bearer(gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.keys.api_key}"}


def test_the_limit_is_lambdas_6_mib_as_the_agent_has_it():
    assert LIMIT == protocol.MAX_EVENT_BYTES


def test_invoke_reaches_the_function_with_the_body(gateway, function):
    response = gateway.client().invoke(FunctionName=function, Payload=b'{"x": 1}')
    assert response["StatusCode"] == 200
    assert json.loads(response["Payload"].read()) == {"x": 1}


def test_invoke_with_an_arn_reaches_the_function(gateway, function):
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function}:$LATEST"
    response = gateway.client().invoke(FunctionName=arn, Payload=b'{"y": 2}')
    assert response["ExecutedVersion"] == "$LATEST"
    assert json.loads(response["Payload"].read()) == {"y": 2}


def test_invoke_at_the_limit_is_accepted_all_the_way_to_the_function(gateway, function):
    event = b'"' + b"x" * (LIMIT - 2) + b'"'
    response = httpx.post(
        f"{gateway.url}/2015-03-31/functions/{function}/invocations",
        content=event,
        headers=bearer(gateway),
        timeout=60,
    )
    assert response.status_code == 200
    assert response.json() == {"length": LIMIT - 2}


def test_invoke_over_the_limit_is_refused_from_content_length(gateway):
    response = httpx.post(
        f"{gateway.url}/2015-03-31/functions/f/invocations",
        content=b"x" * (LIMIT + 1),
        headers=bearer(gateway),
    )
    assert response.status_code == 413
    assert response.headers["x-amzn-ErrorType"] == "RequestEntityTooLargeException"


def test_invoke_over_the_limit_is_refused_while_streaming(gateway):
    def chunks():
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    response = httpx.post(
        f"{gateway.url}/2015-03-31/functions/f/invocations",
        content=chunks(),
        headers=bearer(gateway),
    )
    assert response.status_code == 413


def test_boto3_invoke_over_the_limit_gets_a_413_client_error(gateway):
    client = gateway.client()
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.invoke(FunctionName="f", Payload=b"x" * (LIMIT + 10))
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_invoke_without_credentials_is_refused_before_the_invoke_app(gateway):
    response = httpx.post(f"{gateway.url}/2015-03-31/functions/f/invocations", content=b"{}")
    assert response.status_code == 403


def test_unknown_route_is_an_unknown_operation(gateway):
    response = httpx.get(f"{gateway.url}/2099-01-01/nothing", headers=bearer(gateway))
    assert response.status_code == 404
    assert response.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_request_that_breaks_the_model_is_a_validation_exception(gateway):
    response = httpx.get(
        f"{gateway.url}/2015-03-31/functions?MaxItems=many", headers=bearer(gateway)
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "ValidationException"
    assert response.json()["message"].startswith("1 validation error detected: Value 'many'")


def test_body_that_is_not_json_is_invalid_request_content(gateway):
    response = httpx.post(
        f"{gateway.url}/2015-03-31/functions",
        content=b"{not json",
        headers=bearer(gateway) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"


def test_management_answers_carry_a_request_id(gateway):
    first = gateway.client().list_functions()["ResponseMetadata"]["RequestId"]
    second = gateway.client().list_functions()["ResponseMetadata"]["RequestId"]
    assert first and second and first != second
