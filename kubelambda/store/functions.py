"""Functions and their versions in SQLite: create, update ``$LATEST``, publish, delete.

Called by ``SqliteStore`` on the store thread, inside a transaction it opened; every
function takes the connection first, then the ``FunctionKey`` it works on, and returns
shared models. The rules that need the stored state to check (existence, revision ids,
update-in-progress conflicts, version numbering, "nothing changed since the last
version") live here; request validation happens in the gateway before a call arrives.
``region`` only renders the ARNs of error messages.

A code package goes through two steps. ``begin_code_update`` (or a create) stores the
new upload as the version's code, InProgress (Pending when new), and remembers the
package ``$LATEST`` ran until then as its ``serving_package``; ``finish_package`` is the
controller's verdict: Successful makes the new package live, Failed keeps the old one
serving (as on Lambda).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable

from kubelambda import errors, names
from kubelambda.models import (
    LATEST,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
)
from kubelambda.store import rows

__all__ = [
    "KEY",
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

# The condition on one function's rows, with ``rows.key_params`` as its parameters.
KEY = "namespace = :namespace AND function_name = :function_name"


def _not_found(
    function: FunctionKey, qualifier: str | None = None, *, region: str
) -> errors.ResourceNotFound:
    arn = names.function_arn(function.name, qualifier, region=region)
    return errors.ResourceNotFound(f"Function not found: {arn}")


def require_function(
    connection: sqlite3.Connection, function: FunctionKey, *, region: str
) -> sqlite3.Row:
    row: sqlite3.Row | None = connection.execute(
        f"SELECT * FROM functions WHERE {KEY}", rows.key_params(function)
    ).fetchone()
    if row is None:
        raise _not_found(function, region=region)
    return row


def select_settings(
    connection: sqlite3.Connection, function: FunctionKey, *, region: str
) -> FunctionSettings:
    return rows.settings_from_row(require_function(connection, function, region=region))


def select_version(
    connection: sqlite3.Connection, function: FunctionKey, version: str, *, region: str
) -> FunctionVersion:
    return rows.version_from_row(_version_row(connection, function, version, region=region))


def insert_function(
    connection: sqlite3.Connection,
    latest: FunctionVersion,
    settings: FunctionSettings,
    *,
    publish: bool,
    now: str,
) -> FunctionVersion:
    """Create a function with its ``$LATEST`` (and version 1 when ``publish``)."""
    if settings.key != latest.key or not latest.is_latest:
        raise ValueError(f"settings of {settings.key} for version {latest.target}")
    try:
        connection.execute(
            "INSERT INTO functions (namespace, function_name, tags, reserved_concurrency)"
            " VALUES (?, ?, ?, ?)",
            (
                settings.namespace,
                settings.function_name,
                _tags_json(settings),
                settings.reserved_concurrency,
            ),
        )
    except sqlite3.IntegrityError as exc:
        raise errors.ResourceConflict(f"Function already exist: {latest.function_name}") from exc
    created = latest.with_changes(serving_package=None)
    _insert_version(connection, created)
    if publish:
        return _publish_copy(connection, created, description=None, now=now)
    return created


def update_latest(
    connection: sqlite3.Connection,
    function: FunctionKey,
    change: Callable[[FunctionVersion], FunctionVersion],
    *,
    expected_revision_id: str | None,
    now: str,
    region: str,
) -> FunctionVersion:
    """Replace ``$LATEST``'s configuration with ``change(current)`` under a new RevisionId.

    What the store owns (identity, code, the serving package) is kept whatever ``change``
    returns: code changes go through ``begin_code_update``.
    """
    current = select_version(connection, function, LATEST, region=region)
    _require_updatable(current, expected_revision_id, region=region)
    updated = change(current).with_changes(
        namespace=current.namespace,
        function_name=current.function_name,
        version=LATEST,
        code_sha256=current.code_sha256,
        code_size=current.code_size,
        serving_package=current.serving_package,
        revision_id=_revision(),
        last_modified=now,
        last_update_status_reason="",
    )
    _write_latest(connection, updated)
    return updated


def begin_code_update(
    connection: sqlite3.Connection,
    function: FunctionKey,
    package: CodePackage,
    *,
    expected_revision_id: str | None,
    publish: bool,
    now: str,
    region: str,
) -> FunctionVersion:
    """Point ``$LATEST`` at ``package``, InProgress until ``finish_package`` settles it.

    Invocations keep running the package that was live (``running_package``: after a
    failed update, the one before it) until the new one succeeds.
    """
    current = select_version(connection, function, LATEST, region=region)
    _require_updatable(current, expected_revision_id, region=region)
    updated = current.with_changes(
        code_sha256=package.code_sha256,
        code_size=package.size,
        serving_package=current.running_package,
        revision_id=_revision(),
        last_modified=now,
        last_update_status=LastUpdateStatus.IN_PROGRESS,
        last_update_status_reason="",
    )
    _write_latest(connection, updated)
    if publish:
        return _publish_if_changed(connection, updated, description=None, now=now)
    return updated


def finish_package(
    connection: sqlite3.Connection, function: FunctionKey, code_sha256: str, *, error: str | None
) -> bool:
    """Settle every version of ``function`` waiting for the package ``code_sha256``.

    Pending versions become Active (or Failed); an in-progress ``$LATEST`` update becomes
    Successful and starts serving the new package, or Failed and keeps the old one.
    Returns whether anything changed: nothing does when the function was deleted or its
    code replaced by a newer upload meanwhile.
    """
    waiting = f"{KEY} AND code_sha256 = :code_sha256"
    params = {**rows.key_params(function), "code_sha256": code_sha256, "error": error}
    if error is None:
        changed = connection.execute(
            "UPDATE versions SET state = 'Active', last_update_status = 'Successful',"
            " serving_code_sha256 = NULL, serving_code_size = NULL"
            f" WHERE {waiting} AND (state = 'Pending' OR last_update_status = 'InProgress')",
            params,
        ).rowcount
        return changed > 0
    changed = connection.execute(
        "UPDATE versions SET state = 'Failed', state_reason = :error,"
        " last_update_status = 'Failed', last_update_status_reason = :error"
        f" WHERE {waiting} AND state = 'Pending'",
        params,
    ).rowcount
    changed += connection.execute(
        "UPDATE versions SET last_update_status = 'Failed', last_update_status_reason = :error"
        f" WHERE {waiting} AND last_update_status = 'InProgress'",
        params,
    ).rowcount
    return changed > 0


def publish(
    connection: sqlite3.Connection,
    function: FunctionKey,
    *,
    description: str | None,
    expected_revision_id: str | None,
    code_sha256: str | None,
    now: str,
    region: str,
) -> FunctionVersion:
    """Freeze ``$LATEST`` as the next version, or return the last one if nothing changed."""
    latest = select_version(connection, function, LATEST, region=region)
    _require_updatable(latest, expected_revision_id, region=region)
    if code_sha256 is not None and code_sha256 != latest.code_sha256:
        raise errors.InvalidParameterValue(
            f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
            f"({latest.code_sha256}). Please try again with the current CodeSHA256."
        )
    return _publish_if_changed(connection, latest, description=description, now=now)


def list_functions(
    connection: sqlite3.Connection,
    namespace: str,
    *,
    after: tuple[str, int] | None,
    limit: int,
    all_versions: bool,
) -> list[FunctionVersion]:
    """The namespace's functions by name (``$LATEST`` only, or every version), after a
    ``(name, number)``."""
    name, number = after if after is not None else ("", -1)
    only_latest = "" if all_versions else "AND number = 0"
    found = connection.execute(
        "SELECT * FROM versions WHERE namespace = ? AND (function_name, number) > (?, ?)"
        f" {only_latest} ORDER BY function_name, number LIMIT ?",
        (namespace, name, number, limit),
    ).fetchall()
    return [rows.version_from_row(row) for row in found]


def list_versions(
    connection: sqlite3.Connection, function: FunctionKey, *, after: int, limit: int, region: str
) -> list[FunctionVersion]:
    """``$LATEST`` first, then published versions in order, after a version number."""
    require_function(connection, function, region=region)
    found = connection.execute(
        f"SELECT * FROM versions WHERE {KEY} AND number > :after ORDER BY number LIMIT :limit",
        {**rows.key_params(function), "after": after, "limit": limit},
    ).fetchall()
    return [rows.version_from_row(row) for row in found]


def delete_function(connection: sqlite3.Connection, function: FunctionKey, *, region: str) -> None:
    """The function and everything hanging off it (versions, aliases, provisioned and
    event invoke configs)."""
    require_function(connection, function, region=region)
    connection.execute(f"DELETE FROM functions WHERE {KEY}", rows.key_params(function))


def delete_version(
    connection: sqlite3.Connection, function: FunctionKey, version: str, *, region: str
) -> None:
    if version == LATEST:
        raise errors.InvalidParameterValue(
            "$LATEST version cannot be deleted without deleting the function."
        )
    if not version.isdigit():
        raise errors.InvalidParameterValue(
            f"Deletion of aliases is not supported by DeleteFunction; use DeleteAlias for {version}"
        )
    _version_row(connection, function, version, region=region)
    referring = sorted(
        row["name"]
        for row in connection.execute(
            f"SELECT name, function_version, weights FROM aliases WHERE {KEY}",
            rows.key_params(function),
        )
        if row["function_version"] == version or version in json.loads(row["weights"])
    )
    if referring:
        raise errors.ResourceConflict(
            "Unable to delete version because the following aliases reference it: "
            f"[{', '.join(referring)}]"
        )
    params = {**rows.key_params(function), "number": int(version), "qualifier": version}
    connection.execute(f"DELETE FROM versions WHERE {KEY} AND number = :number", params)
    connection.execute(f"DELETE FROM provisioned WHERE {KEY} AND qualifier = :qualifier", params)
    connection.execute(
        f"DELETE FROM event_invoke_configs WHERE {KEY} AND qualifier = :qualifier", params
    )


def _version_row(
    connection: sqlite3.Connection, function: FunctionKey, version: str, *, region: str
) -> sqlite3.Row:
    if version != LATEST and not version.isdigit():
        raise _not_found(function, version, region=region)
    row: sqlite3.Row | None = connection.execute(
        f"SELECT * FROM versions WHERE {KEY} AND number = :number",
        {**rows.key_params(function), "number": rows.version_number(version)},
    ).fetchone()
    if row is None:
        raise _not_found(function, None if version == LATEST else version, region=region)
    return row


def _require_updatable(
    current: FunctionVersion, expected_revision_id: str | None, *, region: str
) -> None:
    if current.state is State.PENDING:
        raise errors.ResourceConflict(
            "The operation cannot be performed at this time. "
            "The function is currently in the following state: Pending"
        )
    if current.last_update_status is LastUpdateStatus.IN_PROGRESS:
        arn = names.function_arn(current.function_name, region=region)
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
        f"SELECT * FROM versions WHERE {KEY} AND number > 0 ORDER BY number DESC LIMIT 1",
        rows.key_params(latest.key),
    ).fetchone()
    if row is not None:
        last = rows.version_from_row(row)
        if last.runs_like(latest):
            return last
    return _publish_copy(connection, latest, description=description, now=now)


def _publish_copy(
    connection: sqlite3.Connection, latest: FunctionVersion, *, description: str | None, now: str
) -> FunctionVersion:
    (number,) = connection.execute(
        f"UPDATE functions SET last_version = last_version + 1 WHERE {KEY} RETURNING last_version",
        rows.key_params(latest.key),
    ).fetchone()
    # A version published from a package not settled yet waits for it, Pending; it never
    # runs the package $LATEST serves meanwhile (that is not its code).
    unsettled = latest.last_update_status is LastUpdateStatus.IN_PROGRESS
    published = latest.with_changes(
        version=str(number),
        revision_id=_revision(),
        last_modified=now,
        description=latest.description if description is None else description,
        state=State.PENDING if unsettled else latest.state,
        serving_package=None,
    )
    _insert_version(connection, published)
    return published


def _insert_version(connection: sqlite3.Connection, version: FunctionVersion) -> None:
    values = rows.version_values(version)
    columns = ", ".join(values)
    placeholders = ", ".join(f":{column}" for column in values)
    connection.execute(f"INSERT INTO versions ({columns}) VALUES ({placeholders})", values)


def _write_latest(connection: sqlite3.Connection, version: FunctionVersion) -> None:
    values = rows.version_values(version)
    assignments = ", ".join(
        f"{column} = :{column}"
        for column in values
        if column not in ("namespace", "function_name", "number")
    )
    connection.execute(f"UPDATE versions SET {assignments} WHERE {KEY} AND number = 0", values)


def _tags_json(settings: FunctionSettings) -> str:
    return json.dumps(dict(settings.tags), sort_keys=True)


def _revision() -> str:
    return str(uuid.uuid4())
