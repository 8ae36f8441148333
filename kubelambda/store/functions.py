"""Functions and their versions in SQLite: create, update ``$LATEST``, publish, delete.

Called by ``SqliteStore`` on the store thread, inside a transaction it opened; every
function takes the connection first and returns domain models. The rules that need the
stored state to check (existence, revision ids, update-in-progress conflicts, version
numbering, "nothing changed since the last version") live here; request validation
happens in the gateway before a call arrives.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable

from kubelambda import errors, names
from kubelambda.models import LATEST, FunctionSettings, FunctionVersion, LastUpdateStatus, State
from kubelambda.store import schema

__all__ = [
    "begin_code_update",
    "delete_function",
    "delete_version",
    "finish_package",
    "insert_function",
    "list_functions",
    "list_versions",
    "publish",
    "require_function",
    "select_settings",
    "select_version",
    "update_latest",
]


def not_found(name: str, qualifier: str | None = None) -> errors.ResourceNotFound:
    return errors.ResourceNotFound(f"Function not found: {names.function_arn(name, qualifier)}")


def require_function(connection: sqlite3.Connection, name: str) -> sqlite3.Row:
    row: sqlite3.Row | None = connection.execute(
        "SELECT * FROM functions WHERE function_name = ?", (name,)
    ).fetchone()
    if row is None:
        raise not_found(name)
    return row


def select_settings(connection: sqlite3.Connection, name: str) -> FunctionSettings:
    return schema.settings_from_row(require_function(connection, name))


def select_version(connection: sqlite3.Connection, name: str, version: str) -> FunctionVersion:
    return schema.version_from_row(_version_row(connection, name, version))


def insert_function(
    connection: sqlite3.Connection,
    latest: FunctionVersion,
    settings: FunctionSettings,
    *,
    publish: bool,
    now: str,
) -> FunctionVersion:
    """Create a function with its ``$LATEST`` (and version 1 when ``publish``)."""
    try:
        connection.execute(
            "INSERT INTO functions (function_name, tags, reserved_concurrency) VALUES (?, ?, ?)",
            (settings.function_name, _tags_json(settings), settings.reserved_concurrency),
        )
    except sqlite3.IntegrityError as exc:
        raise errors.ResourceConflict(f"Function already exist: {latest.function_name}") from exc
    _insert_version(connection, latest)
    if publish:
        return _publish_copy(connection, latest, description=None, now=now)
    return latest


def update_latest(
    connection: sqlite3.Connection,
    name: str,
    change: Callable[[FunctionVersion], FunctionVersion],
    *,
    expected_revision_id: str | None,
    now: str,
) -> FunctionVersion:
    """Replace ``$LATEST``'s configuration with ``change(current)`` under a new RevisionId."""
    row = _version_row(connection, name, LATEST)
    current = schema.version_from_row(row)
    _require_updatable(current, expected_revision_id)
    updated = change(current).with_changes(
        revision_id=_revision(), last_modified=now, last_update_status_reason=""
    )
    _write_latest(connection, updated)
    return updated


def begin_code_update(
    connection: sqlite3.Connection,
    name: str,
    *,
    code_sha256: str,
    code_size: int,
    code_path: str,
    expected_revision_id: str | None,
    publish: bool,
    now: str,
) -> FunctionVersion:
    """Point ``$LATEST`` at a new package whose unpacking is still under way.

    ``$LATEST`` turns ``LastUpdateStatus: InProgress`` and keeps serving the package that
    was live until ``finish_package`` reports the new one ready (as on Lambda).
    """
    row = _version_row(connection, name, LATEST)
    current = schema.version_from_row(row)
    _require_updatable(current, expected_revision_id)
    live = (
        (row["serving_code_sha256"], row["serving_code_size"], row["serving_code_path"])
        if row["serving_code_path"] is not None
        else (current.code_sha256, current.code_size, current.code_path)
    )
    updated = current.with_changes(
        code_sha256=code_sha256,
        code_size=code_size,
        code_path=code_path,
        revision_id=_revision(),
        last_modified=now,
        last_update_status=LastUpdateStatus.IN_PROGRESS,
        last_update_status_reason="",
    )
    _write_latest(connection, updated)
    connection.execute(
        "UPDATE versions SET serving_code_sha256 = ?, serving_code_size = ?, serving_code_path = ?"
        " WHERE function_name = ? AND number = 0",
        (*live, name),
    )
    if publish:
        return _publish_if_changed(connection, updated, description=None, now=now)
    return updated


