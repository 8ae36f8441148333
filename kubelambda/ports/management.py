"""The write side of the store, shaped by the management API's use cases.

``gateway.services`` program against ``ManagementStore``; the SQLite store implements it
(and the Kubernetes store will: custom resources). The store stamps revision ids and
timestamps, checks existence, uniqueness and expected revisions, and raises
``kubelambda.errors`` types; request validation happens in the services first. Every
method takes the function's ``FunctionKey``: names are unique per namespace only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from kubelambda.models import (
    Alias,
    CodePackage,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
)
from kubelambda.ports.catalog import CatalogSource

__all__ = ["ManagementStore"]


class ManagementStore(CatalogSource, Protocol):
    async def create_function(
        self, latest: FunctionVersion, settings: FunctionSettings, *, publish: bool
    ) -> FunctionVersion:
        """Insert ``latest`` (Pending until the controller settles its package) and its
        settings, and version 1 too when ``publish``. Returns what the API reports:
        version 1 if published, else ``$LATEST``."""
        ...

    async def get_version(self, function: FunctionKey, version: str) -> FunctionVersion: ...

    async def get_settings(self, function: FunctionKey) -> FunctionSettings: ...

    async def list_functions(
        self,
        namespace: str,
        *,
        after: tuple[str, int] | None,
        limit: int,
        all_versions: bool,
    ) -> list[FunctionVersion]: ...

    async def list_versions(
        self, function: FunctionKey, *, after: int, limit: int
    ) -> list[FunctionVersion]: ...

    async def update_configuration(
        self,
        function: FunctionKey,
        change: Callable[[FunctionVersion], FunctionVersion],
        *,
        expected_revision_id: str | None,
    ) -> FunctionVersion: ...

    async def begin_code_update(
        self,
        function: FunctionKey,
        package: CodePackage,
        *,
        expected_revision_id: str | None,
        publish: bool,
    ) -> FunctionVersion:
        """Point ``$LATEST`` at ``package`` (InProgress until the controller settles it);
        invocations keep running the previous package until then."""
        ...

    async def publish_version(
        self,
        function: FunctionKey,
        *,
        description: str | None,
        expected_revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion: ...

    async def delete_function(self, function: FunctionKey) -> None: ...

    async def delete_version(self, function: FunctionKey, version: str) -> None: ...

    async def create_alias(self, alias: Alias) -> Alias: ...

    async def get_alias(self, function: FunctionKey, name: str) -> Alias: ...

    async def update_alias(
        self,
        function: FunctionKey,
        name: str,
        change: Callable[[Alias], Alias],
        *,
        expected_revision_id: str | None,
    ) -> Alias: ...

    async def delete_alias(self, function: FunctionKey, name: str) -> None: ...

    async def list_aliases(
        self, function: FunctionKey, *, function_version: str | None, after: str, limit: int
    ) -> list[Alias]: ...

    async def tag(self, function: FunctionKey, tags: Mapping[str, str]) -> FunctionSettings: ...

    async def untag(self, function: FunctionKey, keys: Iterable[str]) -> FunctionSettings: ...

    async def put_reserved_concurrency(self, function: FunctionKey, reserved: int) -> None: ...

    async def delete_reserved_concurrency(self, function: FunctionKey) -> None: ...

    async def put_provisioned(
        self, function: FunctionKey, qualifier: str, *, requested: int
    ) -> ProvisionedConcurrency: ...

    async def get_provisioned(
        self, function: FunctionKey, qualifier: str
    ) -> ProvisionedConcurrency: ...

    async def delete_provisioned(self, function: FunctionKey, qualifier: str) -> None: ...

    async def list_provisioned(
        self, function: FunctionKey, *, after: str, limit: int
    ) -> list[ProvisionedConcurrency]: ...

    async def put_event_invoke_config(self, config: EventInvokeConfig) -> EventInvokeConfig:
        """Create or replace the config of ``config.qualifier`` (which must exist: the
        function, a version or an alias); stamps ``last_modified``."""
        ...

    async def get_event_invoke_config(
        self, function: FunctionKey, qualifier: str
    ) -> EventInvokeConfig:
        """Raises ``ResourceNotFound`` when none is set."""
        ...

    async def delete_event_invoke_config(self, function: FunctionKey, qualifier: str) -> None: ...

    async def list_event_invoke_configs(
        self, function: FunctionKey, *, after: str, limit: int
    ) -> list[EventInvokeConfig]: ...
