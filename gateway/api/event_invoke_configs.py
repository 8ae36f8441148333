"""Routes of the event invoke configs (Put/Update/Get/Delete/ListFunctionEventInvokeConfigs).

Mounted by ``gateway.api.create_management_app`` at Lambda's path
``/2019-09-25/functions/{FunctionName}/event-invoke-config`` (PUT replaces, POST
updates, GET, DELETE answers 204) with ``?Qualifier=``, and ``.../event-invoke-config/list``
with ``Marker``/``MaxItems``. Handlers parse the wire request, call
``EventInvokeConfigService`` and render with ``shapes.event_invoke_config``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from gateway.api import bodies, shapes
from gateway.api.dependencies import EventInvokeConfigs, Namespace, Region
from gateway.services.event_invoke_configs import Destinations, EventInvokeConfigChange

__all__ = ["router"]

router = APIRouter(prefix="/2019-09-25/functions/{FunctionName}/event-invoke-config")

OptionalQuery = Annotated[str | None, Query()]


@router.put("")
async def put_function_event_invoke_config(
    FunctionName: str,
    configs: EventInvokeConfigs,
    namespace: Namespace,
    region: Region,
    body: bodies.EventInvokeConfig | None = None,
    Qualifier: OptionalQuery = None,
) -> JSONResponse:
    config = await configs.put(namespace, FunctionName, Qualifier, _change(body))
    return JSONResponse(shapes.event_invoke_config(config, region=region))


@router.post("")
async def update_function_event_invoke_config(
    FunctionName: str,
    configs: EventInvokeConfigs,
    namespace: Namespace,
    region: Region,
    body: bodies.EventInvokeConfig | None = None,
    Qualifier: OptionalQuery = None,
) -> JSONResponse:
    config = await configs.update(namespace, FunctionName, Qualifier, _change(body))
    return JSONResponse(shapes.event_invoke_config(config, region=region))


@router.get("")
async def get_function_event_invoke_config(
    FunctionName: str,
    configs: EventInvokeConfigs,
    namespace: Namespace,
    region: Region,
    Qualifier: OptionalQuery = None,
) -> JSONResponse:
    config = await configs.get(namespace, FunctionName, Qualifier)
    return JSONResponse(shapes.event_invoke_config(config, region=region))


@router.delete("")
async def delete_function_event_invoke_config(
    FunctionName: str,
    configs: EventInvokeConfigs,
    namespace: Namespace,
    Qualifier: OptionalQuery = None,
) -> Response:
    await configs.delete(namespace, FunctionName, Qualifier)
    return Response(status_code=204)


@router.get("/list")
async def list_function_event_invoke_configs(
    FunctionName: str,
    configs: EventInvokeConfigs,
    namespace: Namespace,
    region: Region,
    Marker: OptionalQuery = None,
    MaxItems: Annotated[int | None, Query()] = None,
) -> JSONResponse:
    items, next_marker = await configs.list_configs(
        namespace, FunctionName, marker=Marker, max_items=MaxItems
    )
    shape: dict[str, object] = {
        "FunctionEventInvokeConfigs": [
            shapes.event_invoke_config(item, region=region) for item in items
        ]
    }
    if next_marker:
        shape["NextMarker"] = next_marker
    return JSONResponse(shape)


def _change(body: bodies.EventInvokeConfig | None) -> EventInvokeConfigChange:
    if body is None:
        return EventInvokeConfigChange()
    given = body.DestinationConfig
    return EventInvokeConfigChange(
        maximum_retry_attempts=body.MaximumRetryAttempts,
        maximum_event_age_seconds=body.MaximumEventAgeInSeconds,
        destinations=None
        if given is None
        else Destinations(
            on_success=given.OnSuccess.Destination if given.OnSuccess else None,
            on_failure=given.OnFailure.Destination if given.OnFailure else None,
        ),
    )
