"""Authentication at the gateway: SigV4 from boto3 and the AWS CLI, bearer keys, refusals."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import botocore.auth
import botocore.exceptions
import httpx
import pytest
from mgmt_gateway import create


def refusal(excinfo: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_boto3_request_signed_with_the_generated_keys_is_accepted(gateway):
    assert gateway.client().list_functions()["Functions"] == []


def test_wrong_secret_is_an_invalid_signature(gateway):
    client = gateway.client(aws_secret_access_key="wrong" * 8)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.list_functions()
    assert refusal(excinfo) == (403, "InvalidSignatureException")


def test_unknown_access_key_is_unrecognized(gateway):
    client = gateway.client(aws_access_key_id="AKIAUNKNOWNUNKNOWN00")
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.list_functions()
    assert refusal(excinfo) == (403, "UnrecognizedClientException")
    assert excinfo.value.response["Error"]["Message"] == (
        "The security token included in the request is invalid."
    )


def test_body_tampered_after_signing_is_an_invalid_signature(gateway):
    client = gateway.client()

    def tamper(request, **_):
        request.body = request.body.replace(b"128", b"256")

    client.meta.events.register_last("before-send.lambda.CreateFunction", tamper)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        create(client, wait=False, MemorySize=128)
    assert refusal(excinfo) == (403, "InvalidSignatureException")


def test_boto3_signs_every_x_amz_header_it_sends(gateway):
    client = gateway.client(aws_session_token="session-token")
    create(client)
    sent: list[str] = []

    def record(request, **_):
        sent.extend(name.lower() for name in request.headers if name.lower().startswith("x-amz-"))

    client.meta.events.register_last("before-send.lambda.Invoke", record)
    answer = client.invoke(
        FunctionName="f",
        InvocationType="DryRun",
        LogType="Tail",
        ClientContext=base64.b64encode(b'{"custom": {"a": 1}}').decode(),
    )
    assert answer["StatusCode"] == 204
    assert {"x-amz-invocation-type", "x-amz-log-type", "x-amz-client-context"} <= set(sent)
    assert {"x-amz-date", "x-amz-security-token"} <= set(sent)


@pytest.mark.parametrize(
    ("operation", "header", "value"),
    [
        ("ListFunctions", "X-Amz-Log-Type", "Tail"),
        ("Invoke", "X-Amz-Log-Type", "Tail"),
        ("Invoke", "X-Amz-Invocation-Type", "DryRun"),
    ],
)
def test_an_x_amz_header_added_after_signing_is_refused(gateway, operation, header, value):
    client = gateway.client()
    create(client)

    def tamper(request, **_):
        request.headers[header] = value

    client.meta.events.register_last(f"before-send.lambda.{operation}", tamper)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        if operation == "Invoke":
            client.invoke(FunctionName="f", Payload=b"{}")
        else:
            client.list_functions()
    assert refusal(excinfo) == (403, "InvalidSignatureException")
    assert header.lower() in excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "credentials",
    [b"", b"Authorization: Bearer not-a-key\r\n"],
    ids=["no-credentials", "unknown-bearer"],
)
@pytest.mark.parametrize("path", ["/2015-03-31/functions", "/2015-03-31/functions/f/invocations"])
def test_a_large_unauthenticated_body_is_refused_before_it_is_sent(gateway, credentials, path):
    # Only the headers of a 60 MB POST go out: the 403 must come back without the body.
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode()
            + credentials
            + b"Content-Type: application/json\r\nContent-Length: 60000000\r\n\r\n"
        )
        connection.settimeout(5)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = connection.recv(65536)
            assert chunk, "the gateway closed the connection without answering"
            response += chunk
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.split()[1] == b"403"
    assert b"connection: close" in rest.lower()


def test_request_signed_too_long_ago_has_an_expired_signature(gateway, monkeypatch):
    signed_at = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: signed_at)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        gateway.client().list_functions()
    assert refusal(excinfo) == (403, "InvalidSignatureException")
    assert excinfo.value.response["Error"]["Message"].startswith("Signature expired:")


def test_arn_with_encoded_colons_verifies(gateway):
    client = gateway.client()
    create(client)
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f"
    assert client.get_function_configuration(FunctionName=arn)["FunctionName"] == "f"


def test_bearer_api_key_is_accepted(gateway):
    response = httpx.get(
        f"{gateway.url}/2015-03-31/functions",
        headers={"Authorization": f"Bearer {gateway.keys.api_key}"},
    )
    assert response.status_code == 200
    assert response.json() == {"Functions": []}


def test_unknown_bearer_key_is_unrecognized(gateway):
    response = httpx.get(
        f"{gateway.url}/2015-03-31/functions", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "UnrecognizedClientException"


def test_missing_credentials_are_refused(gateway):
    response = httpx.get(f"{gateway.url}/2015-03-31/functions")
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_missing_credentials_reach_boto3_as_a_client_error(gateway):
    client = gateway.client()

    def strip(request, **_):
        del request.headers["Authorization"]

    client.meta.events.register_last("before-send.lambda.ListFunctions", strip)
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.list_functions()
    assert refusal(excinfo) == (403, "MissingAuthenticationTokenException")


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_health_and_metrics_are_open(gateway, path):
    assert httpx.get(f"{gateway.url}{path}").status_code == 200


def test_aws_cli_lists_functions(gateway, tmp_path):
    create(gateway.client())
    aws = Path(sys.executable).with_name("aws")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": gateway.keys.access_key_id,
        "AWS_SECRET_ACCESS_KEY": gateway.keys.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [str(aws), "lambda", "list-functions", "--endpoint-url", gateway.url, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert [f["FunctionName"] for f in json.loads(completed.stdout)["Functions"]] == ["f"]
