"""The Lambda management API as a FastAPI app, and the lifespan of its services.

``gateway.app.create_app`` mounts the app built by ``create_management_app`` behind
authentication and body limits. Routers live per resource (``functions``, ``aliases``,
``concurrency``, ``tags``, ``code``); ``errors`` turns every failure into Lambda's error
shape. The services are created in the lifespan and reach handlers through request
state (``dependencies``); the store is owned by the caller, which opened it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from gateway.api import aliases, code, concurrency, errors, functions, tags
from gateway.services.aliases import AliasService
from gateway.services.code_links import CodeLinks
from gateway.services.concurrency import ConcurrencyService
from gateway.services.functions import FunctionService
from gateway.services.ports import ManagementStore
from gateway.services.tags import TagService

__all__ = ["create_management_app"]


def create_management_app(
    *,
    store: ManagementStore,
    region: str,
    runtimes: Collection[str],
    package_grace_seconds: float = 3600.0,
) -> FastAPI:
    """The management API over ``store``; ``runtimes`` are those CreateFunction accepts."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:
        function_service = FunctionService(
            store, runtimes=runtimes, package_grace_seconds=package_grace_seconds
        )
        # Packages a previous run left half-unpacked would otherwise stay Pending forever.
        await function_service.resume()
        try:
            yield {
                "store": store,
                "region": region,
                "functions": function_service,
                "aliases": AliasService(store),
                "concurrency": ConcurrencyService(store),
                "tags": TagService(store),
                "code_links": CodeLinks(clock=time.time),
            }
        finally:
            await function_service.aclose()

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
        tags.router,
        code.router,
    ):
        app.include_router(router)
    return app
