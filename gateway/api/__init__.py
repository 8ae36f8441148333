"""The Lambda management API as a FastAPI app over services built by the launcher.

``kubelambda.launch.gateway`` builds the services and ``create_management_app`` mounts
the routers over them; ``gateway.app.Gateway`` puts the app behind authentication and
body limits. Routers live per resource (``functions``, ``aliases``, ``concurrency``,
``tags``, ``code``); ``errors`` turns every failure into Lambda's error shape. Services
reach handlers through the lifespan's state (``dependencies``), with the caller's
namespace from its credentials.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from gateway.api import aliases, code, concurrency, errors, functions, tags
from gateway.services.aliases import AliasService
from gateway.services.code_links import CodeLinks
from gateway.services.concurrency import ConcurrencyService
from gateway.services.functions import FunctionService
from gateway.services.tags import TagService
from kubelambda.ports.code import CodeStore

__all__ = ["ManagementServices", "create_management_app"]


@dataclass(frozen=True, slots=True)
class ManagementServices:
    """What the management routes call, and the installation facts they render."""

    functions: FunctionService
    aliases: AliasService
    concurrency: ConcurrencyService
    tags: TagService
    code_links: CodeLinks
    code: CodeStore
    region: str


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
        tags.router,
        code.router,
    ):
        app.include_router(router)
    return app
