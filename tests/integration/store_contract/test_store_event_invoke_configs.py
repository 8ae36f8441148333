"""Event invoke configs and dead-letter targets: the contract of both stores."""

from __future__ import annotations

import pytest

from kubelambda import errors
from kubelambda.models import LATEST, Alias, EventInvokeConfig, FunctionKey
from tests.store_testkit import REGION, STAMP, add_function, publish

ON_FAILURE = "arn:aws:lambda:eu-central-1:000000000000:function:on-fail"
TOPIC = "arn:aws:kafka:eu-central-1:000000000000:topic/failures"


def config(namespace: str, qualifier: str = LATEST, *, function: str = "f"):
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
async def with_alias(store, f):
    """``f`` with version 1 and alias ``live`` on it."""
    await add_function(store, f)
    await publish(store, f)
    await store.create_alias(Alias(f.namespace, "f", "live", "1", ""))
    return store


@pytest.mark.parametrize("qualifier", [LATEST, "1", "live"])
async def test_a_put_config_reads_back_stamped(with_alias, f, qualifier):
    put = await with_alias.put_event_invoke_config(config(f.namespace, qualifier))
    assert put == config(f.namespace, qualifier).with_changes(last_modified=STAMP)
    assert await with_alias.get_event_invoke_config(f, qualifier) == put


async def test_a_put_replaces_the_whole_config(with_alias, f):
    await with_alias.put_event_invoke_config(config(f.namespace))
    replaced = EventInvokeConfig(f.namespace, "f", LATEST, maximum_retry_attempts=0)
    await with_alias.put_event_invoke_config(replaced)
    got = await with_alias.get_event_invoke_config(f, LATEST)
    assert got == replaced.with_changes(last_modified=STAMP)


@pytest.mark.parametrize(
    ("qualifier", "arn"),
    [
        ("7", f"arn:aws:lambda:{REGION}:000000000000:function:f:7"),
        ("nope", f"arn:aws:lambda:{REGION}:000000000000:function:f:nope"),
    ],
)
async def test_a_put_on_a_qualifier_that_does_not_exist_is_not_found(with_alias, f, qualifier, arn):
    with pytest.raises(errors.ResourceNotFound, match=f"Function not found: {arn}$"):
        await with_alias.put_event_invoke_config(config(f.namespace, qualifier))
    assert (await with_alias.catalog()).event_invoke_configs == {}


async def test_a_put_on_a_function_that_does_not_exist_is_not_found(store, f):
    with pytest.raises(errors.ResourceNotFound, match="Function not found"):
        await store.put_event_invoke_config(config(f.namespace))


async def test_a_get_with_none_set_names_the_qualified_arn(with_alias, f):
    arn = f"arn:aws:lambda:{REGION}:000000000000:function:f:live"
    with pytest.raises(
        errors.ResourceNotFound, match=f"^The function {arn} doesn't have an EventInvokeConfig$"
    ):
        await with_alias.get_event_invoke_config(f, "live")


async def test_a_delete_removes_the_config(with_alias, f):
    await with_alias.put_event_invoke_config(config(f.namespace))
    await with_alias.delete_event_invoke_config(f, LATEST)
    with pytest.raises(errors.ResourceNotFound):
        await with_alias.get_event_invoke_config(f, LATEST)
    assert (await with_alias.catalog()).event_invoke_configs == {}


async def test_a_delete_with_none_set_is_not_found(with_alias, f):
    with pytest.raises(errors.ResourceNotFound, match="doesn't have an EventInvokeConfig"):
        await with_alias.delete_event_invoke_config(f, LATEST)


async def test_the_list_pages_by_qualifier(with_alias, f):
    for qualifier in ("live", LATEST, "1"):
        await with_alias.put_event_invoke_config(config(f.namespace, qualifier))
    first = await with_alias.list_event_invoke_configs(f, after="", limit=2)
    rest = await with_alias.list_event_invoke_configs(f, after=first[-1].qualifier, limit=2)
    assert [c.qualifier for c in first + rest] == [LATEST, "1", "live"]


async def test_the_list_of_a_function_that_does_not_exist_is_not_found(store, f):
    with pytest.raises(errors.ResourceNotFound, match="Function not found"):
        await store.list_event_invoke_configs(f, after="", limit=10)


