"""Event invoke configs and dead-letter targets in the SQLite store."""

from __future__ import annotations

import pytest
from store_helpers import REGION, add_function, key, publish

from kubelambda import errors
from kubelambda.models import DEFAULT_NAMESPACE, LATEST, Alias, EventInvokeConfig

F = key("f")
STAMP = "2026-01-02T03:04:05.678+0000"  # store_helpers.CLOCK in Lambda's form
ON_FAILURE = "arn:aws:lambda:eu-central-1:000000000000:function:on-fail"
TOPIC = "arn:aws:kafka:eu-central-1:000000000000:topic/failures"


def config(qualifier: str = LATEST, *, function: str = "f", namespace: str = DEFAULT_NAMESPACE):
    return EventInvokeConfig(
        namespace,
        function,
        qualifier,
        maximum_retry_attempts=1,
        maximum_event_age_seconds=120,
        on_success=TOPIC,
        on_failure=ON_FAILURE,
    )


@pytest.fixture
async def with_alias(store):
    """``f`` with version 1 and alias ``live`` on it."""
    await add_function(store)
    await publish(store, F)
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""))
    return store


@pytest.mark.parametrize("qualifier", [LATEST, "1", "live"])
async def test_a_put_config_reads_back_stamped(with_alias, qualifier):
    put = await with_alias.put_event_invoke_config(config(qualifier))
    assert put == config(qualifier).with_changes(last_modified=STAMP)
    assert await with_alias.get_event_invoke_config(F, qualifier) == put


async def test_a_put_replaces_the_whole_config(with_alias):
    await with_alias.put_event_invoke_config(config())
    replaced = EventInvokeConfig(DEFAULT_NAMESPACE, "f", LATEST, maximum_retry_attempts=0)
    await with_alias.put_event_invoke_config(replaced)
    got = await with_alias.get_event_invoke_config(F, LATEST)
    assert got == replaced.with_changes(last_modified=STAMP)


@pytest.mark.parametrize(
    ("qualifier", "arn"),
    [
        ("7", f"arn:aws:lambda:{REGION}:000000000000:function:f:7"),
        ("nope", f"arn:aws:lambda:{REGION}:000000000000:function:f:nope"),
    ],
)
async def test_a_put_on_a_qualifier_that_does_not_exist_is_not_found(with_alias, qualifier, arn):
    with pytest.raises(errors.ResourceNotFound, match=f"Function not found: {arn}$"):
        await with_alias.put_event_invoke_config(config(qualifier))
    assert (await with_alias.catalog()).event_invoke_configs == {}


async def test_a_put_on_a_function_that_does_not_exist_is_not_found(store):
    with pytest.raises(errors.ResourceNotFound, match="Function not found"):
        await store.put_event_invoke_config(config())


async def test_a_get_with_none_set_names_the_qualified_arn(with_alias):
    arn = f"arn:aws:lambda:{REGION}:000000000000:function:f:live"
    with pytest.raises(
        errors.ResourceNotFound, match=f"^The function {arn} doesn't have an EventInvokeConfig$"
    ):
        await with_alias.get_event_invoke_config(F, "live")


async def test_a_delete_removes_the_config(with_alias):
    await with_alias.put_event_invoke_config(config())
    await with_alias.delete_event_invoke_config(F, LATEST)
    with pytest.raises(errors.ResourceNotFound):
        await with_alias.get_event_invoke_config(F, LATEST)
    assert (await with_alias.catalog()).event_invoke_configs == {}


async def test_a_delete_with_none_set_is_not_found(with_alias):
    with pytest.raises(errors.ResourceNotFound, match="doesn't have an EventInvokeConfig"):
        await with_alias.delete_event_invoke_config(F, LATEST)


async def test_the_list_pages_by_qualifier(with_alias):
    for qualifier in ("live", LATEST, "1"):
        await with_alias.put_event_invoke_config(config(qualifier))
    first = await with_alias.list_event_invoke_configs(F, after="", limit=2)
    rest = await with_alias.list_event_invoke_configs(F, after=first[-1].qualifier, limit=2)
    assert [c.qualifier for c in first + rest] == [LATEST, "1", "live"]


