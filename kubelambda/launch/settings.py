"""Settings of the embedded platform, validated once at start: the one place they are set.

Read by the CLI (``kubelambda up``/``env``) from an environment mapping passed in, so
tests build settings without touching ``os.environ``. Every variable is
``KUBELAMBDA_<FIELD>``; bad values stop the start with a clear message. The launcher
hands each value to the components that need it; none keeps a copy of its own default.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["EmbeddedSettings"]

ENV_PREFIX = "KUBELAMBDA_"


class EmbeddedSettings(BaseSettings):
    """Where state lives, where the gateway listens, and the invoke path's bounds."""

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

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

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

    @property
    def url_file(self) -> Path:
        """Where a running platform records its gateway URL for ``kubelambda env``."""
        return self.home / "gateway.url"
