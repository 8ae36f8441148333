"""Routes of the function operations: Create/Get/List/Update/Delete, versions, publish.

Mounted by ``gateway.api.create_management_app`` at Lambda's REST paths (see botocore's
service model). Each handler parses the wire request, calls ``FunctionService`` and
renders the result with ``shapes``; errors propagate to ``gateway.api.errors``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from gateway.api import bodies, shapes
from gateway.api.dependencies import Functions, Links, Namespace, Region
from gateway.services.functions import ConfigurationChange, NewFunction
from kubelambda import errors, names
from kubelambda.models import FunctionVersion

__all__ = ["router"]

router = APIRouter(prefix="/2015-03-31/functions")

# Parameters keep Lambda's query names (MaxItems, Qualifier...): FastAPI reads them by name.

OptionalQuery = Annotated[str | None, Query()]


@router.post("")
async def create_function(
    body: bodies.CreateFunction, functions: Functions, namespace: Namespace, region: Region
) -> JSONResponse:
    zip_file = bodies.zip_package(
        body.Code.ZipFile,
        package_type=body.PackageType,
        s3_bucket=body.Code.S3Bucket,
        image_uri=body.Code.ImageUri,
        architectures=body.Architectures,
    )
    if body.Runtime is None:
        raise errors.InvalidParameterValue("Runtime is required for .zip deployment packages.")
    created = await functions.create(
        namespace,
        NewFunction(
            name=body.FunctionName,
            runtime=body.Runtime,
            role=body.Role,
            handler=body.Handler,
            zip_file=zip_file,
            description=body.Description,
            timeout=body.Timeout,
            memory_size=body.MemorySize,
            environment=body.Environment.Variables if body.Environment else None,
            tags=body.Tags,
            publish=body.Publish,
            dead_letter_target_arn=body.DeadLetterConfig.TargetArn
            if body.DeadLetterConfig
            else None,
        ),
    )
    return JSONResponse(_configuration(created, region), status_code=201)


@router.get("")
async def list_functions(
    functions: Functions,
    namespace: Namespace,
    region: Region,
    Marker: OptionalQuery = None,
    MaxItems: Annotated[int | None, Query()] = None,
    FunctionVersion: OptionalQuery = None,
) -> JSONResponse:
    if FunctionVersion not in (None, "ALL"):
        raise errors.InvalidParameterValue("FunctionVersion must be ALL when given")
    items, next_marker = await functions.list_functions(
        namespace, marker=Marker, max_items=MaxItems, all_versions=FunctionVersion == "ALL"
    )
    shape: dict[str, object] = {
        "Functions": [
            _configuration(item, region, listed_with_versions=FunctionVersion == "ALL")
            for item in items
        ]
    }
    if next_marker:
        shape["NextMarker"] = next_marker
    return JSONResponse(shape)


@router.get("/{FunctionName}")
async def get_function(
    FunctionName: str,
    request: Request,
    functions: Functions,
    namespace: Namespace,
    links: Links,
    region: Region,
    Qualifier: OptionalQuery = None,
) -> JSONResponse:
    ref = names.parse_function_ref(FunctionName, Qualifier, namespace=namespace)
    version = await functions.get(namespace, FunctionName, Qualifier)
    settings = await functions.settings(ref.key)
    location = str(request.base_url).rstrip("/") + links.path(version.code_sha256)
    shape: dict[str, object] = {
        "Configuration": _configuration(version, region, requested=ref.qualifier),
        "Code": {"RepositoryType": "S3", "Location": location},
    }
    if settings.tags:
        shape["Tags"] = dict(settings.tags)
    if settings.reserved_concurrency is not None:
        shape["Concurrency"] = {"ReservedConcurrentExecutions": settings.reserved_concurrency}
    return JSONResponse(shape)


@router.get("/{FunctionName}/configuration")
async def get_function_configuration(
    FunctionName: str,
    functions: Functions,
    namespace: Namespace,
    region: Region,
    Qualifier: OptionalQuery = None,
) -> JSONResponse:
    ref = names.parse_function_ref(FunctionName, Qualifier, namespace=namespace)
    version = await functions.get(namespace, FunctionName, Qualifier)
    return JSONResponse(_configuration(version, region, requested=ref.qualifier))


@router.put("/{FunctionName}/code")
async def update_function_code(
    FunctionName: str,
    body: bodies.UpdateFunctionCode,
    functions: Functions,
    namespace: Namespace,
    region: Region,
) -> JSONResponse:
    zip_file = bodies.zip_package(
        body.ZipFile,
        s3_bucket=body.S3Bucket,
        image_uri=body.ImageUri,
        architectures=body.Architectures,
    )
    updated = await functions.update_code(
        namespace,
        FunctionName,
        zip_file=zip_file,
        publish=body.Publish,
        revision_id=body.RevisionId,
    )
    return JSONResponse(_configuration(updated, region))


@router.put("/{FunctionName}/configuration")
async def update_function_configuration(
    FunctionName: str,
    body: bodies.UpdateFunctionConfiguration,
    functions: Functions,
    namespace: Namespace,
    region: Region,
) -> JSONResponse:
    change = ConfigurationChange(
        runtime=body.Runtime,
        role=body.Role,
        handler=body.Handler,
        description=body.Description,
        timeout=body.Timeout,
        memory_size=body.MemorySize,
        environment=(body.Environment.Variables or {}) if body.Environment else None,
        dead_letter_target_arn=body.DeadLetterConfig.TargetArn if body.DeadLetterConfig else None,
    )
    updated = await functions.update_configuration(
        namespace, FunctionName, change, revision_id=body.RevisionId
    )
    return JSONResponse(_configuration(updated, region))


@router.delete("/{FunctionName}")
async def delete_function(
    FunctionName: str,
    functions: Functions,
    namespace: Namespace,
    Qualifier: OptionalQuery = None,
) -> Response:
    await functions.delete(namespace, FunctionName, Qualifier)
    return Response(status_code=204)


@router.post("/{FunctionName}/versions")
async def publish_version(
    FunctionName: str,
    body: bodies.PublishVersion,
    functions: Functions,
    namespace: Namespace,
    region: Region,
) -> JSONResponse:
    version = await functions.publish(
        namespace,
        FunctionName,
        description=body.Description,
        revision_id=body.RevisionId,
        code_sha256=body.CodeSha256,
    )
    return JSONResponse(_configuration(version, region), status_code=201)


@router.get("/{FunctionName}/versions")
async def list_versions_by_function(
    FunctionName: str,
    functions: Functions,
    namespace: Namespace,
    region: Region,
    Marker: OptionalQuery = None,
    MaxItems: Annotated[int | None, Query()] = None,
) -> JSONResponse:
    items, next_marker = await functions.list_versions(
        namespace, FunctionName, marker=Marker, max_items=MaxItems
    )
    shape: dict[str, object] = {
        "Versions": [_configuration(v, region, listed_with_versions=True) for v in items]
    }
    if next_marker:
        shape["NextMarker"] = next_marker
    return JSONResponse(shape)


def _configuration(
    version: FunctionVersion,
    region: str,
    *,
    requested: str | None = None,
    listed_with_versions: bool = False,
) -> dict[str, object]:
    # Lambda qualifies FunctionArn with what the caller named, with a published version's
    # number, and (in version listings) even with $LATEST; a plain $LATEST stays bare.
    if requested is not None:
        qualifier: str | None = requested
    elif listed_with_versions or not version.is_latest:
        qualifier = version.version
    else:
        qualifier = None
    return shapes.function_configuration(version, region=region, arn_qualifier=qualifier)
