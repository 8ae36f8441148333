"""Request bodies of the management API, as pydantic models with Lambda's member names.

Parsed by FastAPI in the routers (``gateway.api.functions``/``aliases``/``concurrency``/
``tags``/``event_invoke_configs``), strictly: a member of the wrong JSON type becomes a
Lambda ``InvalidParameterValueException``, a missing one a ``ValidationException`` (in
``gateway.api.errors``). Members kubelambda does not implement
(VPC, layers, tracing, ...) are ignored like unknown JSON members; those that would
change behaviour (container images, S3 code, arm64) are refused by ``zip_package``.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict

from kubelambda import errors

__all__ = [
    "CreateAlias",
    "CreateFunction",
    "EventInvokeConfig",
    "PublishVersion",
    "PutFunctionConcurrency",
    "PutProvisionedConcurrency",
    "TagResource",
    "UpdateAlias",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "decode_zip",
    "zip_package",
]


class _Body(BaseModel):
    # Strict: JSON types are not coerced ("Timeout": "10" is refused, as AWS does).
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class EnvironmentBody(_Body):
    Variables: dict[str, str] | None = None


class FunctionCodeBody(_Body):
    ZipFile: str | None = None
    S3Bucket: str | None = None
    S3Key: str | None = None
    ImageUri: str | None = None


class DeadLetterConfigBody(_Body):
    # Lambda's ResourceArn may be empty: that turns dead letters off.
    TargetArn: str = ""


class CreateFunction(_Body):
    FunctionName: str
    Role: str
    Code: FunctionCodeBody
    Runtime: str | None = None
    Handler: str | None = None
    Description: str = ""
    Timeout: int = 3
    MemorySize: int = 128
    Publish: bool = False
    PackageType: str = "Zip"
    Environment: EnvironmentBody | None = None
    Tags: dict[str, str] | None = None
    Architectures: list[str] | None = None
    DeadLetterConfig: DeadLetterConfigBody | None = None


class UpdateFunctionCode(_Body):
    ZipFile: str | None = None
    S3Bucket: str | None = None
    ImageUri: str | None = None
    Publish: bool = False
    RevisionId: str | None = None
    Architectures: list[str] | None = None


class UpdateFunctionConfiguration(_Body):
    Runtime: str | None = None
    Role: str | None = None
    Handler: str | None = None
    Description: str | None = None
    Timeout: int | None = None
    MemorySize: int | None = None
    Environment: EnvironmentBody | None = None
    DeadLetterConfig: DeadLetterConfigBody | None = None
    RevisionId: str | None = None


class PublishVersion(_Body):
    CodeSha256: str | None = None
    Description: str | None = None
    RevisionId: str | None = None


class RoutingConfigBody(_Body):
    AdditionalVersionWeights: dict[str, float] | None = None


class CreateAlias(_Body):
    Name: str
    FunctionVersion: str
    Description: str = ""
    RoutingConfig: RoutingConfigBody | None = None


class UpdateAlias(_Body):
    FunctionVersion: str | None = None
    Description: str | None = None
    RoutingConfig: RoutingConfigBody | None = None
    RevisionId: str | None = None


class PutFunctionConcurrency(_Body):
    ReservedConcurrentExecutions: int


class PutProvisionedConcurrency(_Body):
    ProvisionedConcurrentExecutions: int


class TagResource(_Body):
    Tags: dict[str, str]


class DestinationBody(_Body):
    Destination: str | None = None


class DestinationConfigBody(_Body):
    OnSuccess: DestinationBody | None = None
    OnFailure: DestinationBody | None = None


class EventInvokeConfig(_Body):
    """PutFunctionEventInvokeConfig and UpdateFunctionEventInvokeConfig alike."""

    MaximumRetryAttempts: int | None = None
    MaximumEventAgeInSeconds: int | None = None
    DestinationConfig: DestinationConfigBody | None = None


def zip_package(
    zip_file: str | None,
    *,
    package_type: str = "Zip",
    s3_bucket: str | None = None,
    image_uri: str | None = None,
    architectures: list[str] | None = None,
) -> bytes:
    """The decoded ``ZipFile``, refusing the code sources kubelambda does not run yet."""
    if package_type != "Zip" or image_uri is not None:
        raise errors.InvalidParameterValue(
            "PackageType Image is not supported by this installation; upload a ZipFile"
        )
    if s3_bucket is not None:
        raise errors.InvalidParameterValue(
            "Code from S3 is not supported by this installation; upload a ZipFile"
        )
    if architectures and architectures != ["x86_64"]:
        raise errors.InvalidParameterValue(
            f"Architectures {architectures} are not supported; this installation runs x86_64"
        )
    if not zip_file:
        raise errors.InvalidParameterValue("Please provide a source for function code.")
    return decode_zip(zip_file)


def decode_zip(zip_file: str) -> bytes:
    try:
        return base64.b64decode(zip_file, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.InvalidParameterValue(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from exc
