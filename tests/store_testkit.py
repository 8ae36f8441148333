"""Store test helpers (the SQLite store's unit tests and the contract tests of both
stores): a fixed clock, packages by digest, and a function made the way the management
service makes one."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from kubelambda.models import (
    LATEST,
    CodePackage,
    FunctionKey,
    FunctionSettings,
    FunctionVersion,
    LastUpdateStatus,
    State,
)
from tests import factories

CLOCK = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
STAMP = "2026-01-02T03:04:05.678+0000"  # CLOCK in Lambda's form
REGION = "eu-central-1"


def package(content: str = "x = 1\n") -> CodePackage:
    """A package as a code store would name it; neither store reads the bytes."""
    data = content.encode()
    return CodePackage(sha256_hex=hashlib.sha256(data).hexdigest(), size=len(data))


async def add_function(
    store,
    key: FunctionKey,
    *,
    code: CodePackage | None = None,
    publish: bool = False,
    settle: bool = True,
) -> FunctionVersion:
    """Create ``key``; the controller settles its package unless told not to."""
    code = code or package()
    latest = factories.function_version(
        key.name,
        LATEST,
        namespace=key.namespace,
        role="arn:aws:iam::123456789012:role/r",
        code_sha256=code.code_sha256,
        code_size=code.size,
        revision_id="",
        last_modified="",
        state=State.PENDING,
        last_update_status=LastUpdateStatus.IN_PROGRESS,
    )
    created = await store.create_function(
        latest, FunctionSettings(key.namespace, key.name), publish=publish
    )
    if settle:
        await store.finish_package(created.key, code.code_sha256, error=None)
        return await store.get_version(created.key, created.version)
    return created


async def publish(store, function: FunctionKey) -> FunctionVersion:
    return await store.publish_version(
        function, description=None, expected_revision_id=None, code_sha256=None
    )
