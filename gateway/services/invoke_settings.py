"""Tuning of the invoke path: the activator's bounds and the pool to instances.

Built by the launch package from its one settings object (the values a user sets) and
passed to the invoker and the activator; tests and the benchmark build it directly.
Values a user can set have no default here: the launch settings own those defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InvokeSettings"]


class InvokeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The activator's queue per function version, and how long a request may wait in it.
    max_waiting_requests: int = Field(ge=0)
    max_wait_seconds: float = Field(gt=0)
    # Which instance with room takes a request: the fullest (embedded, where instances
    # share the host's cores) or the least loaded (pods, spread over nodes).
    pack_instances: bool = False
    # Added to the function's timeout to get the gateway's read timeout: the agent
    # enforces the real timeout and needs time for a cold start and its answer.
    read_timeout_margin_seconds: float = Field(default=15.0, gt=0)
    # Pause before trying again when every instance said it was busy.
    busy_retry_seconds: float = Field(default=0.01, gt=0)
    retry_after_seconds: float = Field(default=1.0, gt=0)
    # The connection pool to instances. The balancer never has more requests in flight
    # to an instance than its concurrency, so idle connections stay below that anyway;
    # the cap only matters for the agent's largest concurrency (256).
    max_idle_connections_per_instance: int = Field(default=256, ge=0)
    idle_connection_ttl_seconds: float = Field(default=4.0, gt=0)
    connect_timeout_seconds: float = Field(default=2.0, gt=0)