def finish_package(
    connection: sqlite3.Connection, name: str, code_sha256: str, *, error: str | None
) -> bool:
    """Settle every version of ``name`` waiting for the package ``code_sha256``.

    Pending versions become Active (or Failed); an in-progress ``$LATEST`` update becomes
    Successful and starts serving the new package, or Failed and keeps the old one.
    Returns whether anything changed (the function may have been deleted meanwhile).
    """
    waiting = "function_name = ? AND code_sha256 = ?"
    params = (name, code_sha256)
    if error is None:
        changed = connection.execute(
            f"UPDATE versions SET state = 'Active', last_update_status = 'Successful',"
            f" serving_code_sha256 = NULL, serving_code_size = NULL, serving_code_path = NULL"
            f" WHERE {waiting} AND (state = 'Pending' OR last_update_status = 'InProgress')",
            params,
        ).rowcount
        return changed > 0
    changed = connection.execute(
        f"UPDATE versions SET state = 'Failed', state_reason = ?,"
        f" last_update_status = 'Failed', last_update_status_reason = ?"
        f" WHERE {waiting} AND state = 'Pending'",
        (error, error, *params),
    ).rowcount
    changed += connection.execute(
        f"UPDATE versions SET last_update_status = 'Failed', last_update_status_reason = ?"
        f" WHERE {waiting} AND last_update_status = 'InProgress'",
        (error, *params),
    ).rowcount
    return changed > 0


def publish(
    connection: sqlite3.Connection,
    name: str,
    *,
    description: str | None,
    expected_revision_id: str | None,
    code_sha256: str | None,
    now: str,
) -> FunctionVersion:
    """Freeze ``$LATEST`` as the next version, or return the last one if nothing changed."""
    latest = select_version(connection, name, LATEST)
    _require_updatable(latest, expected_revision_id)
    if code_sha256 is not None and code_sha256 != latest.code_sha256:
        raise errors.InvalidParameterValue(
            f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
            f"({latest.code_sha256}). Please try again with the current CodeSHA256."
        )
    return _publish_if_changed(connection, latest, description=description, now=now)


def list_functions(
    connection: sqlite3.Connection, *, after: tuple[str, int] | None, limit: int, all_versions: bool
) -> list[FunctionVersion]:
    """Functions by name (``$LATEST`` only, or every version), after a ``(name, number)``."""
    name, number = after if after is not None else ("", -1)
    only_latest = "" if all_versions else "AND number = 0"
    rows = connection.execute(
        f"SELECT * FROM versions WHERE (function_name, number) > (?, ?) {only_latest}"
        " ORDER BY function_name, number LIMIT ?",
        (name, number, limit),
    ).fetchall()
    return [schema.version_from_row(row) for row in rows]


def list_versions(
    connection: sqlite3.Connection, name: str, *, after: int, limit: int
) -> list[FunctionVersion]:
    """``$LATEST`` first, then published versions in order, after a version number."""
    require_function(connection, name)
    rows = connection.execute(
        "SELECT * FROM versions WHERE function_name = ? AND number > ? ORDER BY number LIMIT ?",
        (name, after, limit),
    ).fetchall()
    return [schema.version_from_row(row) for row in rows]


def delete_function(connection: sqlite3.Connection, name: str) -> None:
    """The function and everything hanging off it (versions, aliases, provisioned configs)."""
    require_function(connection, name)
    connection.execute("DELETE FROM functions WHERE function_name = ?", (name,))


