"""The example function ``kubelambda up --example`` deploys, through the public API.

Called by ``embedded.run`` once the gateway serves: it creates (or refreshes) ``hello``
as any client would, so the example also proves the API works end to end.
"""

from __future__ import annotations

import base64
import http.client
import importlib.resources
import io
import json
import logging
import zipfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NAME", "deploy"]

log = logging.getLogger(__name__)

NAME = "hello"
# The repository's examples/, installed as package data (pyproject's package-dir).
_EXAMPLES_PACKAGE = "kubelambda.examples"


def deploy(host: str, port: int, api_key: str) -> None:
    """Create (or refresh) the example through the public API, as any client would."""
    example = importlib.resources.files(_EXAMPLES_PACKAGE) / NAME
    with importlib.resources.as_file(example) as directory:
        code = _zip_directory(directory)
    body = {
        "FunctionName": NAME,
        "Runtime": "python3.11",
        "Role": "arn:aws:iam::000000000000:role/kubelambda-example",
        "Handler": "app.handler",
        "Code": {"ZipFile": code},
        "Description": "The example function of `make run`",
    }
    status, answer = _api(host, port, api_key, "POST", "/2015-03-31/functions", body)
    if status == 409:
        path = f"/2015-03-31/functions/{NAME}/code"
        status, answer = _api(host, port, api_key, "PUT", path, {"ZipFile": code})
    if status not in (200, 201):
        raise RuntimeError(f"could not deploy the example function: {status} {answer}")
    log.info("example deployed function=%s", NAME)


def _api(
    host: str, port: int, api_key: str, method: str, path: str, body: Mapping[str, object]
) -> tuple[int, str]:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(
            method,
            path,
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def _zip_directory(directory: Path) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*.py")):
            archive.write(path, path.relative_to(directory).as_posix())
    return base64.b64encode(buffer.getvalue()).decode()
