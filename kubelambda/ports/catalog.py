"""The read side of the store: one consistent ``Catalog`` snapshot, and a watch for the next.

The invoke path resolves every request against the latest snapshot and the autoscaler
plans from it, so neither reads the store per request or per tick. Adapters: the SQLite
store (a new snapshot after each commit); the Kubernetes store (an informer cache).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from kubelambda.models import (
    Alias,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    Target,
)

__all__ = ["Catalog", "CatalogListener", "CatalogSource"]


@dataclass(frozen=True, slots=True)
class Catalog:
    """Everything the invoke path and the autoscaler read, as one consistent snapshot.

    Keys: ``versions[Target]`` (``$LATEST`` included), ``aliases[(FunctionKey, alias)]``,
    ``settings[FunctionKey]``, ``provisioned[(FunctionKey, qualifier)]``,
    ``event_invoke_configs[(FunctionKey, qualifier)]``.
    """

    versions: Mapping[Target, FunctionVersion] = field(default_factory=dict)
    aliases: Mapping[tuple[FunctionKey, str], Alias] = field(default_factory=dict)
    settings: Mapping[FunctionKey, FunctionSettings] = field(default_factory=dict)
    provisioned: Mapping[tuple[FunctionKey, str], ProvisionedConcurrency] = field(
        default_factory=dict
    )
    event_invoke_configs: Mapping[tuple[FunctionKey, str], EventInvokeConfig] = field(
        default_factory=dict
    )


CatalogListener = Callable[[Catalog], None]


class CatalogSource(Protocol):
    async def catalog(self) -> Catalog:
        """The latest snapshot."""
        ...

    def subscribe(self, listener: CatalogListener) -> Callable[[], None]:
        """Call ``listener`` (on the event loop's thread) with every new snapshot.
        Returns a function that unsubscribes."""
        ...
