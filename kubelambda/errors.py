"""Lambda service errors, shared by every component, and their one wire mapping.

    LambdaError                      (status, wire code; rendered by ``to_wire``)
    ├── ClientError 4xx              permanent: the caller must change the request
    │   ├── ResourceNotFound 404
    │   ├── ResourceConflict 409
    │   ├── InvalidParameterValue 400
    │   ├── InvalidRequestContent 400
    │   ├── Validation 400          a request member breaks the service model's constraints
    │   ├── UnsupportedMediaType 415
    │   ├── RequestTooLarge 413
    │   ├── PreconditionFailed 412
    │   ├── ProvisionedConcurrencyConfigNotFound 404
    │   ├── UnknownOperation 404    no operation at that method and path
    │   ├── AccessDenied 403 family: UnrecognizedClient, InvalidSignature, AccessDenied,
    │   │                            MissingAuthenticationToken
    │   └── TooManyRequests 429     retriable: carries ``retry_after`` and a ``reason``
    └── ServerError 5xx              retriable
        ├── ServiceError 500
        └── ResourceNotReady 502

botocore reads the error code from the ``x-amzn-ErrorType`` header first, then the body's
``__type``/``code``; ``to_wire`` sends both, with ``message`` and ``Message``, so every
Lambda client finds it.
"""

from __future__ import annotations

import json
from typing import ClassVar

__all__ = [
    "AccessDenied",
    "ClientError",
    "InvalidParameterValue",
    "InvalidRequestContent",
    "InvalidSignature",
    "LambdaError",
    "MissingAuthenticationToken",
    "PreconditionFailed",
    "ProvisionedConcurrencyConfigNotFound",
    "RequestTooLarge",
    "ResourceConflict",
    "ResourceNotFound",
    "ResourceNotReady",
    "ServerError",
    "ServiceError",
    "TooManyRequests",
    "UnknownOperation",
    "UnrecognizedClient",
    "UnsupportedMediaType",
    "Validation",
]


class LambdaError(Exception):
    """An error the API reports to its caller in Lambda's shape."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "ServiceException"
    retriable: ClassVar[bool] = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body_fields(self) -> dict[str, object]:
        return {"Type": "User" if self.status < 500 else "Service"}

    def headers(self) -> dict[str, str]:
        return {"x-amzn-ErrorType": self.code, "Content-Type": "application/json"}

    def to_wire(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body, exactly as the gateway sends them."""
        body: dict[str, object] = {
            "__type": self.code,
            "message": self.message,
            "Message": self.message,
        }
        body.update(self.body_fields())
        return self.status, self.headers(), json.dumps(body).encode()


class ClientError(LambdaError):
    status = 400
    code = "InvalidRequestException"


class ResourceNotFound(ClientError):
    status = 404
    code = "ResourceNotFoundException"


class ProvisionedConcurrencyConfigNotFound(ClientError):
    status = 404
    code = "ProvisionedConcurrencyConfigNotFoundException"


class ResourceConflict(ClientError):
    status = 409
    code = "ResourceConflictException"


class InvalidParameterValue(ClientError):
    code = "InvalidParameterValueException"


class InvalidRequestContent(ClientError):
    code = "InvalidRequestContentException"


class Validation(ClientError):
    code = "ValidationException"


class UnknownOperation(ClientError):
    status = 404
    code = "UnknownOperationException"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "UnsupportedMediaTypeException"


class RequestTooLarge(ClientError):
    # The service model calls it RequestTooLargeException; AWS sends this code on the wire.
    status = 413
    code = "RequestEntityTooLargeException"


class PreconditionFailed(ClientError):
    status = 412
    code = "PreconditionFailedException"


class AccessDenied(ClientError):
    status = 403
    code = "AccessDeniedException"


class UnrecognizedClient(AccessDenied):
    code = "UnrecognizedClientException"


class InvalidSignature(AccessDenied):
    code = "InvalidSignatureException"


class MissingAuthenticationToken(AccessDenied):
    code = "MissingAuthenticationTokenException"


class TooManyRequests(ClientError):
    """Throttled: too many concurrent executions, or the activator's wait is full."""

    status = 429
    code = "TooManyRequestsException"
    retriable = True

    def __init__(self, message: str, *, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after

    def body_fields(self) -> dict[str, object]:
        return {"Type": "User", "Reason": self.reason, "retryAfterSeconds": str(self.retry_after)}

    def headers(self) -> dict[str, str]:
        return super().headers() | {"Retry-After": str(max(1, round(self.retry_after)))}


class ServerError(LambdaError):
    retriable = True


class ServiceError(ServerError):
    status = 500
    code = "ServiceException"


class ResourceNotReady(ServerError):
    status = 502
    code = "ResourceNotReadyException"
