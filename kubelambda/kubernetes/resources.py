"""The mapping between kubelambda's custom resources (raw JSON dicts) and the models.

Pure functions, called by the Kubernetes store (``store``) to read the informers' objects
into models (``snapshot``) and to write models back into a Function's spec or status.

- ``$LATEST`` is a Function's spec; its state is derived from the spec's package and
  what the controller reported in the status: never settled is Pending, settled on the
  spec's package is Active, settled on another is Active with an update InProgress (the
  settled one keeps serving), and a package the controller refused is Failed.
- A published version is a FunctionVersion (state in its status; none yet is Pending).
- RevisionIds are derived from ``metadata.uid`` and ``metadata.generation``: the
  generation moves with every spec change, whoever makes it (kubectl too), and never
  with a status write, so the controller settling a package does not make a Lambda
  client's RevisionId stale. A new object (same name) has a new uid.
- LastModified is the ``kubelambda.io/last-modified`` annotation the store stamps, or the
  creation time of an object written by someone else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kubelambda.models import (
    DEFAULT_IDLE_TIMEOUT_SECONDS,
    DEFAULT_INSTANCE_CONCURRENCY,
    IDLE_TIMEOUT_TAG,
    INSTANCE_CONCURRENCY_TAG,
    LATEST,
    AccessRule,
    Alias,
    CodePackage,
    EnvironmentReference,
    EventInvokeConfig,
    FunctionIdentity,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    ProvisionedConcurrency,
    ProvisionedStatus,
    State,
    frozen_mapping,
)

__all__ = [
    "API_VERSION",
    "LAST_MODIFIED",
    "LAST_VERSION",
    "RESERVED_TAGS",
    "alias_from_object",
    "event_invoke_configs_from_function",
    "function_key",
    "identity_from_spec",
    "inline_zip",
    "last_modified",
    "latest_from_function",
    "package_fields",
    "provisioned_from_function",
    "revision_id",
    "settings_from_function",
    "spec_package",
    "version_fields",
    "version_from_object",
    "write_alias",
    "write_event_invoke_config",
    "write_settings",
]

API_VERSION = "kubelambda.io/v1alpha1"
LAST_MODIFIED = "kubelambda.io/last-modified"
# Version numbers are never reused, even after a version is deleted (as on Lambda).
LAST_VERSION = "kubelambda.io/last-version"
RESERVED_TAGS = (IDLE_TIMEOUT_TAG, INSTANCE_CONCURRENCY_TAG)

Obj = Mapping[str, Any]


def function_key(function: Obj) -> FunctionKey:
    """The Lambda name is ``spec.functionName`` when set, else the object name."""
    metadata = function["metadata"]
    return FunctionKey(
        metadata["namespace"], function["spec"].get("functionName") or metadata["name"]
    )


def revision_id(obj: Obj) -> str:
    metadata = obj["metadata"]
    return str(
        uuid.uuid5(uuid.UUID(metadata["uid"]), f"generation-{metadata.get('generation', 1)}")
    )


def last_modified(obj: Obj) -> str:
    metadata = obj["metadata"]
    stamped = (metadata.get("annotations") or {}).get(LAST_MODIFIED)
    if stamped:
        return str(stamped)
    created = datetime.fromisoformat(metadata["creationTimestamp"].replace("Z", "+00:00"))
    return created.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def inline_zip(function: Obj) -> bytes | None:
    """The zip a hand-written Function carries inline, or ``None``. Raises ``ValueError``
    when it is not base64. Whitespace is ignored, as ``base64 -d`` does: YAML's folded
    and literal blocks put spaces or newlines between the lines of a long value."""
    encoded = function["spec"]["code"].get("zipBase64")
    if encoded is None:
        return None
    try:
        return base64.b64decode("".join(encoded.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("spec.code.zipBase64 is not base64") from exc


def spec_package(function: Obj) -> CodePackage:
    """The package the spec names: its digest and size, or those of the inline zip (of
    its text when that is not base64: the controller then refuses it, naming why)."""
    code = function["spec"]["code"]
    if "zipBase64" not in code:
        return CodePackage(sha256_hex=code["sha256"], size=int(code["size"]))
    try:
        data = inline_zip(function) or b""
    except ValueError:
        data = code["zipBase64"].encode()
    return CodePackage(sha256_hex=hashlib.sha256(data).hexdigest(), size=len(data))


def package_fields(package: CodePackage) -> dict[str, Any]:
    return {"sha256": package.sha256_hex, "size": package.size}


def _package(fields: Obj | None) -> CodePackage | None:
    if not fields:
        return None
    return CodePackage(sha256_hex=fields["sha256"], size=int(fields["size"]))


def latest_from_function(function: Obj, *, package: CodePackage) -> FunctionVersion:
    """``$LATEST``: the spec, with the state the status implies for ``package`` (the
    spec's package, as ``spec_package`` or the controller's code store names it)."""
    status = function.get("status") or {}
    settled, failed = _package(status.get("settledPackage")), _package(status.get("failedPackage"))
    reason = status.get("lastUpdateStatusReason", "")
    state, update, state_reason, update_reason = (
        State.ACTIVE,
        LastUpdateStatus.IN_PROGRESS,
        "",
        "",
    )
    if package == settled:
        update = LastUpdateStatus.SUCCESSFUL
    elif package == failed:
        update, update_reason = LastUpdateStatus.FAILED, reason
        if settled is None:
            state, state_reason = State.FAILED, status.get("stateReason", reason)
    elif settled is None:
        state = State.PENDING
    return _version(
        function,
        key=function_key(function),
        version=LATEST,
        package=package,
        state=state,
        last_update_status=update,
        state_reason=state_reason,
        last_update_status_reason=update_reason,
        serving_package=None if package == settled else settled,
    )


def version_from_object(version: Obj) -> FunctionVersion:
    """A published version: the FunctionVersion's spec, its state from the status."""
    spec, status = version["spec"], version.get("status") or {}
    state = State(status.get("state") or State.PENDING)
    update = {
        State.ACTIVE: LastUpdateStatus.SUCCESSFUL,
        State.FAILED: LastUpdateStatus.FAILED,
    }.get(state, LastUpdateStatus.IN_PROGRESS)
    reason = status.get("stateReason", "") if state is State.FAILED else ""
    return _version(
        version,
        key=FunctionKey(version["metadata"]["namespace"], spec["functionName"]),
        version=str(spec["version"]),
        package=CodePackage(sha256_hex=spec["code"]["sha256"], size=int(spec["code"]["size"])),
        state=state,
        last_update_status=update,
        state_reason=reason,
        last_update_status_reason=reason,
        serving_package=None,
    )


