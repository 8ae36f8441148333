"""Turns a catalog snapshot into what the decider needs: one ``ScaleSpec`` per target.

Pure functions, called by ``controller.autoscaler.loop`` whenever the store publishes a
new catalog. Provisioned concurrency is resolved here, as Lambda does it: a config on a
version keeps that many concurrent executions warm on that version; a config on an
alias splits them across the alias's versions by routing weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from controller.autoscaler import decide
from kubelambda.models import FunctionKey, FunctionSettings, ProvisionedConcurrency, State, Target
from kubelambda.ports.catalog import Catalog

__all__ = [
    "ProvisionedPlan",
    "ScalePolicy",
    "provisioned_concurrency",
    "provisioned_plans",
    "scale_specs",
    "split_by_weight",
]


@dataclass(frozen=True, slots=True)
class ScalePolicy:
    """Platform-wide knobs that are not per function."""

    target_utilization: float = 0.7
    max_instances: int = 100
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0


@dataclass(frozen=True, slots=True)
class ProvisionedPlan:
    """One provisioned-concurrency config and the concurrency it puts on each version."""

    function: FunctionKey
    qualifier: str
    requested: int
    shares: Mapping[Target, int]


def split_by_weight(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    """Split ``total`` executions across versions by weight, summing exactly to ``total``.

    Largest remainder: 10 at {"1": 0.75, "2": 0.25} is 7.5 / 2.5 → floors 7 / 2, and the
    one left goes to the larger remainder, ties to the first listed (the primary): 8 / 2.
    """
    exact = {version: total * weight for version, weight in weights.items()}
    shares = {version: math.floor(value) for version, value in exact.items()}
    left = total - sum(shares.values())
    by_remainder = sorted(exact, key=lambda v: exact[v] - shares[v], reverse=True)
    for version in by_remainder[:left]:
        shares[version] += 1
    return shares


def _version_weights(catalog: Catalog, config: ProvisionedConcurrency) -> dict[str, float]:
    alias = catalog.aliases.get((config.key, config.qualifier))
    if alias is None:
        return {config.qualifier: 1.0}
    extra = dict(alias.additional_version_weights)
    return {alias.function_version: 1.0 - sum(extra.values()), **extra}


def provisioned_plans(catalog: Catalog) -> list[ProvisionedPlan]:
    plans = []
    for config in catalog.provisioned.values():
        split = split_by_weight(config.requested, _version_weights(catalog, config))
        shares = {
            Target(config.namespace, config.function_name, v): n for v, n in split.items() if n > 0
        }
        plans.append(
            ProvisionedPlan(
                function=config.key,
                qualifier=config.qualifier,
                requested=config.requested,
                shares=shares,
            )
        )
    return plans


def provisioned_concurrency(plans: list[ProvisionedPlan]) -> dict[Target, int]:
    """Warm concurrency per target, summed over the configs that reach it."""
    totals: dict[Target, int] = {}
    for plan in plans:
        for target, share in plan.shares.items():
            totals[target] = totals.get(target, 0) + share
    return totals


def scale_specs(catalog: Catalog, policy: ScalePolicy) -> dict[Target, decide.ScaleSpec]:
    """A spec for every runnable version in the catalog (``$LATEST`` included): a Pending
    or Failed version has no unpacked code to start, so it gets none (and no instances)."""
    warm = provisioned_concurrency(provisioned_plans(catalog))
    specs = {}
    for target, version in catalog.versions.items():
        if version.state != State.ACTIVE:
            continue
        settings = catalog.settings.get(target.function) or FunctionSettings(
            target.namespace, target.function_name
        )
        per_instance = max(1, settings.instance_concurrency)
        specs[target] = decide.ScaleSpec(
            instance_concurrency=per_instance,
            target_utilization=policy.target_utilization,
            idle_timeout=settings.idle_timeout_seconds,
            # 5 warm executions at 2 per instance need ceil(5 / 2) = 3 instances.
            min_instances=math.ceil(warm.get(target, 0) / per_instance),
            reserved_concurrency=settings.reserved_concurrency,
            max_instances=policy.max_instances,
            stable_window=policy.stable_window,
            panic_window=policy.panic_window,
            panic_threshold=policy.panic_threshold,
        )
    return specs
