"""Store test helpers: a fixed clock, code packages by digest, and a function factory."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from kubelambda.models import (
    DEFAULT_NAMESPACE,
    LATEST,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
)
from kubelambda.store import SqliteStore
from tests import factories

CLOCK = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
REGION = "eu-central-1"


def package(content: str = "x = 1\n") -> CodePackage:
    """A package as a code store would name it; the SQLite store never reads the bytes."""
    data = content.encode()
    return CodePackage(sha256_hex=hashlib.sha256(data).hexdigest(), size=len(data))


def key(name: str = "f", namespace: str = DEFAULT_NAMESPACE) -> FunctionKey:
    return FunctionKey(namespace, name)


async def add_function(
    store: SqliteStore,
    name: str = "f",
    *,
    namespace: str = DEFAULT_NAMESPACE,
    code: CodePackage | None = None,
    publish: bool = False,
    settle: bool = True,
) -> FunctionVersion:
    """Create a function the way the management service does; the controller settles its
    package unless told not to."""
    code = code or package()
    latest = factories.function_version(
        name,
        LATEST,
        namespace=namespace,
        role="arn:aws:iam::123456789012:role/r",
        code_sha256=code.code_sha256,
        code_size=code.size,
        revision_id="",
        last_modified="",
        state=State.PENDING,
        last_update_status=LastUpdateStatus.IN_PROGRESS,
    )
    created = await store.create_function(
        latest, FunctionSettings(namespace, name), publish=publish
    )
    if settle:
        await store.finish_package(created.key, code.code_sha256, error=None)
        return await store.get_version(created.key, created.version)
    return created


async def publish(store: SqliteStore, function: FunctionKey) -> FunctionVersion:
    return await store.publish_version(
        function, description=None, expected_revision_id=None, code_sha256=None
    )
