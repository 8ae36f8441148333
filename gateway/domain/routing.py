"""Resolve an invoke's function reference to the one version that will run it.

Called by the invoke app for every request, against the catalog snapshot it holds (fed
by the store's watch), so resolution never touches the store. Aliases with a routing
config split traffic by weight; the random draw is passed in so tests can fix it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from kubelambda import errors, names
from kubelambda.models import LATEST, Alias, FunctionSettings, FunctionVersion, State, Target
from kubelambda.ports.catalog import Catalog

__all__ = ["Resolved", "choose_alias_version", "resolve"]

# States in which a version cannot take invokes. Inactive is runnable: scaling from
# zero is what the activator is for.
_NOT_INVOCABLE = frozenset({State.PENDING, State.FAILED})


@dataclass(frozen=True, slots=True)
class Resolved:
    """The version an invoke runs, plus what the agent and the limits need to know."""

    version: FunctionVersion
    settings: FunctionSettings | None
    invoked_function_arn: str

    @property
    def target(self) -> Target:
        return self.version.target

    @property
    def reserved_concurrency(self) -> int | None:
        return None if self.settings is None else self.settings.reserved_concurrency


def choose_alias_version(alias: Alias, draw: float) -> str:
    """The version an alias sends one request to, for a uniform ``draw`` in [0, 1).

    With ``additional_version_weights = {"2": 0.1}``, draws below 0.1 go to version 2
    and the rest to ``function_version``. Lambda allows at most one extra version; the
    loop also copes with more by stacking their weights.
    """
    threshold = 0.0
    for version, weight in alias.additional_version_weights.items():
        threshold += weight
        if draw < threshold:
            return version
    return alias.function_version


def resolve(
    catalog: Catalog,
    ref: names.FunctionRef,
    *,
    region: str,
    draw: Callable[[], float] = random.random,
) -> Resolved:
    """Find the version ``ref`` addresses, or raise the error Lambda would answer with.

    Unqualified and ``$LATEST`` run ``$LATEST``; digits name a published version; any
    other qualifier is an alias. ``region`` goes into the invoked function's ARN.
    """
    qualifier = ref.qualifier
    if qualifier is None or qualifier == LATEST or names.is_version_number(qualifier):
        version_id = qualifier or LATEST
    else:
        alias = catalog.aliases.get((ref.key, qualifier))
        if alias is None:
            raise _not_found(ref, region)
        version_id = choose_alias_version(alias, draw())
    version = catalog.versions.get(Target(ref.namespace, ref.name, version_id))
    if version is None:
        raise _not_found(ref, region)
    if version.state in _NOT_INVOCABLE:
        raise errors.ResourceConflict(
            "The operation cannot be performed at this time. "
            f"The function is currently in the following state: {version.state.value}"
        )
    return Resolved(
        version=version,
        settings=catalog.settings.get(ref.key),
        invoked_function_arn=names.function_arn(ref.name, qualifier, region=region),
    )


def _not_found(ref: names.FunctionRef, region: str) -> errors.ResourceNotFound:
    return errors.ResourceNotFound(
        f"Function not found: {names.function_arn(ref.name, ref.qualifier, region=region)}"
    )
