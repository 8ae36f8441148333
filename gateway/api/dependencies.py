"""Typed FastAPI dependencies: the services the lifespan put in state, and the caller.

Routers declare ``functions: Functions`` (etc.) and receive the long-lived service the
launcher built; ``namespace: Namespace`` is the namespace the caller's credentials are
bound to (``gateway.app`` put the principal in the scope). Nothing is built per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.auth.request import PRINCIPAL_KEY
from gateway.services.aliases import AliasService
from gateway.services.code_links import CodeLinks
from gateway.services.concurrency import ConcurrencyService
from gateway.services.event_invoke_configs import EventInvokeConfigService
from gateway.services.functions import FunctionService
from gateway.services.tags import TagService
from kubelambda.credentials import Principal
from kubelambda.ports.code import CodeStore

__all__ = [
    "Aliases",
    "Code",
    "Concurrency",
    "EventInvokeConfigs",
    "Functions",
    "Links",
    "ManagementServices",
    "Namespace",
    "Region",
    "Tags",
]


@dataclass(frozen=True, slots=True)
class ManagementServices:
    """What the management routes call, and the installation facts they render."""

    functions: FunctionService
    aliases: AliasService
    concurrency: ConcurrencyService
    event_invoke_configs: EventInvokeConfigService
    tags: TagService
    code_links: CodeLinks
    code: CodeStore
    region: str


def _services(request: Request) -> ManagementServices:
    services: ManagementServices = request.state.services
    return services


def _functions(request: Request) -> FunctionService:
    return _services(request).functions


def _aliases(request: Request) -> AliasService:
    return _services(request).aliases


def _concurrency(request: Request) -> ConcurrencyService:
    return _services(request).concurrency


def _event_invoke_configs(request: Request) -> EventInvokeConfigService:
    return _services(request).event_invoke_configs


def _tags(request: Request) -> TagService:
    return _services(request).tags


def _links(request: Request) -> CodeLinks:
    return _services(request).code_links


def _code(request: Request) -> CodeStore:
    return _services(request).code


def _region(request: Request) -> str:
    return _services(request).region


def _namespace(request: Request) -> str:
    principal: Principal = request.scope[PRINCIPAL_KEY]
    return principal.namespace


Functions = Annotated[FunctionService, Depends(_functions)]
Aliases = Annotated[AliasService, Depends(_aliases)]
Concurrency = Annotated[ConcurrencyService, Depends(_concurrency)]
EventInvokeConfigs = Annotated[EventInvokeConfigService, Depends(_event_invoke_configs)]
Tags = Annotated[TagService, Depends(_tags)]
Links = Annotated[CodeLinks, Depends(_links)]
Code = Annotated[CodeStore, Depends(_code)]
Region = Annotated[str, Depends(_region)]
Namespace = Annotated[str, Depends(_namespace)]