def _version(
    obj: Obj,
    *,
    key: FunctionKey,
    version: str,
    package: CodePackage,
    state: State,
    last_update_status: LastUpdateStatus,
    state_reason: str,
    last_update_status_reason: str,
    serving_package: CodePackage | None,
) -> FunctionVersion:
    spec = obj["spec"]
    environment = spec.get("environment") or {}
    return FunctionVersion(
        namespace=key.namespace,
        function_name=key.name,
        version=version,
        runtime=spec["runtime"],
        handler=spec["handler"],
        role=spec.get("role", ""),
        code_sha256=package.code_sha256,
        code_size=package.size,
        revision_id=revision_id(obj),
        last_modified=last_modified(obj),
        memory_size=int(spec.get("memorySize", 128)),
        timeout=int(spec.get("timeout", 3)),
        description=spec.get("description", ""),
        environment=frozen_mapping(environment.get("variables")),
        state=state,
        last_update_status=last_update_status,
        state_reason=state_reason,
        last_update_status_reason=last_update_status_reason,
        serving_package=serving_package,
        dead_letter_target_arn=spec.get("deadLetterTargetArn"),
        environment_references=tuple(
            _reference(entry) for entry in environment.get("valueFrom") or ()
        ),
    )


def _reference(entry: Obj) -> EnvironmentReference:
    if "secretKeyRef" in entry:
        ref = entry["secretKeyRef"]
        return EnvironmentReference(entry["name"], "secret", ref["name"], ref["key"])
    ref = entry["configMapKeyRef"]
    return EnvironmentReference(entry["name"], "configMap", ref["name"], ref["key"])


def version_fields(version: FunctionVersion) -> dict[str, Any]:
    """What a version's configuration writes into a Function or FunctionVersion spec
    (code excluded: the store writes it only on a code update)."""
    environment: dict[str, Any] = {"variables": dict(version.environment)}
    if version.environment_references:
        environment["valueFrom"] = [
            {
                "name": ref.name,
                f"{ref.source}KeyRef": {"name": ref.object_name, "key": ref.key},
            }
            for ref in version.environment_references
        ]
    fields: dict[str, Any] = {
        "runtime": version.runtime,
        "handler": version.handler,
        "role": version.role,
        "description": version.description,
        "memorySize": version.memory_size,
        "timeout": version.timeout,
        "environment": environment,
    }
    if version.dead_letter_target_arn is not None:
        fields["deadLetterTargetArn"] = version.dead_letter_target_arn
    return fields


def settings_from_function(function: Obj) -> FunctionSettings:
    """Tags are ``spec.tags`` plus the reserved ``kubelambda.io/*`` tags of the spec
    fields they stand for, when those differ from the defaults."""
    spec, key = function["spec"], function_key(function)
    tags = dict(spec.get("tags") or {})
    idle = spec.get("idleTimeoutSeconds", DEFAULT_IDLE_TIMEOUT_SECONDS)
    if idle != DEFAULT_IDLE_TIMEOUT_SECONDS:
        tags[IDLE_TIMEOUT_TAG] = str(idle)
    concurrency = spec.get("instanceConcurrency", DEFAULT_INSTANCE_CONCURRENCY)
    if concurrency != DEFAULT_INSTANCE_CONCURRENCY:
        tags[INSTANCE_CONCURRENCY_TAG] = str(concurrency)
    return FunctionSettings(
        namespace=key.namespace,
        function_name=key.name,
        tags=frozen_mapping(tags),
        reserved_concurrency=spec.get("reservedConcurrency"),
        identity=identity_from_spec(spec.get("serviceAccount") or {}),
    )


