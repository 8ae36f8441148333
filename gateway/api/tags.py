"""Routes of TagResource, UntagResource and ListTags on ``/2017-03-31/tags/{ARN}``.

Mounted by ``gateway.api.create_management_app``; the ARN arrives percent-encoded in the
path (``%3A``) and is decoded by the router before ``TagService`` sees it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from gateway.api import bodies
from gateway.api.dependencies import Namespace, Tags

__all__ = ["router"]

router = APIRouter(prefix="/2017-03-31/tags")


@router.get("/{Resource}")
async def list_tags(Resource: str, tags: Tags, namespace: Namespace) -> JSONResponse:
    return JSONResponse({"Tags": dict(await tags.list(namespace, Resource))})


@router.post("/{Resource}")
async def tag_resource(
    Resource: str, body: bodies.TagResource, tags: Tags, namespace: Namespace
) -> Response:
    await tags.tag(namespace, Resource, body.Tags)
    return Response(status_code=204)


@router.delete("/{Resource}")
async def untag_resource(
    Resource: str, tags: Tags, namespace: Namespace, tagKeys: Annotated[list[str], Query()]
) -> Response:
    await tags.untag(namespace, Resource, tagKeys)
    return Response(status_code=204)
