"""The Lambda management API as a FastAPI app over services built by the launcher.

``kubelambda.launch.gateway`` builds the services and ``create_management_app`` mounts
the routers over them; ``gateway.app.Gateway`` puts the app behind authentication and
body limits. Routers live per resource (``functions``, ``aliases``, ``concurrency``,
``event_invoke_configs``, ``tags``, ``code``); ``errors`` turns every failure into
Lambda's error shape. Services reach handlers through the lifespan's state
(``dependencies``), with the caller's namespace from its credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.api import (
    aliases,
    code,
    concurrency,
    errors,
    event_invoke_configs,
    functions,
    tags,
)
from gateway.api.dependencies import ManagementServices

__all__ = ["ManagementServices", "create_management_app"]


def create_management_app(services: ManagementServices) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"services": services}

    app = FastAPI(
        title="kubelambda management API",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    for router in (
        functions.router,
        aliases.router,
        concurrency.router,
        event_invoke_configs.router,
        tags.router,
        code.router,
    ):
        app.include_router(router)
    return app
