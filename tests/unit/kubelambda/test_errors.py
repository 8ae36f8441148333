"""The single wire mapping of Lambda errors: status, error-type header and body members."""

import json

import pytest

from kubelambda import errors


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.ResourceNotFound("Function not found: arn"), 404, "ResourceNotFoundException"),
        (errors.ResourceConflict("exists"), 409, "ResourceConflictException"),
        (errors.InvalidParameterValue("bad"), 400, "InvalidParameterValueException"),
        (errors.InvalidRequestContent("bad json"), 400, "InvalidRequestContentException"),
        (errors.UnsupportedMediaType("no"), 415, "UnsupportedMediaTypeException"),
        (errors.RequestTooLarge("big"), 413, "RequestEntityTooLargeException"),
        (errors.PreconditionFailed("rev"), 412, "PreconditionFailedException"),
        (errors.UnrecognizedClient("who"), 403, "UnrecognizedClientException"),
        (errors.InvalidSignature("sig"), 403, "InvalidSignatureException"),
        (errors.ServiceError("boom"), 500, "ServiceException"),
        (errors.ResourceNotReady("later"), 502, "ResourceNotReadyException"),
    ],
)
def test_to_wire_carries_status_header_and_type(
    error: errors.LambdaError, status: int, code: str
) -> None:
    wire_status, headers, body = error.to_wire()
    decoded = json.loads(body)
    assert wire_status == status
    assert headers["x-amzn-ErrorType"] == code
    assert decoded["__type"] == code
    assert decoded["message"] == decoded["Message"] == error.message


def test_throttle_carries_reason_and_retry_after() -> None:
    error = errors.TooManyRequests(
        "Rate Exceeded.",
        reason="ReservedFunctionConcurrentInvocationLimitExceeded",
        retry_after=2.4,
    )
    status, headers, body = error.to_wire()
    assert status == 429
    assert headers["Retry-After"] == "2"
    assert json.loads(body)["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert error.retriable


def test_client_errors_are_permanent_and_server_errors_retriable() -> None:
    assert not errors.InvalidParameterValue("x").retriable
    assert errors.ServiceError("x").retriable