async def test_the_list_of_a_function_that_does_not_exist_is_not_found(store):
    with pytest.raises(errors.ResourceNotFound, match="Function not found"):
        await store.list_event_invoke_configs(F, after="", limit=10)


async def test_configs_reach_the_catalog(with_alias):
    put = await with_alias.put_event_invoke_config(config("live"))
    assert dict((await with_alias.catalog()).event_invoke_configs) == {(F, "live"): put}


async def test_a_write_on_another_function_keeps_the_configs_in_the_catalog(with_alias):
    await with_alias.put_event_invoke_config(config())
    before = (await with_alias.catalog()).event_invoke_configs[(F, LATEST)]
    await add_function(with_alias, "g")
    await with_alias.update_configuration(
        key("g"), lambda v: v.with_changes(timeout=9), expected_revision_id=None
    )
    # Reused from the previous catalog, not re-read: only g's rows were.
    assert (await with_alias.catalog()).event_invoke_configs[(F, LATEST)] is before


async def test_deleting_the_function_deletes_its_configs(with_alias):
    await with_alias.put_event_invoke_config(config())
    await with_alias.put_event_invoke_config(config("live"))
    await with_alias.delete_function(F)
    assert (await with_alias.catalog()).event_invoke_configs == {}


async def test_deleting_a_version_deletes_its_config_only(store):
    await add_function(store)
    await publish(store, F)
    await store.put_event_invoke_config(config("1"))
    await store.put_event_invoke_config(config())
    await store.delete_version(F, "1")
    assert set((await store.catalog()).event_invoke_configs) == {(F, LATEST)}
    with pytest.raises(errors.ResourceNotFound):
        await store.get_event_invoke_config(F, "1")


async def test_deleting_an_alias_deletes_its_config_only(with_alias):
    await with_alias.put_event_invoke_config(config("live"))
    await with_alias.put_event_invoke_config(config("1"))
    await with_alias.delete_alias(F, "live")
    assert set((await with_alias.catalog()).event_invoke_configs) == {(F, "1")}


async def test_configs_belong_to_one_namespace(store):
    a, b = key("f", "team-a"), key("f", "team-b")
    await add_function(store, namespace=a.namespace)
    await add_function(store, namespace=b.namespace)
    await store.put_event_invoke_config(config(namespace=a.namespace))
    with pytest.raises(errors.ResourceNotFound):
        await store.get_event_invoke_config(b, LATEST)
    assert await store.list_event_invoke_configs(b, after="", limit=10) == []
    await store.delete_function(b)
    assert set((await store.catalog()).event_invoke_configs) == {(a, LATEST)}


async def test_a_new_function_uses_the_default_dead_letter_topic(store):
    assert (await add_function(store)).dead_letter_target_arn is None


@pytest.mark.parametrize("target", [TOPIC, ""])
async def test_update_configuration_sets_the_dead_letter_target(store, target):
    await add_function(store)
    await store.update_configuration(
        F, lambda v: v.with_changes(dead_letter_target_arn=target), expected_revision_id=None
    )
    latest = await store.get_version(F, LATEST)
    assert latest.dead_letter_target_arn == target
    assert (await store.catalog()).versions[latest.target].dead_letter_target_arn == target


async def test_a_published_version_keeps_the_dead_letter_target_it_was_published_with(store):
    await add_function(store)
    await store.update_configuration(
        F, lambda v: v.with_changes(dead_letter_target_arn=TOPIC), expected_revision_id=None
    )
    await publish(store, F)
    await store.update_configuration(
        F, lambda v: v.with_changes(dead_letter_target_arn=""), expected_revision_id=None
    )
    assert (await store.get_version(F, "1")).dead_letter_target_arn == TOPIC
    assert (await store.get_version(F, LATEST)).dead_letter_target_arn == ""


async def test_a_new_dead_letter_target_is_worth_publishing_a_version(store):
    await add_function(store)
    await publish(store, F)
    await store.update_configuration(
        F, lambda v: v.with_changes(dead_letter_target_arn=TOPIC), expected_revision_id=None
    )
    assert (await publish(store, F)).version == "2"
