"""Typed domain models shared by the gateway, the controller and the store adapters.

Everything here is a frozen dataclass: the store hands out snapshots, and a change is
a new value made with a ``with_*`` method, never an in-place edit. Pydantic models for
API bodies live at the edges (``gateway.api``); these are what the inside speaks.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

__all__ = [
    "DEFAULT_NAMESPACE",
    "LATEST",
    "AccessRule",
    "Alias",
    "CodePackage",
    "EnvironmentReference",
    "EventInvokeConfig",
    "FunctionIdentity",
    "FunctionKey",
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
# Every function lives in a namespace (a Kubernetes namespace, a tenant); credentials are
# bound to one. Embedded installs and unqualified keys use this one.
DEFAULT_NAMESPACE = "default"

IDLE_TIMEOUT_TAG = "kubelambda.io/idle-timeout-seconds"
INSTANCE_CONCURRENCY_TAG = "kubelambda.io/instance-concurrency"
DEFAULT_IDLE_TIMEOUT_SECONDS = 300.0
DEFAULT_INSTANCE_CONCURRENCY = 1
# Lambda's defaults for asynchronous invocation: two retries, events kept six hours.
DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 2
DEFAULT_MAXIMUM_EVENT_AGE_SECONDS = 21_600


def _set_derived(instance: object, name: str, value: object) -> None:
    """Set a field a frozen dataclass derives from its others in ``__post_init__``."""
    object.__setattr__(instance, name, value)


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


@dataclass(frozen=True, slots=True, order=True)
class FunctionKey:
    """A function's identity: its name within a namespace."""

    namespace: str
    name: str
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set_derived(self, "_hash", hash((self.namespace, self.name)))

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class CodePackage:
    """A stored zip, by content: its SHA-256 (hex, as stores name it) and size in bytes.

    A value, not a place: where an instance fetches it from is the ``CodeStore``'s answer.
    """

    sha256_hex: str
    size: int

    @property
    def code_sha256(self) -> str:
        """The digest as Lambda reports it (``CodeSha256``): base64 of the raw bytes."""
        return base64.b64encode(bytes.fromhex(self.sha256_hex)).decode()

    @classmethod
    def from_code_sha256(cls, code_sha256: str, size: int) -> CodePackage:
        return cls(sha256_hex=base64.b64decode(code_sha256).hex(), size=size)


@dataclass(frozen=True, slots=True)
class EnvironmentReference:
    """An environment variable whose value an instance reads from a Kubernetes Secret or
    ConfigMap key (``spec.environment.valueFrom`` of a Function). The Kubernetes backend
    passes it to pods as ``env[].valueFrom``; the API never shows it, nor the value."""

    name: str
    source: Literal["secret", "configMap"]
    object_name: str
    key: str


@dataclass(frozen=True, slots=True)
class FunctionVersion:
    """Code + configuration of one version of a function: ``$LATEST`` or a published number.

    ``$LATEST`` is replaced by a new value on every update; a published version never
    changes. The code is named by digest only (``package``); the instance backend
    decides where its files are (``LAMBDA_TASK_ROOT``).
    """

    namespace: str
    function_name: str
    version: str
    runtime: str
    handler: str
    role: str
    code_sha256: str
    code_size: int
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
    # While a code update of ``$LATEST`` is InProgress, or after it Failed, invocations
    # keep running the package that was live before it (as on Lambda): that one.
    serving_package: CodePackage | None = None
    # ``DeadLetterConfig.TargetArn``: ``None`` is the platform's default dead-letter topic
    # (``names.default_dead_letter_topic``), ``""`` turns dead letters off (as on Lambda),
    # anything else is a topic ARN (``arn:aws:kafka:<region>:<account>:topic/<name>``).
    dead_letter_target_arn: str | None = None
    # Variables set from Secrets and ConfigMaps (Kubernetes mode only; see the class).
    environment_references: tuple[EnvironmentReference, ...] = ()
    # Made once with the version: every invoke asks for it.
    target: Target = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set_derived(self, "target", Target(self.namespace, self.function_name, self.version))

    @property
    def is_latest(self) -> bool:
        return self.version == LATEST

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.function_name)

    @property
    def package(self) -> CodePackage:
        """The version's code as the API reports it (the newest upload)."""
        return CodePackage.from_code_sha256(self.code_sha256, self.code_size)

    @property
    def running_package(self) -> CodePackage:
        """The code instances run: the previous package while an update settles."""
        return self.serving_package or self.package

    @property
    def awaits_package(self) -> bool:
        """Whether the controller has yet to settle ``package`` (Pending or InProgress)."""
        return (
            self.state is State.PENDING or self.last_update_status is LastUpdateStatus.IN_PROGRESS
        )

    def runs_like(self, other: FunctionVersion) -> bool:
        """Whether the two behave the same when invoked (descriptions and ids do not
        count): publishing ``$LATEST`` makes a new version only when it does not."""
        return _runnable_config(self) == _runnable_config(other)

    def with_changes(self, **changes: object) -> FunctionVersion:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def _runnable_config(version: FunctionVersion) -> tuple[object, ...]:
    return (
        version.code_sha256,
        version.runtime,
        version.handler,
        version.role,
        version.memory_size,
        version.timeout,
        dict(version.environment),
        version.environment_references,
        version.package_type,
        version.dead_letter_target_arn,
    )