def identity_from_spec(account: Mapping[str, Any]) -> FunctionIdentity:
    """``spec.serviceAccount``: annotations, whether to mount the token, RBAC rules."""
    return FunctionIdentity(
        annotations=frozen_mapping(account.get("annotations") or {}),
        mount_token=bool(account.get("automountToken", False)),
        rules=tuple(
            AccessRule(
                api_groups=tuple(rule.get("apiGroups") or ()),
                resources=tuple(rule.get("resources") or ()),
                verbs=tuple(rule.get("verbs") or ()),
                resource_names=tuple(rule.get("resourceNames") or ()),
            )
            for rule in account.get("rules") or ()
        ),
    )


def write_settings(spec: dict[str, Any], tags: Mapping[str, str]) -> None:
    """Write ``tags`` (the whole set) into ``spec``: the reserved ones into their fields
    (a missing one back to its default), the rest into ``spec.tags``.
    Raises ``ValueError`` for a reserved value the spec cannot hold."""
    spec["tags"] = {key: value for key, value in tags.items() if key not in RESERVED_TAGS}
    for tag, field in (
        (IDLE_TIMEOUT_TAG, "idleTimeoutSeconds"),
        (INSTANCE_CONCURRENCY_TAG, "instanceConcurrency"),
    ):
        if tag not in tags:
            spec.pop(field, None)
            continue
        number = float(tags[tag])
        if not number.is_integer() or number < 1:
            raise ValueError(f"{tag} must be a whole number of at least 1 in Kubernetes mode")
        spec[field] = int(number)


def provisioned_from_function(function: Obj) -> list[ProvisionedConcurrency]:
    """The spec's requests, with the controller's report from the status when it has
    one for that qualifier."""
    key = function_key(function)
    reports = {
        entry["qualifier"]: entry
        for entry in (function.get("status") or {}).get("provisionedConcurrency") or ()
    }
    configs = []
    for entry in function["spec"].get("provisionedConcurrency") or ():
        report = reports.get(entry["qualifier"], {})
        configs.append(
            ProvisionedConcurrency(
                namespace=key.namespace,
                function_name=key.name,
                qualifier=entry["qualifier"],
                requested=int(entry["count"]),
                allocated=int(report.get("allocated", 0)),
                status=ProvisionedStatus(report.get("status") or ProvisionedStatus.IN_PROGRESS),
                status_reason=report.get("statusReason", ""),
                last_modified=entry.get("lastModified", ""),
            )
        )
    return configs


def event_invoke_configs_from_function(function: Obj) -> list[EventInvokeConfig]:
    key = function_key(function)
    return [
        EventInvokeConfig(
            namespace=key.namespace,
            function_name=key.name,
            qualifier=entry["qualifier"],
            maximum_retry_attempts=int(entry.get("maximumRetryAttempts", 2)),
            maximum_event_age_seconds=int(entry.get("maximumEventAgeInSeconds", 21_600)),
            on_success=entry.get("onSuccess"),
            on_failure=entry.get("onFailure"),
            last_modified=entry.get("lastModified", ""),
        )
        for entry in function["spec"].get("eventInvokeConfigs") or ()
    ]


def write_event_invoke_config(spec: dict[str, Any], config: EventInvokeConfig) -> None:
    """Create or replace the entry of ``config.qualifier`` in ``spec``."""
    entry: dict[str, Any] = {
        "qualifier": config.qualifier,
        "maximumRetryAttempts": config.maximum_retry_attempts,
        "maximumEventAgeInSeconds": config.maximum_event_age_seconds,
        "lastModified": config.last_modified,
    }
    if config.on_success is not None:
        entry["onSuccess"] = config.on_success
    if config.on_failure is not None:
        entry["onFailure"] = config.on_failure
    others = [e for e in spec.get("eventInvokeConfigs") or () if e["qualifier"] != config.qualifier]
    spec["eventInvokeConfigs"] = sorted([*others, entry], key=lambda e: str(e["qualifier"]))


def alias_from_object(alias: Obj) -> Alias:
    spec = alias["spec"]
    return Alias(
        namespace=alias["metadata"]["namespace"],
        function_name=spec["functionName"],
        name=spec["name"],
        function_version=spec["functionVersion"],
        revision_id=revision_id(alias),
        description=spec.get("description", ""),
        additional_version_weights={
            str(version): float(weight)
            for version, weight in (spec.get("additionalVersionWeights") or {}).items()
        },
    )


def write_alias(spec: dict[str, Any], alias: Alias) -> None:
    spec.update(
        functionName=alias.function_name,
        name=alias.name,
        functionVersion=alias.function_version,
        description=alias.description,
        additionalVersionWeights=dict(alias.additional_version_weights),
    )
