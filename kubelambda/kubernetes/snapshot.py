"""Catalog snapshots of the Kubernetes store, built from its informers' caches.

``KubernetesStore`` calls ``build`` after every change its informers see. Each object is
converted once per resourceVersion (``Memo``), so a change to one function re-reads that
function only and every other entry of the new catalog is the previous one's. Versions
and aliases count only when they belong to the Function that now holds their name
(the owner's uid, when they have owners): those of a deleted function, which the garbage
collector has yet to remove, never show up under a new function of the same name.

A Lambda name claimed by two Functions (a hand-written one with ``spec.functionName``)
goes to the one whose object name is the store's own for it, else to the oldest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kubelambda.kubernetes import object_names, resources
from kubelambda.kubernetes.informer import ObjectKey
from kubelambda.models import (
    Alias,
    CodePackage,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    ProvisionedConcurrency,
    Target,
)
from kubelambda.ports.catalog import Catalog

__all__ = ["Index", "Memo", "Snapshot", "build"]

T = TypeVar("T")
Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Index:
    """Where each model's object is in the informers' caches."""

    functions: Mapping[FunctionKey, ObjectKey] = field(default_factory=dict)
    versions: Mapping[Target, ObjectKey] = field(default_factory=dict)
    aliases: Mapping[tuple[FunctionKey, str], ObjectKey] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot:
    catalog: Catalog
    index: Index


class Memo:
    """Conversions of objects, kept while the object's resourceVersion is unchanged."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], object] = {}
        self._used: dict[tuple[str, str, str], object] = {}

    def get(self, kind: str, obj: Obj, convert: Callable[[Obj], T]) -> T:
        metadata = obj["metadata"]
        key = (kind, metadata["uid"], metadata["resourceVersion"])
        value = self._entries[key] if key in self._entries else convert(obj)
        self._used[key] = value
        return value  # type: ignore[return-value]

    def sweep(self) -> None:
        """Forget what the last build did not use (objects changed or gone)."""
        self._entries, self._used = self._used, {}


@dataclass(frozen=True)
class _Function:
    latest: FunctionVersion
    settings: FunctionSettings
    provisioned: tuple[ProvisionedConcurrency, ...]
    event_invoke_configs: tuple[EventInvokeConfig, ...]


def build(
    functions: Mapping[ObjectKey, Obj],
    versions: Mapping[ObjectKey, Obj],
    aliases: Mapping[ObjectKey, Obj],
    *,
    memo: Memo,
    package_of: Callable[[Obj], CodePackage],
) -> Snapshot:
    """The catalog and index of the objects; ``package_of`` names a Function's package."""
    owners = _owners(functions)
    catalog_versions: dict[Target, FunctionVersion] = {}
    settings: dict[FunctionKey, FunctionSettings] = {}
    provisioned: dict[tuple[FunctionKey, str], ProvisionedConcurrency] = {}
    event_invoke_configs: dict[tuple[FunctionKey, str], EventInvokeConfig] = {}
    uids: dict[FunctionKey, tuple[str, str]] = {}
    for key, object_key in owners.items():
        obj = functions[object_key]
        uids[key] = (obj["metadata"]["uid"], obj["metadata"]["name"])
        converted = memo.get("function", obj, lambda o: _convert_function(o, package_of(o)))
        catalog_versions[converted.latest.target] = converted.latest
        settings[key] = converted.settings
        provisioned.update(((key, p.qualifier), p) for p in converted.provisioned)
        event_invoke_configs.update(((key, e.qualifier), e) for e in converted.event_invoke_configs)
    version_index: dict[Target, ObjectKey] = {}
    for object_key, obj in _belonging(versions, uids):
        version = memo.get("version", obj, resources.version_from_object)
        catalog_versions[version.target] = version
        version_index[version.target] = object_key
    catalog_aliases: dict[tuple[FunctionKey, str], Alias] = {}
    alias_index: dict[tuple[FunctionKey, str], ObjectKey] = {}
    for object_key, obj in _belonging(aliases, uids):
        alias = memo.get("alias", obj, resources.alias_from_object)
        catalog_aliases[(alias.key, alias.name)] = alias
        alias_index[(alias.key, alias.name)] = object_key
    memo.sweep()
    return Snapshot(
        catalog=Catalog(
            versions=catalog_versions,
            aliases=catalog_aliases,
            settings=settings,
            provisioned=provisioned,
            event_invoke_configs=event_invoke_configs,
        ),
        index=Index(functions=owners, versions=version_index, aliases=alias_index),
    )


def _convert_function(function: Obj, package: CodePackage) -> _Function:
    return _Function(
        latest=resources.latest_from_function(function, package=package),
        settings=resources.settings_from_function(function),
        provisioned=tuple(resources.provisioned_from_function(function)),
        event_invoke_configs=tuple(resources.event_invoke_configs_from_function(function)),
    )


def _owners(functions: Mapping[ObjectKey, Obj]) -> dict[FunctionKey, ObjectKey]:
    """Each Lambda name's Function (see the module docstring for a contested name)."""
    chosen: dict[FunctionKey, ObjectKey] = {}
    for object_key, obj in sorted(functions.items(), key=lambda item: _age(item[1])):
        key = resources.function_key(obj)
        if key not in chosen or object_key[1] == object_names.function_object_name(key.name):
            chosen[key] = object_key
    return chosen


def _age(obj: Obj) -> tuple[str, str]:
    metadata = obj["metadata"]
    return metadata.get("creationTimestamp", ""), metadata["name"]


def _belonging(
    objects: Mapping[ObjectKey, Obj], uids: Mapping[FunctionKey, tuple[str, str]]
) -> Iterable[tuple[ObjectKey, Obj]]:
    """The versions or aliases whose function is in the catalog, and owned by it."""
    for object_key, obj in objects.items():
        key = FunctionKey(obj["metadata"]["namespace"], obj["spec"]["functionName"])
        function = uids.get(key)
        if function is None:
            continue
        owners = obj["metadata"].get("ownerReferences") or ()
        if owners and not any(owner.get("uid") == function[0] for owner in owners):
            continue
        yield object_key, obj
