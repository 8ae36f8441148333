"""Routes of the alias operations: Create/Get/Update/Delete/ListAliases.

Mounted by ``gateway.api.create_management_app`` under ``/2015-03-31/functions``; calls
``AliasService`` and renders ``AliasConfiguration`` shapes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from gateway.api import bodies, shapes
from gateway.api.dependencies import Aliases, Namespace, Region

__all__ = ["router"]

router = APIRouter(prefix="/2015-03-31/functions/{FunctionName}/aliases")

# Parameters keep Lambda's names (FunctionName, Marker...): FastAPI reads them by name.


@router.post("")
async def create_alias(
    FunctionName: str,
    body: bodies.CreateAlias,
    aliases: Aliases,
    namespace: Namespace,
    region: Region,
) -> JSONResponse:
    routing = body.RoutingConfig.AdditionalVersionWeights if body.RoutingConfig else None
    alias = await aliases.create(
        namespace,
        FunctionName,
        name=body.Name,
        function_version=body.FunctionVersion,
        description=body.Description,
        weights=routing or {},
    )
    return JSONResponse(shapes.alias_configuration(alias, region=region), status_code=201)


@router.get("")
async def list_aliases(
    FunctionName: str,
    aliases: Aliases,
    namespace: Namespace,
    region: Region,
    FunctionVersion: Annotated[str | None, Query()] = None,
    Marker: Annotated[str | None, Query()] = None,
    MaxItems: Annotated[int | None, Query()] = None,
) -> JSONResponse:
    items, next_marker = await aliases.list(
        namespace, FunctionName, function_version=FunctionVersion, marker=Marker, max_items=MaxItems
    )
    shape: dict[str, object] = {
        "Aliases": [shapes.alias_configuration(alias, region=region) for alias in items]
    }
    if next_marker:
        shape["NextMarker"] = next_marker
    return JSONResponse(shape)


@router.get("/{Name}")
async def get_alias(
    FunctionName: str, Name: str, aliases: Aliases, namespace: Namespace, region: Region
) -> JSONResponse:
    alias = await aliases.get(namespace, FunctionName, Name)
    return JSONResponse(shapes.alias_configuration(alias, region=region))


@router.put("/{Name}")
async def update_alias(
    FunctionName: str,
    Name: str,
    body: bodies.UpdateAlias,
    aliases: Aliases,
    namespace: Namespace,
    region: Region,
) -> JSONResponse:
    # An empty RoutingConfig clears the split; an absent one keeps it (as on Lambda).
    weights = None
    if body.RoutingConfig is not None:
        weights = body.RoutingConfig.AdditionalVersionWeights or {}
    alias = await aliases.update(
        namespace,
        FunctionName,
        Name,
        function_version=body.FunctionVersion,
        description=body.Description,
        weights=weights,
        revision_id=body.RevisionId,
    )
    return JSONResponse(shapes.alias_configuration(alias, region=region))


@router.delete("/{Name}")
async def delete_alias(
    FunctionName: str, Name: str, aliases: Aliases, namespace: Namespace
) -> Response:
    await aliases.delete(namespace, FunctionName, Name)
    return Response(status_code=204)
