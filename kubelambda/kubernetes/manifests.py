"""Pure builders of what the Kubernetes store writes: new objects and status reports.

Called by ``KubernetesStore``: the manifests of a Function, a FunctionVersion (owned by
its Function, labelled with its object name) and an Alias, and the edits a write makes
to an object it read (the controller's outcome for a package, a ``Ready`` condition,
dropping a qualifier's entry, the LastModified stamp). No I/O; times are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubelambda.kubernetes import object_names, resources
from kubelambda.models import (
    Alias,
    CodePackage,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
)

__all__ = [
    "Mutation",
    "alias_manifest",
    "function_manifest",
    "lambda_timestamp",
    "ready_condition",
    "settle_status",
    "stamp",
    "version_manifest",
    "without",
]

Obj = dict[str, Any]
# An edit of an object read from the cache; returns whether there is anything to write.
Mutation = Callable[[Obj], bool]


def lambda_timestamp(moment: datetime) -> str:
    """Lambda's ``LastModified`` form: ``2019-11-14T18:16:05.568+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def function_manifest(latest: FunctionVersion, settings: FunctionSettings, *, now: datetime) -> Obj:
    """A new Function: ``$LATEST``'s configuration and code, and the settings.
    Raises ``ValueError`` for a reserved tag the spec cannot hold."""
    name = latest.function_name
    spec: Obj = {
        **resources.version_fields(latest),
        "code": resources.package_fields(latest.package),
    }
    if object_names.function_object_name(name) != name:
        spec["functionName"] = name
    resources.write_settings(spec, settings.tags)
    if settings.reserved_concurrency is not None:
        spec["reservedConcurrency"] = settings.reserved_concurrency
    return {
        "apiVersion": resources.API_VERSION,
        "kind": "Function",
        "metadata": {
            "name": object_names.function_object_name(name),
            "namespace": latest.namespace,
            "annotations": {resources.LAST_MODIFIED: lambda_timestamp(now)},
        },
        "spec": spec,
    }


def version_manifest(
    latest: FunctionVersion,
    function: Mapping[str, Any],
    *,
    version: str,
    description: str | None,
    now: datetime,
) -> Obj:
    """Version ``version`` of ``function``: a copy of ``latest`` (with ``description``
    when given), owned by the Function."""
    metadata = function["metadata"]
    fields = resources.version_fields(
        latest if description is None else latest.with_changes(description=description)
    )
    return {
        "apiVersion": resources.API_VERSION,
        "kind": "FunctionVersion",
        "metadata": {
            "name": object_names.version_object_name(metadata["name"], version),
            "namespace": metadata["namespace"],
            "labels": {object_names.FUNCTION_LABEL: metadata["name"]},
            "annotations": {resources.LAST_MODIFIED: lambda_timestamp(now)},
            "ownerReferences": [_owner(function)],
        },
        "spec": {
            **fields,
            "functionName": latest.function_name,
            "version": version,
            "code": resources.package_fields(latest.package),
        },
    }


def alias_manifest(alias: Alias, function: Mapping[str, Any], *, hashed: bool) -> Obj:
    """``alias`` of ``function``, owned by it (``hashed``: see ``alias_object_name``)."""
    metadata = function["metadata"]
    spec: Obj = {}
    resources.write_alias(spec, alias)
    return {
        "apiVersion": resources.API_VERSION,
        "kind": "Alias",
        "metadata": {
            "name": object_names.alias_object_name(metadata["name"], alias.name, hashed=hashed),
            "namespace": metadata["namespace"],
            "labels": {object_names.FUNCTION_LABEL: metadata["name"]},
            "ownerReferences": [_owner(function)],
        },
        "spec": spec,
    }


def settle_status(obj: Obj, package: CodePackage, *, error: str | None, now: datetime) -> None:
    """The controller's outcome for the Function's package, in its status: settled (it
    serves now) or refused (the settled one, if any, keeps serving)."""
    status = obj.setdefault("status", {})
    # A hand-written Function has no count yet (the printer column would be blank).
    status.setdefault("versions", 0)
    fields = resources.package_fields(package)
    if error is None:
        status.pop("failedPackage", None)
        status.update(
            settledPackage=fields,
            state=State.ACTIVE.value,
            stateReason="",
            lastUpdateStatus=LastUpdateStatus.SUCCESSFUL.value,
            lastUpdateStatusReason="",
        )
    else:
        never_settled = not status.get("settledPackage")
        status.update(
            failedPackage=fields,
            state=(State.FAILED if never_settled else State.ACTIVE).value,
            stateReason=error if never_settled else "",
            lastUpdateStatus=LastUpdateStatus.FAILED.value,
            lastUpdateStatusReason=error,
        )
    status.update(
        observedGeneration=obj["metadata"].get("generation", 1),
        lastModified=lambda_timestamp(now),
        conditions=[ready_condition(bool(status.get("settledPackage")), error or "", obj, now=now)],
    )


def ready_condition(ready: bool, reason: str, obj: Mapping[str, Any], *, now: datetime) -> Obj:
    """The standard ``Ready`` condition: True once a package is live."""
    return {
        "type": "Ready",
        "status": "True" if ready else "False",
        "observedGeneration": obj["metadata"].get("generation", 1),
        "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": "PackageSettled" if ready else ("PackageFailed" if reason else "Pending"),
        "message": reason[:32768],
    }


def without(field: str, qualifier: str) -> Mutation:
    """Drop ``qualifier``'s entry from the spec list ``field`` (if it has one)."""

    def drop(obj: Obj) -> bool:
        entries = obj["spec"].get(field) or []
        kept = [entry for entry in entries if entry["qualifier"] != qualifier]
        if len(kept) == len(entries):
            return False
        obj["spec"][field] = kept
        return True

    return drop


def stamp(obj: Obj, now: datetime) -> None:
    """Record a write's time as the object's LastModified."""
    annotations = obj["metadata"].setdefault("annotations", {})
    annotations[resources.LAST_MODIFIED] = lambda_timestamp(now)


def _owner(function: Mapping[str, Any]) -> Obj:
    return {
        "apiVersion": resources.API_VERSION,
        "kind": "Function",
        "name": function["metadata"]["name"],
        "uid": function["metadata"]["uid"],
        "blockOwnerDeletion": False,
    }
