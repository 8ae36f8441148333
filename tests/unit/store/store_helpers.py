"""Store test helpers: a real SQLite store in a directory, and a function factory."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

from kubelambda.models import LATEST, FunctionSettings, FunctionVersion, LastUpdateStatus, State
from kubelambda.store import SqliteStore
from tests import factories

CLOCK = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)


def package(files: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in (files or {"app.py": "x = 1\n"}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


async def add_function(
    store: SqliteStore,
    name: str = "f",
    *,
    files: dict[str, str] | None = None,
    publish: bool = False,
    settle: bool = True,
) -> FunctionVersion:
    """Create a function the way the management service does; settle it unless told not to."""
    stored = store.packages.save(package(files))
    latest = factories.function_version(
        name,
        LATEST,
        role="arn:aws:iam::123456789012:role/r",
        code_sha256=stored.code_sha256,
        code_size=stored.size,
        code_path=str(store.packages.directory(stored.sha256_hex)),
        revision_id="",
        last_modified="",
        state=State.PENDING,
        last_update_status=LastUpdateStatus.IN_PROGRESS,
    )
    created = await store.create_function(latest, FunctionSettings(name), publish=publish)
    if settle:
        store.packages.unpack(stored.sha256_hex)
        await store.finish_package(name, stored.code_sha256, error=None)
        return await store.get_version(name, created.version)
    return created
