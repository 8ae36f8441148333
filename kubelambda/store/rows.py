"""The mapping between the embedded store's rows and the shared models.

Used by the table modules (``functions``, ``aliases``, ``function_settings``,
``provisioned``, ``event_invoke_configs``) and by ``snapshot``: the API's reads and the
catalog get the same ``FunctionVersion`` from a row, with the newest upload in
``code_sha256`` and, while ``$LATEST`` still runs an older package, that one in
``serving_package``. Digests are stored as Lambda reports them (base64 ``CodeSha256``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime

from kubelambda.models import (
    LATEST,
    Alias,
    CodePackage,
    EventInvokeConfig,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    PackageType,
    ProvisionedConcurrency,
    ProvisionedStatus,
    State,
    frozen_mapping,
)

__all__ = [
    "alias_from_row",
    "event_invoke_config_from_row",
    "format_timestamp",
    "key_params",
    "provisioned_from_row",
    "settings_from_row",
    "version_from_row",
    "version_number",
    "version_values",
]


def format_timestamp(moment: datetime) -> str:
    """Lambda's ``LastModified`` form: ``2019-11-14T18:16:05.568+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def version_number(version: str) -> int:
    return 0 if version == LATEST else int(version)


def key_params(function: FunctionKey) -> dict[str, str]:
    """The named parameters ``:namespace`` and ``:function_name`` of a query on one function."""
    return {"namespace": function.namespace, "function_name": function.name}


def version_values(version: FunctionVersion) -> dict[str, object]:
    """The named parameters of an INSERT (or a full UPDATE) of ``version``'s row."""
    serving = version.serving_package
    return {
        "namespace": version.namespace,
        "function_name": version.function_name,
        "number": version_number(version.version),
        "version": version.version,
        "runtime": version.runtime,
        "handler": version.handler,
        "role": version.role,
        "code_sha256": version.code_sha256,
        "code_size": version.code_size,
        "revision_id": version.revision_id,
        "last_modified": version.last_modified,
        "memory_size": version.memory_size,
        "timeout": version.timeout,
        "description": version.description,
        "environment": json.dumps(dict(version.environment), sort_keys=True),
        "package_type": version.package_type.value,
        "state": version.state.value,
        "last_update_status": version.last_update_status.value,
        "state_reason": version.state_reason,
        "last_update_status_reason": version.last_update_status_reason,
        "serving_code_sha256": None if serving is None else serving.code_sha256,
        "serving_code_size": None if serving is None else serving.size,
        "dead_letter_target_arn": version.dead_letter_target_arn,
    }


def version_from_row(row: sqlite3.Row) -> FunctionVersion:
    serving = row["serving_code_sha256"]
    return FunctionVersion(
        namespace=row["namespace"],
        function_name=row["function_name"],
        version=row["version"],
        runtime=row["runtime"],
        handler=row["handler"],
        role=row["role"],
        code_sha256=row["code_sha256"],
        code_size=row["code_size"],
        revision_id=row["revision_id"],
        last_modified=row["last_modified"],
        memory_size=row["memory_size"],
        timeout=row["timeout"],
        description=row["description"],
        environment=frozen_mapping(_json_mapping(row["environment"])),
        package_type=PackageType(row["package_type"]),
        state=State(row["state"]),
        last_update_status=LastUpdateStatus(row["last_update_status"]),
        state_reason=row["state_reason"],
        last_update_status_reason=row["last_update_status_reason"],
        serving_package=(
            None
            if serving is None
            else CodePackage.from_code_sha256(serving, row["serving_code_size"])
        ),
        dead_letter_target_arn=row["dead_letter_target_arn"],
    )


def settings_from_row(row: sqlite3.Row) -> FunctionSettings:
    return FunctionSettings(
        namespace=row["namespace"],
        function_name=row["function_name"],
        tags=frozen_mapping(_json_mapping(row["tags"])),
        reserved_concurrency=row["reserved_concurrency"],
    )


def alias_from_row(row: sqlite3.Row) -> Alias:
    weights: Mapping[str, float] = {
        str(key): float(value) for key, value in json.loads(row["weights"]).items()
    }
    return Alias(
        namespace=row["namespace"],
        function_name=row["function_name"],
        name=row["name"],
        function_version=row["function_version"],
        revision_id=row["revision_id"],
        description=row["description"],
        additional_version_weights=weights,
    )


def provisioned_from_row(row: sqlite3.Row) -> ProvisionedConcurrency:
    return ProvisionedConcurrency(
        namespace=row["namespace"],
        function_name=row["function_name"],
        qualifier=row["qualifier"],
        requested=row["requested"],
        allocated=row["allocated"],
        status=ProvisionedStatus(row["status"]),
        status_reason=row["status_reason"],
        last_modified=row["last_modified"],
    )


def event_invoke_config_from_row(row: sqlite3.Row) -> EventInvokeConfig:
    return EventInvokeConfig(
        namespace=row["namespace"],
        function_name=row["function_name"],
        qualifier=row["qualifier"],
        maximum_retry_attempts=row["maximum_retry_attempts"],
        maximum_event_age_seconds=row["maximum_event_age_seconds"],
        on_success=row["on_success"],
        on_failure=row["on_failure"],
        last_modified=row["last_modified"],
    )


def _json_mapping(text: str) -> dict[str, str]:
    return {str(key): str(value) for key, value in json.loads(text).items()}
