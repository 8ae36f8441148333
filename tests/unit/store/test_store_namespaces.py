"""Namespaces: one function name in two namespaces makes two independent functions."""

from __future__ import annotations

import pytest
from store_helpers import add_function, key, package, publish

from kubelambda import errors
from kubelambda.models import LATEST, Alias, FunctionVersion, ProvisionedStatus, State, Target

A = key("f", "team-a")
B = key("f", "team-b")


@pytest.fixture
async def both(store):
    """``f`` in namespaces ``team-a`` and ``team-b``, settled."""
    await add_function(store, namespace=A.namespace)
    await add_function(store, namespace=B.namespace)
    return store


async def test_the_same_name_can_be_created_in_two_namespaces(both):
    versions = (await both.catalog()).versions
    assert set(versions) == {Target("team-a", "f", LATEST), Target("team-b", "f", LATEST)}
    assert (await both.get_version(A, LATEST)).namespace == "team-a"
    assert (await both.get_version(B, LATEST)).namespace == "team-b"


async def test_creating_it_twice_in_one_namespace_is_a_conflict(both):
    with pytest.raises(errors.ResourceConflict, match="already exist"):
        await add_function(both, namespace=A.namespace)


async def test_listing_shows_only_the_namespace_asked_for(both):
    await add_function(both, "g", namespace=A.namespace)
    listed = await both.list_functions("team-a", after=None, limit=50, all_versions=True)
    assert [(v.namespace, v.function_name) for v in listed] == [("team-a", "f"), ("team-a", "g")]
    assert await both.list_functions("team-c", after=None, limit=50, all_versions=False) == []


async def test_version_numbers_count_per_namespace(both):
    await publish(both, A)
    await both.update_configuration(
        A, lambda v: v.with_changes(timeout=9), expected_revision_id=None
    )
    assert (await publish(both, A)).version == "2"
    assert (await publish(both, B)).version == "1"
    listed = await both.list_versions(B, after=-1, limit=50)
    assert [v.version for v in listed] == [LATEST, "1"]


async def test_deleting_a_function_leaves_its_namesake_alone(both):
    await publish(both, B)
    await both.delete_function(A)
    with pytest.raises(errors.ResourceNotFound):
        await both.get_version(A, LATEST)
    assert (await both.get_version(B, "1")).state is State.ACTIVE
    assert {t.namespace for t in (await both.catalog()).versions} == {"team-b"}


async def test_aliases_belong_to_one_namespace(both):
    await publish(both, A)
    await both.create_alias(Alias("team-a", "f", "live", "1", ""))
    with pytest.raises(errors.ResourceNotFound, match="Cannot find alias"):
        await both.get_alias(B, "live")
    assert await both.list_aliases(B, function_version=None, after="", limit=50) == []
    # Version 1 of team-b's f does not exist yet: the alias cannot point at it.
    with pytest.raises(errors.ResourceNotFound):
        await both.create_alias(Alias("team-b", "f", "live", "1", ""))
    await publish(both, B)
    await both.create_alias(Alias("team-b", "f", "live", "1", "", description="in b"))
    aliases = (await both.catalog()).aliases
    assert (aliases[(A, "live")].description, aliases[(B, "live")].description) == ("", "in b")


async def test_settings_belong_to_one_namespace(both):
    await both.tag(A, {"team": "a"})
    await both.put_reserved_concurrency(A, 3)
    settings = await both.get_settings(B)
    assert (dict(settings.tags), settings.reserved_concurrency) == ({}, None)
    assert (await both.catalog()).settings[A].reserved_concurrency == 3


async def test_provisioned_configs_belong_to_one_namespace(both):
    await publish(both, A)
    await publish(both, B)
    await both.put_provisioned(A, "1", requested=2)
    with pytest.raises(errors.ProvisionedConcurrencyConfigNotFound):
        await both.get_provisioned(B, "1")
    await both.set_provisioned_status(B, "1", allocated=2, status=ProvisionedStatus.READY)
    assert (await both.get_provisioned(A, "1")).status is ProvisionedStatus.IN_PROGRESS
    assert set((await both.catalog()).provisioned) == {(A, "1")}


async def test_a_package_settles_only_the_namespace_it_was_reported_for(store):
    shared = package("same code in both\n")
    await add_function(store, namespace=A.namespace, code=shared, settle=False)
    await add_function(store, namespace=B.namespace, code=shared, settle=False)
    assert await store.finish_package(A, shared.code_sha256, error=None)
    assert (await store.get_version(A, LATEST)).state is State.ACTIVE
    assert (await store.get_version(B, LATEST)).state is State.PENDING


async def test_a_write_re_reads_only_the_function_it_touched(both):
    before = await both.catalog()
    await both.update_configuration(
        A, lambda v: v.with_changes(timeout=9), expected_revision_id=None
    )
    after = await both.catalog()
    untouched = Target("team-b", "f", LATEST)
    touched = Target("team-a", "f", LATEST)
    assert after.versions[untouched] is before.versions[untouched]
    assert after.settings[B] is before.settings[B]
    assert after.versions[touched] is not before.versions[touched]
    assert isinstance(after.versions[touched], FunctionVersion)
    assert after.versions[touched].timeout == 9
