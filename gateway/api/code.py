"""The open route behind GetFunction's ``Code.Location``: the zip, for a valid link.

Mounted by ``gateway.api.create_management_app``; ``gateway.app`` lets this prefix
through without credentials, because the link itself carries a signature and an
expiry (``gateway.services.code_links``), as an S3 presigned URL does. Function pods
fetch their package here too, presenting their code token as a bearer token instead.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from gateway.api.dependencies import Code, Links
from gateway.services.code_links import CODE_PATH_PREFIX
from kubelambda import errors
from kubelambda.ports.code import PackageMissing

__all__ = ["router"]

router = APIRouter(prefix=CODE_PATH_PREFIX.rstrip("/"))

_ZIP_NAME = re.compile(r"^(?P<digest>[0-9a-f]{64})\.zip$")


@router.get("/{file_name}")
async def download_code(
    file_name: str,
    links: Links,
    code: Code,
    Expires: Annotated[int | None, Query()] = None,
    Signature: Annotated[str | None, Query()] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    match = _ZIP_NAME.match(file_name)
    if match is None:
        raise errors.AccessDenied("Request has expired or the signature does not match.")
    digest = match["digest"]
    scheme, _, token = (authorization or "").partition(" ")
    allowed = (
        links.verify_instance(digest, token=token)
        if scheme.lower() == "bearer"
        else Expires is not None
        and Signature is not None
        and links.verify(digest, expires=Expires, signature=Signature)
    )
    if not allowed:
        raise errors.AccessDenied("Request has expired or the signature does not match.")
    try:
        # Asked first so a missing package is a 404, not a response that breaks off.
        await code.location(digest)
    except PackageMissing:
        raise errors.ResourceNotFound("The code package no longer exists.") from None
    return StreamingResponse(code.open(digest), media_type="application/zip")
