"""Typed FastAPI dependencies: the services and settings the lifespan put in request state.

Routers declare ``functions: Functions`` (etc.) and receive the long-lived service the
``gateway.api`` lifespan created; nothing is built per request or at import time.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.services.aliases import AliasService
from gateway.services.code_links import CodeLinks
from gateway.services.concurrency import ConcurrencyService
from gateway.services.functions import FunctionService
from gateway.services.ports import ManagementStore
from gateway.services.tags import TagService

__all__ = ["Aliases", "Concurrency", "Functions", "Links", "Region", "Store", "Tags"]


def _functions(request: Request) -> FunctionService:
    service: FunctionService = request.state.functions
    return service


def _aliases(request: Request) -> AliasService:
    service: AliasService = request.state.aliases
    return service


def _concurrency(request: Request) -> ConcurrencyService:
    service: ConcurrencyService = request.state.concurrency
    return service


def _tags(request: Request) -> TagService:
    service: TagService = request.state.tags
    return service


def _links(request: Request) -> CodeLinks:
    links: CodeLinks = request.state.code_links
    return links


def _store(request: Request) -> ManagementStore:
    store: ManagementStore = request.state.store
    return store


def _region(request: Request) -> str:
    region: str = request.state.region
    return region


Functions = Annotated[FunctionService, Depends(_functions)]
Aliases = Annotated[AliasService, Depends(_aliases)]
Concurrency = Annotated[ConcurrencyService, Depends(_concurrency)]
Tags = Annotated[TagService, Depends(_tags)]
Links = Annotated[CodeLinks, Depends(_links)]
Store = Annotated[ManagementStore, Depends(_store)]
Region = Annotated[str, Depends(_region)]
