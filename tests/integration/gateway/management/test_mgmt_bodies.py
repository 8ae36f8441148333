"""Management request bodies from clients other than boto3: without a Content-Type, with
JSON members of the wrong type. Raw HTTP with a bearer key, as curl users send them."""

from __future__ import annotations

import httpx
import pytest
from mgmt_gateway import create


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