async def test_configs_reach_the_catalog(with_alias, f):
    put = await with_alias.put_event_invoke_config(config(f.namespace, "live"))
    assert dict((await with_alias.catalog()).event_invoke_configs) == {(f, "live"): put}


async def test_a_write_on_another_function_keeps_the_configs_in_the_catalog(with_alias, f):
    await with_alias.put_event_invoke_config(config(f.namespace))
    before = (await with_alias.catalog()).event_invoke_configs[(f, LATEST)]
    await add_function(with_alias, FunctionKey(f.namespace, "g"))
    await with_alias.update_configuration(
        FunctionKey(f.namespace, "g"),
        lambda v: v.with_changes(timeout=9),
        expected_revision_id=None,
    )
    # Reused from the previous catalog, not re-read: only g's rows were.
    assert (await with_alias.catalog()).event_invoke_configs[(f, LATEST)] is before


async def test_deleting_the_function_deletes_its_configs(with_alias, f):
    await with_alias.put_event_invoke_config(config(f.namespace))
    await with_alias.put_event_invoke_config(config(f.namespace, "live"))
    await with_alias.delete_function(f)
    assert (await with_alias.catalog()).event_invoke_configs == {}


async def test_deleting_a_version_deletes_its_config_only(store, f):
    await add_function(store, f)
    await publish(store, f)
    await store.put_event_invoke_config(config(f.namespace, "1"))
    await store.put_event_invoke_config(config(f.namespace))
    await store.delete_version(f, "1")
    assert set((await store.catalog()).event_invoke_configs) == {(f, LATEST)}
    with pytest.raises(errors.ResourceNotFound):
        await store.get_event_invoke_config(f, "1")


async def test_deleting_an_alias_deletes_its_config_only(with_alias, f):
    await with_alias.put_event_invoke_config(config(f.namespace, "live"))
    await with_alias.put_event_invoke_config(config(f.namespace, "1"))
    await with_alias.delete_alias(f, "live")
    assert set((await with_alias.catalog()).event_invoke_configs) == {(f, "1")}


async def test_configs_belong_to_one_namespace(store, ns):
    a, b = FunctionKey(ns.a, "f"), FunctionKey(ns.b, "f")
    await add_function(store, a)
    await add_function(store, b)
    await store.put_event_invoke_config(config(a.namespace))
    with pytest.raises(errors.ResourceNotFound):
        await store.get_event_invoke_config(b, LATEST)
    assert await store.list_event_invoke_configs(b, after="", limit=10) == []
    await store.delete_function(b)
    assert set((await store.catalog()).event_invoke_configs) == {(a, LATEST)}


async def test_a_new_function_uses_the_default_dead_letter_topic(store, f):
    assert (await add_function(store, f)).dead_letter_target_arn is None


@pytest.mark.parametrize("target", [TOPIC, ""])
async def test_update_configuration_sets_the_dead_letter_target(store, f, target):
    await add_function(store, f)
    await store.update_configuration(
        f, lambda v: v.with_changes(dead_letter_target_arn=target), expected_revision_id=None
    )
    latest = await store.get_version(f, LATEST)
    assert latest.dead_letter_target_arn == target
    assert (await store.catalog()).versions[latest.target].dead_letter_target_arn == target


async def test_a_published_version_keeps_the_dead_letter_target_it_was_published_with(store, f):
    await add_function(store, f)
    await store.update_configuration(
        f, lambda v: v.with_changes(dead_letter_target_arn=TOPIC), expected_revision_id=None
    )
    await publish(store, f)
    await store.update_configuration(
        f, lambda v: v.with_changes(dead_letter_target_arn=""), expected_revision_id=None
    )
    assert (await store.get_version(f, "1")).dead_letter_target_arn == TOPIC
    assert (await store.get_version(f, LATEST)).dead_letter_target_arn == ""


async def test_a_new_dead_letter_target_is_worth_publishing_a_version(store, f):
    await add_function(store, f)
    await publish(store, f)
    await store.update_configuration(
        f, lambda v: v.with_changes(dead_letter_target_arn=TOPIC), expected_revision_id=None
    )
    assert (await publish(store, f)).version == "2"
