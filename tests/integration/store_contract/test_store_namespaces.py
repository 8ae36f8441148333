"""Namespaces: one function name in two namespaces makes two independent functions."""

from __future__ import annotations

import pytest

from kubelambda import errors
from kubelambda.models import (
    LATEST,
    Alias,
    FunctionKey,
    FunctionVersion,
    ProvisionedStatus,
    State,
    Target,
)
from tests.store_testkit import add_function, package, publish


@pytest.fixture
def A(ns):
    return FunctionKey(ns.a, "f")


@pytest.fixture
def B(ns):
    return FunctionKey(ns.b, "f")


@pytest.fixture
async def both(store, A, B):
    """``f`` in namespaces ``team-a`` and ``team-b``, settled."""
    await add_function(store, A)
    await add_function(store, B)
    return store


async def test_the_same_name_can_be_created_in_two_namespaces(both, ns, A, B):
    versions = (await both.catalog()).versions
    assert set(versions) == {Target(ns.a, "f", LATEST), Target(ns.b, "f", LATEST)}
    assert (await both.get_version(A, LATEST)).namespace == ns.a
    assert (await both.get_version(B, LATEST)).namespace == ns.b


async def test_creating_it_twice_in_one_namespace_is_a_conflict(both, ns, A, B):
    with pytest.raises(errors.ResourceConflict, match="already exist"):
        await add_function(both, A)


async def test_listing_shows_only_the_namespace_asked_for(both, ns, A, B):
    await add_function(both, FunctionKey(ns.a, "g"))
    listed = await both.list_functions(ns.a, after=None, limit=50, all_versions=True)
    assert [(v.namespace, v.function_name) for v in listed] == [(ns.a, "f"), (ns.a, "g")]
    assert (
        await both.list_functions(
            "nobody-has-this-namespace", after=None, limit=50, all_versions=False
        )
        == []
    )


async def test_version_numbers_count_per_namespace(both, ns, A, B):
    await publish(both, A)
    await both.update_configuration(
        A, lambda v: v.with_changes(timeout=9), expected_revision_id=None
    )
    assert (await publish(both, A)).version == "2"
    assert (await publish(both, B)).version == "1"
    listed = await both.list_versions(B, after=-1, limit=50)
    assert [v.version for v in listed] == [LATEST, "1"]


async def test_deleting_a_function_leaves_its_namesake_alone(both, ns, A, B):
    await publish(both, B)
    await both.delete_function(A)
    with pytest.raises(errors.ResourceNotFound):
        await both.get_version(A, LATEST)
    assert (await both.get_version(B, "1")).state is State.ACTIVE
    assert {t.namespace for t in (await both.catalog()).versions} == {ns.b}


async def test_aliases_belong_to_one_namespace(both, ns, A, B):
    await publish(both, A)
    await both.create_alias(Alias(ns.a, "f", "live", "1", ""))
    with pytest.raises(errors.ResourceNotFound, match="Cannot find alias"):
        await both.get_alias(B, "live")
    assert await both.list_aliases(B, function_version=None, after="", limit=50) == []
    # Version 1 of team-b's f does not exist yet: the alias cannot point at it.
    with pytest.raises(errors.ResourceNotFound):
        await both.create_alias(Alias(ns.b, "f", "live", "1", ""))
    await publish(both, B)
    await both.create_alias(Alias(ns.b, "f", "live", "1", "", description="in b"))
    aliases = (await both.catalog()).aliases
    assert (aliases[(A, "live")].description, aliases[(B, "live")].description) == ("", "in b")


async def test_settings_belong_to_one_namespace(both, ns, A, B):
    await both.tag(A, {"team": "a"})
    await both.put_reserved_concurrency(A, 3)
    settings = await both.get_settings(B)
    assert (dict(settings.tags), settings.reserved_concurrency) == ({}, None)
    assert (await both.catalog()).settings[A].reserved_concurrency == 3


async def test_provisioned_configs_belong_to_one_namespace(both, ns, A, B):
    await publish(both, A)
    await publish(both, B)
    await both.put_provisioned(A, "1", requested=2)
    with pytest.raises(errors.ProvisionedConcurrencyConfigNotFound):
        await both.get_provisioned(B, "1")
    await both.set_provisioned_status(B, "1", allocated=2, status=ProvisionedStatus.READY)
    assert (await both.get_provisioned(A, "1")).status is ProvisionedStatus.IN_PROGRESS
    assert set((await both.catalog()).provisioned) == {(A, "1")}


async def test_a_package_settles_only_the_namespace_it_was_reported_for(store, ns, A, B):
    shared = package("same code in both\n")
    await add_function(store, A, code=shared, settle=False)
    await add_function(store, B, code=shared, settle=False)
    assert await store.finish_package(A, shared.code_sha256, error=None)
    assert (await store.get_version(A, LATEST)).state is State.ACTIVE
    assert (await store.get_version(B, LATEST)).state is State.PENDING


async def test_a_write_re_reads_only_the_function_it_touched(both, ns, A, B):
    before = await both.catalog()
    await both.update_configuration(
        A, lambda v: v.with_changes(timeout=9), expected_revision_id=None
    )
    after = await both.catalog()
    untouched = Target(ns.b, "f", LATEST)
    touched = Target(ns.a, "f", LATEST)
    assert after.versions[untouched] is before.versions[untouched]
    assert after.settings[B] is before.settings[B]
    assert after.versions[touched] is not before.versions[touched]
    assert isinstance(after.versions[touched], FunctionVersion)
    assert after.versions[touched].timeout == 9
