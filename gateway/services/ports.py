"""What the management services need from the store: the ``Store`` port plus its writes.

``gateway.services.functions``/``aliases``/``concurrency`` program against these
protocols; the embedded launcher passes a ``kubelambda.store.SqliteStore`` (and a
Kubernetes adapter will satisfy the same protocol). The store stamps revision ids and
timestamps, checks existence, uniqueness and expected revisions, and raises
``kubelambda.errors`` types; request validation happens in the services first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Protocol

from kubelambda.models import Alias, FunctionSettings, FunctionVersion, ProvisionedConcurrency
from kubelambda.ports import Store

__all__ = ["ManagementStore", "PackageStore", "StoredPackage"]


class StoredPackage(Protocol):
    @property
    def sha256_hex(self) -> str: ...

    @property
    def size(self) -> int: ...

    @property
    def code_sha256(self) -> str: ...


class PackageStore(Protocol):
    """Zip packages by content hash. ``unpack`` raises ``ValueError`` on a bad package."""

    def inspect(self, data: bytes, *, require: str | None = None) -> None: ...

    def save(self, data: bytes) -> StoredPackage: ...

    def unpack(self, sha256_hex: str, *, stop: threading.Event | None = None) -> Path: ...

    def zip_path(self, sha256_hex: str) -> Path: ...

    def directory(self, sha256_hex: str) -> Path: ...

    def collect(self, keep: Collection[str], *, now: float, grace_seconds: float) -> list[str]: ...


class ManagementStore(Store, Protocol):
    @property
    def packages(self) -> PackageStore: ...

    async def create_function(
        self, latest: FunctionVersion, settings: FunctionSettings, *, publish: bool
    ) -> FunctionVersion: ...

    async def get_version(self, name: str, version: str) -> FunctionVersion: ...

    async def get_settings(self, name: str) -> FunctionSettings: ...

    async def list_functions(
        self, *, after: tuple[str, int] | None, limit: int, all_versions: bool
    ) -> list[FunctionVersion]: ...

    async def list_versions(
        self, name: str, *, after: int, limit: int
    ) -> list[FunctionVersion]: ...

    async def update_configuration(
        self,
        name: str,
        change: Callable[[FunctionVersion], FunctionVersion],
        *,
        expected_revision_id: str | None,
    ) -> FunctionVersion: ...

    async def begin_code_update(
        self,
        name: str,
        *,
        code_sha256: str,
        code_size: int,
        code_path: str,
        expected_revision_id: str | None,
        publish: bool,
    ) -> FunctionVersion: ...

    async def finish_package(self, name: str, code_sha256: str, *, error: str | None) -> bool: ...

    async def publish_version(
        self,
        name: str,
        *,
        description: str | None,
        expected_revision_id: str | None,
        code_sha256: str | None,
    ) -> FunctionVersion: ...

    async def delete_function(self, name: str) -> None: ...

    async def delete_version(self, name: str, version: str) -> None: ...

    async def create_alias(self, alias: Alias) -> Alias: ...

    async def get_alias(self, function_name: str, name: str) -> Alias: ...

    async def update_alias(
        self,
        function_name: str,
        name: str,
        change: Callable[[Alias], Alias],
        *,
        expected_revision_id: str | None,
    ) -> Alias: ...

    async def delete_alias(self, function_name: str, name: str) -> None: ...

    async def list_aliases(
        self, function_name: str, *, function_version: str | None, after: str, limit: int
    ) -> list[Alias]: ...

    async def tag(self, name: str, tags: Mapping[str, str]) -> FunctionSettings: ...

    async def untag(self, name: str, keys: Iterable[str]) -> FunctionSettings: ...

    async def put_reserved_concurrency(self, name: str, reserved: int) -> None: ...

    async def delete_reserved_concurrency(self, name: str) -> None: ...

    async def put_provisioned(
        self, name: str, qualifier: str, *, requested: int
    ) -> ProvisionedConcurrency: ...

    async def get_provisioned(self, name: str, qualifier: str) -> ProvisionedConcurrency: ...

    async def delete_provisioned(self, name: str, qualifier: str) -> None: ...

    async def list_provisioned(
        self, name: str, *, after: str, limit: int
    ) -> list[ProvisionedConcurrency]: ...
