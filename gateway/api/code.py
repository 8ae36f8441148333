"""The open route behind GetFunction's ``Code.Location``: the zip, for a valid link.

Mounted by ``gateway.api.create_management_app``; ``gateway.app`` lets this prefix
through without credentials, because the link itself carries a signature and an
expiry (``gateway.services.code_links``), as an S3 presigned URL does.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query
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
    Expires: Annotated[int, Query()],
    Signature: Annotated[str, Query()],
) -> StreamingResponse:
    match = _ZIP_NAME.match(file_name)
    if match is None or not links.verify(match["digest"], expires=Expires, signature=Signature):
        raise errors.AccessDenied("Request has expired or the signature does not match.")
    try:
        # Asked first so a missing package is a 404, not a response that breaks off.
        await code.location(match["digest"])
    except PackageMissing:
        raise errors.ResourceNotFound("The code package no longer exists.") from None
    return StreamingResponse(code.open(match["digest"]), media_type="application/zip")
