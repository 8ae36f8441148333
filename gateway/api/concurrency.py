"""Routes of reserved and provisioned concurrency (Put/Get/Delete, ListProvisioned...).

Mounted by ``gateway.api.create_management_app`` at Lambda's dated paths: reserved
concurrency is written under ``/2017-10-31`` and read under ``/2019-09-30``; provisioned
concurrency lives under ``/2019-09-30/.../provisioned-concurrency`` where ``?List=ALL``
distinguishes the list from a get.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from gateway.api import bodies, shapes
from gateway.api.dependencies import Concurrency, Namespace, Region

__all__ = ["router"]

router = APIRouter()

_RESERVED_WRITE = "/2017-10-31/functions/{FunctionName}/concurrency"
_RESERVED_READ = "/2019-09-30/functions/{FunctionName}/concurrency"
_PROVISIONED = "/2019-09-30/functions/{FunctionName}/provisioned-concurrency"

OptionalQuery = Annotated[str | None, Query()]


@router.put(_RESERVED_WRITE)
async def put_function_concurrency(
    FunctionName: str,
    body: bodies.PutFunctionConcurrency,
    concurrency: Concurrency,
    namespace: Namespace,
) -> JSONResponse:
    reserved = await concurrency.put_reserved(
        namespace, FunctionName, body.ReservedConcurrentExecutions
    )
    return JSONResponse({"ReservedConcurrentExecutions": reserved})


@router.delete(_RESERVED_WRITE)
async def delete_function_concurrency(
    FunctionName: str, concurrency: Concurrency, namespace: Namespace
) -> Response:
    await concurrency.delete_reserved(namespace, FunctionName)
    return Response(status_code=204)


@router.get(_RESERVED_READ)
async def get_function_concurrency(
    FunctionName: str, concurrency: Concurrency, namespace: Namespace
) -> JSONResponse:
    reserved = await concurrency.get_reserved(namespace, FunctionName)
    return JSONResponse({} if reserved is None else {"ReservedConcurrentExecutions": reserved})


@router.put(_PROVISIONED)
async def put_provisioned_concurrency_config(
    FunctionName: str,
    body: bodies.PutProvisionedConcurrency,
    concurrency: Concurrency,
    namespace: Namespace,
    Qualifier: OptionalQuery = None,
) -> JSONResponse:
    config = await concurrency.put_provisioned(
        namespace, FunctionName, Qualifier, body.ProvisionedConcurrentExecutions
    )
    return JSONResponse(shapes.provisioned_config(config), status_code=202)


@router.get(_PROVISIONED)
async def get_or_list_provisioned_concurrency(
    FunctionName: str,
    concurrency: Concurrency,
    namespace: Namespace,
    region: Region,
    Qualifier: OptionalQuery = None,
    List: OptionalQuery = None,
    Marker: OptionalQuery = None,
    MaxItems: Annotated[int | None, Query()] = None,
) -> JSONResponse:
    if List != "ALL":
        config = await concurrency.get_provisioned(namespace, FunctionName, Qualifier)
        return JSONResponse(shapes.provisioned_config(config))
    items, next_marker = await concurrency.list_provisioned(
        namespace, FunctionName, marker=Marker, max_items=MaxItems
    )
    shape: dict[str, object] = {
        "ProvisionedConcurrencyConfigs": [
            shapes.provisioned_config(item, region=region) for item in items
        ]
    }
    if next_marker:
        shape["NextMarker"] = next_marker
    return JSONResponse(shape)


@router.delete(_PROVISIONED)
async def delete_provisioned_concurrency_config(
    FunctionName: str,
    concurrency: Concurrency,
    namespace: Namespace,
    Qualifier: OptionalQuery = None,
) -> Response:
    await concurrency.delete_provisioned(namespace, FunctionName, Qualifier)
    return Response(status_code=204)
