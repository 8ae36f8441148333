"""The embedded store's tables, and the mapping between their rows and domain models.

Used by ``database`` (migration at open) and by the table modules (``functions``,
``aliases``, ``concurrency``) that read and write rows. One row per function version
(``number`` 0 is ``$LATEST``), per alias, per function (tags, reserved concurrency, the
version counter) and per provisioned-concurrency config.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime

from kubelambda.models import (
    LATEST,
    Alias,
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
    "format_timestamp",
    "migrate",
    "provisioned_from_row",
    "settings_from_row",
    "version_from_row",
    "version_number",
    "version_values",
]

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE functions (
    function_name TEXT PRIMARY KEY,
    tags TEXT NOT NULL DEFAULT '{}',
    reserved_concurrency INTEGER,
    -- Version numbers are never reused, even after a version is deleted (as Lambda).
    last_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE versions (
    function_name TEXT NOT NULL REFERENCES functions(function_name) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    version TEXT NOT NULL,
    runtime TEXT NOT NULL,
    handler TEXT NOT NULL,
    role TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size INTEGER NOT NULL,
    code_path TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    memory_size INTEGER NOT NULL,
    timeout INTEGER NOT NULL,
    description TEXT NOT NULL,
    environment TEXT NOT NULL,
    package_type TEXT NOT NULL,
    state TEXT NOT NULL,
    last_update_status TEXT NOT NULL,
    state_reason TEXT NOT NULL DEFAULT '',
    last_update_status_reason TEXT NOT NULL DEFAULT '',
    -- While a code update of $LATEST is being unpacked, invocations keep running the
    -- package that was live before it (as on Lambda); these name that package.
    serving_code_sha256 TEXT,
    serving_code_size INTEGER,
    serving_code_path TEXT,
    PRIMARY KEY (function_name, number)
);
CREATE TABLE aliases (
    function_name TEXT NOT NULL REFERENCES functions(function_name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    function_version TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    description TEXT NOT NULL,
    weights TEXT NOT NULL,
    PRIMARY KEY (function_name, name)
);
CREATE TABLE provisioned (
    function_name TEXT NOT NULL REFERENCES functions(function_name) ON DELETE CASCADE,
    qualifier TEXT NOT NULL,
    requested INTEGER NOT NULL,
    allocated INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    PRIMARY KEY (function_name, qualifier)
);
"""


def migrate(connection: sqlite3.Connection) -> None:
    """Create the tables in a new file; refuse a file written by a newer kubelambda."""
    (current,) = connection.execute("PRAGMA user_version").fetchone()
    if current == SCHEMA_VERSION:
        return
    if current != 0:
        raise RuntimeError(
            f"state.db has schema version {current}; this kubelambda understands {SCHEMA_VERSION}"
        )
    connection.executescript(f"BEGIN; {_DDL} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def format_timestamp(moment: datetime) -> str:
    """Lambda's ``LastModified`` form: ``2019-11-14T18:16:05.568+0000``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def version_number(version: str) -> int:
    return 0 if version == LATEST else int(version)


def version_values(version: FunctionVersion) -> dict[str, object]:
    """The named parameters of an INSERT of ``version`` (serving columns left empty)."""
    return {
        "function_name": version.function_name,
        "number": version_number(version.version),
        "version": version.version,
        "runtime": version.runtime,
        "handler": version.handler,
        "role": version.role,
        "code_sha256": version.code_sha256,
        "code_size": version.code_size,
        "code_path": version.code_path,
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
    }


def version_from_row(row: sqlite3.Row, *, serving: bool = False) -> FunctionVersion:
    """The version a row describes; ``serving=True`` gives the package invocations run."""
    use_serving = serving and row["serving_code_path"] is not None
    prefix = "serving_" if use_serving else ""
    return FunctionVersion(
        function_name=row["function_name"],
        version=row["version"],
        runtime=row["runtime"],
        handler=row["handler"],
        role=row["role"],
        code_sha256=row[f"{prefix}code_sha256"],
        code_size=row[f"{prefix}code_size"],
        code_path=row[f"{prefix}code_path"],
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
    )


def settings_from_row(row: sqlite3.Row) -> FunctionSettings:
    return FunctionSettings(
        function_name=row["function_name"],
        tags=frozen_mapping(_json_mapping(row["tags"])),
        reserved_concurrency=row["reserved_concurrency"],
    )


def alias_from_row(row: sqlite3.Row) -> Alias:
    weights: Mapping[str, float] = {
        str(key): float(value) for key, value in json.loads(row["weights"]).items()
    }
    return Alias(
        function_name=row["function_name"],
        name=row["name"],
        function_version=row["function_version"],
        revision_id=row["revision_id"],
        description=row["description"],
        additional_version_weights=weights,
    )


def provisioned_from_row(row: sqlite3.Row) -> ProvisionedConcurrency:
    return ProvisionedConcurrency(
        function_name=row["function_name"],
        qualifier=row["qualifier"],
        requested=row["requested"],
        allocated=row["allocated"],
        status=ProvisionedStatus(row["status"]),
        status_reason=row["status_reason"],
        last_modified=row["last_modified"],
    )


def _json_mapping(text: str) -> dict[str, str]:
    return {str(key): str(value) for key, value in json.loads(text).items()}
