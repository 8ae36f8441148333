"""Typed domain models shared by the gateway, the controller and the store adapters.

Everything here is a frozen dataclass: the store hands out snapshots, and a change is
a new value made with a ``with_*`` method, never an in-place edit. Pydantic models for
API bodies live at the edges (``gateway.api``); these are what the inside speaks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "LATEST",
    "Alias",
    "FunctionSettings",
    "FunctionVersion",
    "LastUpdateStatus",
    "PackageType",
    "ProvisionedConcurrency",
    "ProvisionedStatus",
    "State",
    "Target",
    "frozen_mapping",
]

LATEST = "$LATEST"

IDLE_TIMEOUT_TAG = "kubelambda.io/idle-timeout-seconds"
INSTANCE_CONCURRENCY_TAG = "kubelambda.io/instance-concurrency"
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
DEFAULT_INSTANCE_CONCURRENCY = 1


def frozen_mapping(values: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only copy, so a snapshot cannot be changed behind the store's back."""
    return MappingProxyType(dict(values or {}))


class State(StrEnum):
    PENDING = "Pending"
    ACTIVE = "Active"
    INACTIVE = "Inactive"
    FAILED = "Failed"


class LastUpdateStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    SUCCESSFUL = "Successful"
    FAILED = "Failed"


class PackageType(StrEnum):
    ZIP = "Zip"
    IMAGE = "Image"


class ProvisionedStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    READY = "READY"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """Code + configuration of one version of a function: ``$LATEST`` or a published number.

    ``$LATEST`` is replaced by a new value on every update; a published version never
    changes. ``code_path`` is the unpacked package directory the runtime starts in.
    """

    function_name: str
    version: str
    runtime: str
    handler: str
    role: str
    code_sha256: str
    code_size: int
    code_path: str
    revision_id: str
    last_modified: str
    memory_size: int = 128
    timeout: int = 3
    description: str = ""
    environment: Mapping[str, str] = field(default_factory=frozen_mapping)
    package_type: PackageType = PackageType.ZIP
    state: State = State.ACTIVE
    last_update_status: LastUpdateStatus = LastUpdateStatus.SUCCESSFUL
    # Why ``state``/``last_update_status`` is Failed (empty otherwise), as Lambda reports it.
    state_reason: str = ""
    last_update_status_reason: str = ""

    @property
    def is_latest(self) -> bool:
        return self.version == LATEST

    def with_changes(self, **changes: object) -> FunctionVersion:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Alias:
    """A named pointer to a version, optionally splitting traffic with one more version."""

    function_name: str
    name: str
    function_version: str
    revision_id: str
    description: str = ""
    additional_version_weights: Mapping[str, float] = field(default_factory=dict)

    def with_changes(self, **changes: object) -> Alias:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    """Function-wide settings that are not part of a version (Lambda keeps them apart too)."""

    function_name: str
    tags: Mapping[str, str] = field(default_factory=frozen_mapping)
    reserved_concurrency: int | None = None

    @property
    def idle_timeout_seconds(self) -> float:
        return float(self.tags.get(IDLE_TIMEOUT_TAG, DEFAULT_IDLE_TIMEOUT_SECONDS))

    @property
    def instance_concurrency(self) -> int:
        return int(self.tags.get(INSTANCE_CONCURRENCY_TAG, DEFAULT_INSTANCE_CONCURRENCY))

    def with_changes(self, **changes: object) -> FunctionSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ProvisionedConcurrency:
    """Instances kept warm for one qualifier (a version number or an alias name)."""

    function_name: str
    qualifier: str
    requested: int
    allocated: int = 0
    status: ProvisionedStatus = ProvisionedStatus.IN_PROGRESS
    status_reason: str = ""
    last_modified: str = ""

    def with_changes(self, **changes: object) -> ProvisionedConcurrency:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Target:
    """One runnable version: the unit the autoscaler scales and the router sends to."""

    function_name: str
    version: str

    def __str__(self) -> str:
        return f"{self.function_name}:{self.version}"