def delete_version(connection: sqlite3.Connection, name: str, version: str) -> None:
    if version == LATEST:
        raise errors.InvalidParameterValue(
            "$LATEST version cannot be deleted without deleting the function."
        )
    if not version.isdigit():
        raise errors.InvalidParameterValue(
            f"Deletion of aliases is not supported by DeleteFunction; use DeleteAlias for {version}"
        )
    _version_row(connection, name, version)
    referring = sorted(
        row["name"]
        for row in connection.execute(
            "SELECT name, function_version, weights FROM aliases WHERE function_name = ?", (name,)
        )
        if row["function_version"] == version or version in json.loads(row["weights"])
    )
    if referring:
        raise errors.ResourceConflict(
            "Unable to delete version because the following aliases reference it: "
            f"[{', '.join(referring)}]"
        )
    connection.execute(
        "DELETE FROM versions WHERE function_name = ? AND number = ?", (name, int(version))
    )
    connection.execute(
        "DELETE FROM provisioned WHERE function_name = ? AND qualifier = ?", (name, version)
    )


def _version_row(connection: sqlite3.Connection, name: str, version: str) -> sqlite3.Row:
    if version != LATEST and not version.isdigit():
        raise not_found(name, version)
    row: sqlite3.Row | None = connection.execute(
        "SELECT * FROM versions WHERE function_name = ? AND number = ?",
        (name, schema.version_number(version)),
    ).fetchone()
    if row is None:
        raise not_found(name, None if version == LATEST else version)
    return row


def _require_updatable(current: FunctionVersion, expected_revision_id: str | None) -> None:
    arn = names.function_arn(current.function_name)
    if current.state is State.PENDING:
        raise errors.ResourceConflict(
            "The operation cannot be performed at this time. "
            "The function is currently in the following state: Pending"
        )
    if current.last_update_status is LastUpdateStatus.IN_PROGRESS:
        raise errors.ResourceConflict(
            "The operation cannot be performed at this time. "
            f"An update is in progress for resource: {arn}"
        )
    if expected_revision_id is not None and expected_revision_id != current.revision_id:
        raise errors.PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. "
            "Call the GetFunction/GetAlias API to retrieve the latest Revision Id"
        )


def _publish_if_changed(
    connection: sqlite3.Connection, latest: FunctionVersion, *, description: str | None, now: str
) -> FunctionVersion:
    row = connection.execute(
        "SELECT * FROM versions WHERE function_name = ? AND number > 0"
        " ORDER BY number DESC LIMIT 1",
        (latest.function_name,),
    ).fetchone()
    if row is not None:
        last = schema.version_from_row(row)
        if _runnable_config(last) == _runnable_config(latest):
            return last
    return _publish_copy(connection, latest, description=description, now=now)


def _publish_copy(
    connection: sqlite3.Connection, latest: FunctionVersion, *, description: str | None, now: str
) -> FunctionVersion:
    (number,) = connection.execute(
        "UPDATE functions SET last_version = last_version + 1 WHERE function_name = ?"
        " RETURNING last_version",
        (latest.function_name,),
    ).fetchone()
    # A version published from a package still being unpacked waits for it, Pending.
    unpacking = latest.last_update_status is LastUpdateStatus.IN_PROGRESS
    published = latest.with_changes(
        version=str(number),
        revision_id=_revision(),
        last_modified=now,
        description=latest.description if description is None else description,
        state=State.PENDING if unpacking else latest.state,
    )
    _insert_version(connection, published)
    return published


def _runnable_config(version: FunctionVersion) -> tuple[object, ...]:
    """What makes two versions behave the same; descriptions and ids do not count."""
    return (
        version.code_sha256,
        version.runtime,
        version.handler,
        version.role,
        version.memory_size,
        version.timeout,
        dict(version.environment),
        version.package_type,
    )


def _insert_version(connection: sqlite3.Connection, version: FunctionVersion) -> None:
    values = schema.version_values(version)
    columns = ", ".join(values)
    placeholders = ", ".join(f":{column}" for column in values)
    connection.execute(f"INSERT INTO versions ({columns}) VALUES ({placeholders})", values)


def _write_latest(connection: sqlite3.Connection, version: FunctionVersion) -> None:
    values = schema.version_values(version)
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    connection.execute(
        f"UPDATE versions SET {assignments} WHERE function_name = :function_name AND number = 0",
        values,
    )


def _tags_json(settings: FunctionSettings) -> str:
    return json.dumps(dict(settings.tags), sort_keys=True)


def _revision() -> str:
    return str(uuid.uuid4())
