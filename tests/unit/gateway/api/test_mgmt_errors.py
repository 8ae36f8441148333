"""The management app's error mapping: every failure leaves in Lambda's shape."""

from __future__ import annotations

import json

import pytest

from gateway.api.errors import lambda_response, validation_error
from kubelambda import errors


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.ResourceNotFound("Function not found: x"), 404, "ResourceNotFoundException"),
        (errors.ResourceConflict("busy"), 409, "ResourceConflictException"),
        (errors.InvalidParameterValue("bad"), 400, "InvalidParameterValueException"),
        (errors.InvalidRequestContent("json"), 400, "InvalidRequestContentException"),
        (errors.Validation("model"), 400, "ValidationException"),
        (errors.PreconditionFailed("rev"), 412, "PreconditionFailedException"),
        (errors.RequestTooLarge("big"), 413, "RequestEntityTooLargeException"),
        (errors.UnknownOperation("where"), 404, "UnknownOperationException"),
        (
            errors.ProvisionedConcurrencyConfigNotFound("none"),
            404,
            "ProvisionedConcurrencyConfigNotFoundException",
        ),
        (errors.UnrecognizedClient("who"), 403, "UnrecognizedClientException"),
        (errors.InvalidSignature("sig"), 403, "InvalidSignatureException"),
        (errors.MissingAuthenticationToken("none"), 403, "MissingAuthenticationTokenException"),
        (errors.ServiceError("oops"), 500, "ServiceException"),
    ],
)
def test_lambda_errors_keep_status_code_and_message(error, status, code):
    response = lambda_response(error)
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert response.headers["x-amzn-ErrorType"] == code
    assert (body["__type"], body["message"], body["Message"]) == (
        code,
        error.message,
        error.message,
    )


def test_one_validation_problem_is_worded_like_aws():
    error = validation_error(
        [{"type": "int_parsing", "loc": ("query", "MaxItems"), "input": "x", "msg": "bad int"}]
    )
    assert isinstance(error, errors.Validation)
    assert error.message == (
        "1 validation error detected: Value 'x' at 'maxItems' failed to satisfy constraint: bad int"
    )


def test_several_validation_problems_are_counted():
    problem = {"type": "missing", "loc": ("body", "Role"), "input": None, "msg": "required"}
    error = validation_error([problem, problem])
    assert error.message.startswith("2 validation errors detected: ")


def test_unparsable_json_is_invalid_request_content():
    error = validation_error(
        [{"type": "json_invalid", "loc": ("body", 1), "ctx": {"error": "Expecting value"}}]
    )
    assert isinstance(error, errors.InvalidRequestContent)
    assert error.message == "Could not parse request body into json: Expecting value"


def test_a_huge_input_is_quoted_only_in_part():
    problem = {"type": "string_type", "loc": ("body", "Code"), "input": "A" * 10_000, "msg": "m"}
    message = validation_error([problem]).message
    assert "A" * 100 + "..." in message
    assert len(message) < 300


def test_environment_values_are_never_echoed():
    problem = {
        "type": "string_type",
        "loc": ("body", "Environment", "Variables", "DB_PASSWORD"),
        "input": 123456,
        "msg": "Input should be a valid string",
    }
    message = validation_error([problem]).message
    assert "123456" not in message
    assert "'***'" in message
