"""Store errors: the ARNs in their messages name the region the store was opened with."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelambda import errors
from kubelambda.models import DEFAULT_NAMESPACE, LATEST, Alias, FunctionKey
from kubelambda.store import SqliteStore
from tests.store_testkit import add_function, package, publish

F = FunctionKey(DEFAULT_NAMESPACE, "f")


async def missing_function(store):
    await store.get_version(FunctionKey(DEFAULT_NAMESPACE, "missing"), LATEST)


async def missing_version(store):
    await store.get_version(F, "7")


async def missing_alias(store):
    await store.get_alias(F, "live")


async def duplicate_alias(store):
    await publish(store, F)
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""))
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""))


async def update_in_progress(store):
    await store.begin_code_update(F, package("x = 2\n"), expected_revision_id=None, publish=False)
    await store.update_configuration(F, lambda v: v, expected_revision_id=None)


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-3", "ap-southeast-2"])
@pytest.mark.parametrize(
    ("operation", "error", "message"),
    [
        (missing_function, errors.ResourceNotFound, "Function not found: {arn}:missing"),
        (missing_version, errors.ResourceNotFound, "Function not found: {arn}:f:7"),
        (missing_alias, errors.ResourceNotFound, "Cannot find alias arn: {arn}:f:live"),
        (duplicate_alias, errors.ResourceConflict, "Alias already exists: {arn}:f:live"),
        (update_in_progress, errors.ResourceConflict, "in progress for resource: {arn}:f"),
    ],
)
async def test_error_messages_name_the_configured_region(
    tmp_path: Path, region, operation, error, message
):
    async with SqliteStore.open(tmp_path, region=region) as store:
        await add_function(store, F)
        with pytest.raises(error) as raised:
            await operation(store)
    arn = f"arn:aws:lambda:{region}:000000000000:function"
    assert raised.value.message.endswith(message.format(arn=arn))