@dataclass(frozen=True, slots=True)
class Alias:
    """A named pointer to a version, optionally splitting traffic with one more version."""

    namespace: str
    function_name: str
    name: str
    function_version: str
    revision_id: str
    description: str = ""
    additional_version_weights: Mapping[str, float] = field(default_factory=dict)

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.function_name)

    def with_changes(self, **changes: object) -> Alias:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AccessRule:
    """One namespaced RBAC rule a function's own identity is granted (Kubernetes mode)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FunctionIdentity:
    """What a function's instances run as in Kubernetes mode: Lambda's execution role.

    Each function gets a ServiceAccount of its own; ``annotations`` pass through to it
    (cloud workload identity), its token is mounted only when ``mount_token`` (or when
    ``rules`` grant something to use it for), and ``rules`` become a Role bound to it.
    """

    annotations: Mapping[str, str] = field(default_factory=frozen_mapping)
    mount_token: bool = False
    rules: tuple[AccessRule, ...] = ()

    @property
    def needs_token(self) -> bool:
        return self.mount_token or bool(self.rules)


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    """Function-wide settings that are not part of a version (Lambda keeps them apart too)."""

    namespace: str
    function_name: str
    tags: Mapping[str, str] = field(default_factory=frozen_mapping)
    reserved_concurrency: int | None = None
    identity: FunctionIdentity = field(default_factory=FunctionIdentity)

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.function_name)

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

    namespace: str
    function_name: str
    qualifier: str
    requested: int
    allocated: int = 0
    status: ProvisionedStatus = ProvisionedStatus.IN_PROGRESS
    status_reason: str = ""
    last_modified: str = ""

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.function_name)

    def with_changes(self, **changes: object) -> ProvisionedConcurrency:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class EventInvokeConfig:
    """How asynchronous invocations of one qualifier are retried and where their outcome
    goes (Lambda's ``FunctionEventInvokeConfig``). ``qualifier`` is ``$LATEST``, a version
    number or an alias; destinations are function or topic ARNs."""

    namespace: str
    function_name: str
    qualifier: str
    maximum_retry_attempts: int = DEFAULT_MAXIMUM_RETRY_ATTEMPTS
    maximum_event_age_seconds: int = DEFAULT_MAXIMUM_EVENT_AGE_SECONDS
    on_success: str | None = None
    on_failure: str | None = None
    last_modified: str = ""

    @property
    def key(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.function_name)

    def with_changes(self, **changes: object) -> EventInvokeConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Target:
    """One runnable version: the unit the autoscaler scales and the router sends to."""

    namespace: str
    function_name: str
    version: str
    # Targets key the invoke path's dicts, about twenty lookups an invoke: hashed once,
    # where a dataclass's generated ``__hash__`` builds and hashes a tuple every time.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set_derived(self, "_hash", hash((self.namespace, self.function_name, self.version)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def function(self) -> FunctionKey:
        return FunctionKey(self.namespace, self.function_name)

    def __str__(self) -> str:
        return f"{self.namespace}/{self.function_name}:{self.version}"
