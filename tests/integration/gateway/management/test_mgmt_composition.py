"""The ASGI composition: the invoke route's body limit and hand-off, errors of the edge."""

from __future__ import annotations

import json

import botocore.exceptions
import httpx
import pytest

LIMIT = 6_291_456


def bearer(gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.keys.api_key}"}


def test_invoke_reaches_the_invoke_app_with_body_and_principal(gateway):
    response = gateway.client().invoke(FunctionName="f", Payload=b'{"x": 1}')
    assert response["StatusCode"] == 200
    assert json.loads(response["Payload"].read()) == {
        "path": "/2015-03-31/functions/f/invocations",
        "size": 8,
        "principal": "admin",
    }


def test_invoke_with_an_arn_reaches_the_invoke_app(gateway):
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f:live"
    response = gateway.client().invoke(FunctionName=arn, Payload=b"{}")
    assert json.loads(response["Payload"].read())["path"] == (
        f"/2015-03-31/functions/{arn}/invocations"
    )


def test_invoke_at_the_limit_is_accepted(gateway):
    response = httpx.post(
        f"{gateway.url}/2015-03-31/functions/f/invocations",
        content=b"x" * LIMIT,
        headers=bearer(gateway),
    )
    assert response.status_code == 200
    assert response.json()["size"] == LIMIT


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
