"""Management request bodies from clients other than boto3: without a Content-Type, with
JSON members of the wrong type. Raw HTTP with a bearer key, as curl users send them."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from mgmt_gateway import ROLE, create, make_zip


def bearer(gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.keys.api_key}"}


def put_concurrency(gateway, content: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.put(
        f"{gateway.url}/2017-10-31/functions/f/concurrency",
        content=content,
        headers=bearer(gateway) | headers,
    )


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_is_read_as_json_whatever_its_content_type(gateway, content_type):
    create(gateway.client())
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = put_concurrency(gateway, b'{"ReservedConcurrentExecutions": 2}', headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"ReservedConcurrentExecutions": 2}


def test_a_body_that_is_not_json_says_so_without_a_bytes_repr(gateway):
    create(gateway.client())
    response = put_concurrency(gateway, b"ReservedConcurrentExecutions=2", {})
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    message = response.json()["message"]
    assert message.startswith("Could not parse request body into json")
    assert "b'" not in message


def test_a_body_that_is_json_but_not_an_object_is_refused_clearly(gateway):
    create(gateway.client())
    response = put_concurrency(gateway, b"[2]", {"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "JSON object" in response.json()["message"]


def create_body(**overrides: object) -> dict[str, object]:
    return {
        "FunctionName": "typed",
        "Runtime": "python3.11",
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": base64.b64encode(make_zip()).decode()},
    } | overrides


WRONG_TYPES = [
    ("POST", "/2015-03-31/functions", create_body(Timeout="10"), "timeout", "integer"),
    ("POST", "/2015-03-31/functions", create_body(MemorySize=128.5), "memorySize", "integer"),
    ("POST", "/2015-03-31/functions", create_body(Publish="true"), "publish", "boolean"),
    ("POST", "/2015-03-31/functions", create_body(FunctionName=7), "functionName", "string"),
    (
        "POST",
        "/2015-03-31/functions",
        create_body(Environment={"Variables": {"A": 1}}),
        "environment.Variables.A",
        "string",
    ),
    ("POST", "/2015-03-31/functions", create_body(Code="zip"), "code", "object"),
    ("POST", "/2015-03-31/functions", create_body(Tags=["a"]), "tags", "object"),
    (
        "PUT",
        "/2015-03-31/functions/f/configuration",
        {"Timeout": "10"},
        "timeout",
        "integer",
    ),
    (
        "PUT",
        "/2017-10-31/functions/f/concurrency",
        {"ReservedConcurrentExecutions": "2"},
        "reservedConcurrentExecutions",
        "integer",
    ),
    (
        "POST",
        "/2015-03-31/functions/f/aliases",
        {"Name": "live", "FunctionVersion": 1},
        "functionVersion",
        "string",
    ),
    (
        "POST",
        "/2015-03-31/functions/f/aliases",
        {
            "Name": "live",
            "FunctionVersion": "$LATEST",
            "RoutingConfig": {"AdditionalVersionWeights": {"1": "0.5"}},
        },
        "routingConfig.AdditionalVersionWeights.1",
        "number",
    ),
    (
        "PUT",
        "/2019-09-25/functions/f/event-invoke-config",
        {"MaximumRetryAttempts": "1"},
        "maximumRetryAttempts",
        "integer",
    ),
    (
        "POST",
        "/2017-03-31/tags/arn:aws:lambda:us-east-1:000000000000:function:f",
        {"Tags": {"a": 1}},
        "tags.a",
        "string",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "member", "expected"),
    WRONG_TYPES,
    ids=[f"{path.split('/')[-1]}-{member}" for _, path, _, member, _ in WRONG_TYPES],
)
def test_a_member_of_the_wrong_json_type_is_refused(gateway, method, path, body, member, expected):
    create(gateway.client())
    response = httpx.request(
        method,
        f"{gateway.url}{path}",
        content=json.dumps(body).encode(),
        headers=bearer(gateway) | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["x-amzn-ErrorType"] == "InvalidParameterValueException"
    message = response.json()["message"]
    assert f"'{member}'" in message
    assert expected in message
