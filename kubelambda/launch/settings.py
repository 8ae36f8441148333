"""Settings of the platform, validated once at start: the one place they are set.

Read by the CLI (``kubelambda up``/``env``) from an environment mapping passed in, so
tests build settings without touching ``os.environ``. Every variable is
``KUBELAMBDA_<FIELD>``; bad values stop the start with a clear message. The launcher
hands each value to the components that need it; none keeps a copy of its own default.
A ``KUBELAMBDA_*`` variable that is no setting and nothing else reads is reported
(``unknown_variables``): a typo, or a setting that was renamed, would otherwise be
ignored without a word.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["PlatformSettings"]

ENV_PREFIX = "KUBELAMBDA_"

# Variables of the prefix that are no setting but belong in the platform's environment:
# what ``kubelambda env`` exports for clients (often into the same shell), the test
# infrastructure's (``make cluster-env``), and, by prefix, the interpreter of a python
# runtime (``kubelambda.runtimes``) and the test infrastructure's state.
_NOT_SETTINGS = frozenset(
    {"KUBELAMBDA_API_KEY", "KUBELAMBDA_PLATFORM_IMAGE", "KUBELAMBDA_SKIP_INFRA"}
)
_NOT_SETTINGS_PREFIXES = ("KUBELAMBDA_PYTHON_", "KUBELAMBDA_TESTINFRA_")


class PlatformSettings(BaseSettings):
    """Where state lives, where the gateway listens, the invoke path's bounds, and (with
    ``kubernetes``) the cluster functions run on."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    home: Path = Field(default=Path("~/.kubelambda"), description="State: store, code, logs, keys")
    host: str = "127.0.0.1"
    port: int = Field(default=7070, ge=0, le=65535, description="0 picks a free port")
    region: str = "us-east-1"
    log_level: str = "INFO"
    activator_max_waiting: int = Field(default=1000, ge=1, description="Held requests per version")
    activator_max_wait_seconds: float = Field(default=30.0, gt=0)
    package_grace_seconds: float = Field(
        default=3600.0, ge=0, description="How long an unused code package is kept"
    )
    body_budget_bytes: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Request body bytes the gateway reads at once; past it, 429 unread",
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="How long a request's line and headers may take"
    )
    body_idle_timeout_seconds: float = Field(
        default=30.0, gt=0, description="The longest pause in a request body's arrival"
    )
    async_retry_delays: tuple[float, ...] = Field(
        default=(60.0, 120.0),
        description="Seconds before each retry of an Event invocation that failed (Lambda's)",
    )
    async_throttle_backoff_seconds: float = Field(
        default=1.0,
        gt=0,
        description="First wait before an Event invocation that was throttled, or found no "
        "instance, is tried again; each next wait doubles, up to 5 minutes",
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset: the queue is in SQLite"
    )
    kafka_topic_prefix: str = Field(
        default="kubelambda",
        pattern=r"^[a-zA-Z0-9._-]{1,100}$",
        description="Prefix of this installation's topics and consumer groups",
    )
    kafka_partitions: int = Field(default=6, ge=1, description="Partitions of created topics")
    kafka_replication_factor: int = Field(
        default=1, ge=1, description="Replication factor of created topics (3 in production)"
    )
    capacity_memory_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Embedded: the share of the host's memory (or its container's limit) "
        "that the MemorySize of all instances may sum to",
    )
    capacity_starting_at_once: int = Field(
        default=0, ge=0, description="Embedded: instances starting at once (0: one a core)"
    )
    capacity_processes_per_core: int = Field(
        default=20,
        ge=1,
        description="Embedded: processes of instances alive per core (an instance runs its "
        "agent and a runtime per unit of its concurrency; a spare agent counts two)",
    )
    # Large enough that a function's environments share one agent on most hosts: the
    # gateway is one process too and saturates first, and each further agent is one more
    # process woken per batch of invocations (issue 11, 2 cores, 64 callers: one agent of
    # 35 environments served 2-20% more than three of 16; no change at 16 callers).
    # Environments of concurrency C count C each: an agent hosts 4 of concurrency 16.
    environments_per_agent: int = Field(
        default=64,
        ge=1,
        le=256,
        description="Embedded: execution environments of a function of instance concurrency "
        "1 that one agent process hosts, each with a runtime and a TMPDIR of its own; of "
        "concurrency C, this many runtimes' worth, at least one (1: an agent each; "
        "provisioned ones always have one each)",
    )
    instance_uid_base: int = Field(
        default=1_999_000_000,
        ge=65_536,
        le=2_000_000_000,
        description="Run as root, the embedded platform runs each function's instances as "
        "a user (and group) of its own from the million uids from this one on",
    )

    kubernetes: bool = Field(
        default=False, description="Run functions as pods (store: custom resources)"
    )
    kubeconfig: str | None = Field(
        default=None, description="Cluster credentials (default $KUBECONFIG, or in cluster)"
    )
    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces whose functions this platform serves (empty: all)"
    )
    runtime_image: str = Field(
        default="localhost/kubelambda/runtime:latest",
        description="Image of function pods (the runtime agent; python3.11 and provided)",
    )
    code_url: str | None = Field(
        default=None,
        description="Base URL pods fetch code packages from (default: the gateway's URL)",
    )
    gateway_cidrs: tuple[str, ...] = Field(
        default=(),
        description="Addresses of a gateway outside the cluster, allowed to reach function pods",
    )
    version_grace_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="How long an idle published version no alias routes to keeps its pods' "
        "Deployment, Service and Secret (Kubernetes mode)",
    )
    leader_lease_seconds: float = Field(
        default=15.0,
        ge=3,
        description="Kubernetes mode: how long the controller Lease lasts unrenewed, so how "
        "long a leader that died without releasing it holds up its successor; renewed every "
        "third of it",
    )
    platform_namespace: str = Field(
        default="default",
        description="The platform's own namespace: its controller Lease and code packages, "
        "and (in cluster) the gateway and dispatcher pods, the only pods admitted to functions",
    )
    secrets_dir: Path | None = Field(
        default=None,
        description="In cluster: the mounted Secret with access-key-id, secret-access-key, "
        "api-key and instance-key (default: generated under the home)",
    )
    controller_url: str | None = Field(
        default=None,
        description="In cluster: the controller Service gateways and dispatchers post scale "
        "signals to",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: FilePath | None = Field(
        default=None, description="CA bundle the broker's certificate is checked against"
    )

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("async_retry_delays", "namespaces", "gateway_cidrs", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("async_retry_delays")
    @classmethod
    def _delays_are_positive(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(delay < 0 for delay in value):
            raise ValueError("give one or more delays in seconds, none negative: e.g. 60,120")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @model_validator(mode="after")
    def _sasl_is_complete(self) -> Self:
        uses_sasl = self.kafka_security_protocol.startswith("SASL_")
        given = (self.kafka_sasl_mechanism, self.kafka_sasl_username, self.kafka_sasl_password)
        if uses_sasl and None in given:
            raise ValueError(
                f"KUBELAMBDA_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KUBELAMBDA_KAFKA_SASL_MECHANISM, _USERNAME and _PASSWORD"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        *_others: PydanticBaseSettingsSource,
        **_named: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what from_environ passes in: no hidden reads of os.environ or dotenv files.
        return (init_settings,)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> Self:
        values: dict[str, Any] = {
            key.removeprefix(ENV_PREFIX).lower(): value
            for key, value in environ.items()
            if key.startswith(ENV_PREFIX)
            and key.removeprefix(ENV_PREFIX).lower() in cls.model_fields
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str]) -> list[str]:
        """One line for each ``KUBELAMBDA_*`` variable of ``environ`` that nothing reads,
        with the setting it probably meant when one is close."""
        fields = [field.upper() for field in cls.model_fields]
        lines = []
        for name in sorted(environ):
            if (
                not name.startswith(ENV_PREFIX)
                or name.removeprefix(ENV_PREFIX) in fields
                or name in _NOT_SETTINGS
                or name.startswith(_NOT_SETTINGS_PREFIXES)
            ):
                continue
            # Compared without the prefix every name shares, which would make any two alike.
            close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), fields, n=1)
            hint = f" (did you mean {ENV_PREFIX}{close[0]}?)" if close else ""
            lines.append(f"{name} is not a setting and is ignored{hint}")
        return lines

    @property
    def url_file(self) -> Path:
        """Where a running platform records its gateway URL for ``kubelambda env``."""
        return self.home / "gateway.url"
