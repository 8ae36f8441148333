"""How the management app answers failures: always in Lambda's error shape.

Installed by ``gateway.api.create_management_app``. Every ``LambdaError`` goes out through
``LambdaError.to_wire`` (the one mapping); FastAPI's request validation errors become
``ValidationException``, ``InvalidParameterValueException`` for a body member of the
wrong JSON type, or ``InvalidRequestContentException`` for a body that is not a JSON
object, unknown routes ``UnknownOperationException``, and anything unexpected a logged
``ServiceException`` with no internals in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from kubelambda import errors

__all__ = ["install", "lambda_response", "validation_error"]

log = logging.getLogger(__name__)

_MAX_SHOWN = 100


def lambda_response(error: errors.LambdaError) -> Response:
    status, headers, body = error.to_wire()
    return Response(content=body, status_code=status, headers=headers)


def validation_error(details: Sequence[Any]) -> errors.LambdaError:
    """One Lambda error for pydantic's list of problems, worded like AWS's."""
    for detail in details:
        if detail.get("type") == "json_invalid":
            return errors.InvalidRequestContent(
                f"Could not parse request body into json: {detail.get('ctx', {}).get('error', '')}"
            )
        location = tuple(detail.get("loc", ()))
        if location == ("body",) and detail.get("type") in _TYPE_NAMES:
            return errors.InvalidRequestContent(
                "Could not parse request body into json: the request body must be a JSON object"
            )
        if location[:1] == ("body",) and detail.get("type") in _TYPE_NAMES:
            return errors.InvalidParameterValue(
                f"Invalid type for parameter '{_member(location)}': expected "
                f"{_TYPE_NAMES[detail['type']]}, got {_json_type(detail.get('input'))}"
                f" ('{_shown(detail.get('input'), location)}')"
            )
    problems = [
        f"Value '{_shown(detail.get('input'), detail.get('loc', ()))}' at "
        f"'{_member(detail.get('loc', ()))}' failed to satisfy constraint: "
        f"{detail.get('msg', 'invalid value')}"
        for detail in details
    ]
    count = len(problems)
    plural = "error" if count == 1 else "errors"
    return errors.Validation(f"{count} validation {plural} detected: {'; '.join(problems)}")


# pydantic's type errors (strict bodies), by the JSON type that was expected.
_TYPE_NAMES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    for kind, name in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
    ):
        if isinstance(value, kind):
            return name
    return "a value of another type"


def install(app: FastAPI) -> None:
    async def on_lambda_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, errors.LambdaError)
        return lambda_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return lambda_response(validation_error(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code in (404, 405):
            return lambda_response(
                errors.UnknownOperation(f"Unknown operation: {request.method} {request.url.path}")
            )
        return lambda_response(errors.InvalidRequestContent(str(exc.detail)))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error(
            "management request failed method=%s path=%s",
            request.method,
            request.url.path,
            exc_info=exc,
        )
        return lambda_response(errors.ServiceError("An internal error occurred."))

    app.add_exception_handler(errors.LambdaError, on_lambda_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def _shown(value: object, location: Sequence[object]) -> str:
    # Environment values are often secrets: never echo them.
    if "Environment" in location:
        return "***"
    # The input may be a whole request body (a base64 zip of megabytes): quote a little.
    text = str(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def _member(location: Sequence[object]) -> str:
    # ("body", "MemorySize") -> "memorySize", as AWS names members in these messages.
    parts = [str(part) for part in location if part not in ("body", "query", "path")]
    name = ".".join(parts) or "request"
    return name[:1].lower() + name[1:]
