"""Store transitions: publishing, revision checks, update conflicts, package settling."""

from __future__ import annotations

import pytest
from store_helpers import add_function, package

from kubelambda import errors
from kubelambda.models import LATEST, Alias, LastUpdateStatus, ProvisionedStatus, State


def keep(version):
    return version


async def test_created_function_is_pending_and_stamped(store):
    created = await add_function(store, settle=False)
    assert (created.state, created.last_update_status) == (
        State.PENDING,
        LastUpdateStatus.IN_PROGRESS,
    )
    assert created.last_modified == "2026-01-02T03:04:05.678+0000"
    assert created.revision_id


@pytest.mark.parametrize(
    ("change", "new_version"),
    [
        (lambda v: v.with_changes(memory_size=256), True),
        (lambda v: v.with_changes(timeout=10), True),
        (lambda v: v.with_changes(environment={"COLOR": "red"}), True),
        (lambda v: v.with_changes(handler="other.handler"), True),
        (lambda v: v.with_changes(description="only words"), False),
        (keep, False),
    ],
)
async def test_publish_makes_a_version_only_when_code_or_config_changed(store, change, new_version):
    await add_function(store)
    first = await store.publish_version(
        "f", description=None, expected_revision_id=None, code_sha256=None
    )
    await store.update_configuration("f", change, expected_revision_id=None)
    second = await store.publish_version(
        "f", description=None, expected_revision_id=None, code_sha256=None
    )
    assert (second.version != first.version) is new_version


async def test_publish_freezes_a_copy_with_its_own_revision(store):
    latest = await add_function(store)
    published = await store.publish_version(
        "f", description="v1", expected_revision_id=None, code_sha256=None
    )
    assert (published.version, published.description) == ("1", "v1")
    assert published.revision_id != latest.revision_id
    assert published.code_sha256 == latest.code_sha256


@pytest.mark.parametrize(
    ("expected", "outcome"),
    [("current", None), (None, None), ("stale", errors.PreconditionFailed)],
)
async def test_update_checks_the_expected_revision(store, expected, outcome):
    created = await add_function(store)
    revision = {"current": created.revision_id, None: None, "stale": "some-old-id"}[expected]
    if outcome is None:
        updated = await store.update_configuration(
            "f", lambda v: v.with_changes(timeout=9), expected_revision_id=revision
        )
        assert updated.revision_id not in (created.revision_id, "")
    else:
        with pytest.raises(outcome):
            await store.update_configuration(
                "f", lambda v: v.with_changes(timeout=9), expected_revision_id=revision
            )


async def test_update_of_a_pending_function_is_a_conflict(store):
    await add_function(store, settle=False)
    with pytest.raises(errors.ResourceConflict, match="Pending"):
        await store.update_configuration("f", keep, expected_revision_id=None)


async def _begin_update(store, files):
    stored = store.packages.save(package(files))
    await store.begin_code_update(
        "f",
        code_sha256=stored.code_sha256,
        code_size=stored.size,
        code_path=str(store.packages.directory(stored.sha256_hex)),
        expected_revision_id=None,
        publish=False,
    )
    return stored


async def test_update_while_one_is_in_progress_is_a_conflict(store):
    await add_function(store)
    await _begin_update(store, {"app.py": "x = 2\n"})
    with pytest.raises(errors.ResourceConflict, match="in progress"):
        await store.update_configuration("f", keep, expected_revision_id=None)


async def test_catalog_serves_the_old_package_while_the_new_one_unpacks(store):
    old = await add_function(store)
    new = await _begin_update(store, {"app.py": "x = 2\n"})
    serving = (await store.catalog()).versions
    (target,) = serving
    assert serving[target].code_sha256 == old.code_sha256
    assert (await store.get_version("f", LATEST)).code_sha256 == new.code_sha256


@pytest.mark.parametrize(
    ("error", "status", "serves_new"),
    [(None, LastUpdateStatus.SUCCESSFUL, True), ("broken zip", LastUpdateStatus.FAILED, False)],
)
async def test_finishing_a_code_update(store, error, status, serves_new):
    old = await add_function(store)
    new = await _begin_update(store, {"app.py": "x = 2\n"})
    await store.finish_package("f", new.code_sha256, error=error)
    latest = await store.get_version("f", LATEST)
    assert latest.last_update_status is status
    assert latest.state is State.ACTIVE
    assert latest.last_update_status_reason == (error or "")
    (serving,) = (await store.catalog()).versions.values()
    assert serving.code_sha256 == (new.code_sha256 if serves_new else old.code_sha256)


async def test_a_package_that_fails_leaves_a_new_function_failed(store):
    created = await add_function(store, settle=False)
    await store.finish_package("f", created.code_sha256, error="bad entry")
    failed = await store.get_version("f", LATEST)
    assert (failed.state, failed.state_reason) == (State.FAILED, "bad entry")


async def test_version_published_during_create_settles_with_latest(store):
    created = await add_function(store, publish=True, settle=False)
    assert (created.version, created.state) == ("1", State.PENDING)
    await store.finish_package("f", created.code_sha256, error=None)
    assert (await store.get_version("f", "1")).state is State.ACTIVE


@pytest.mark.parametrize(
    "alias",
    [
        Alias("f", "live", "1", ""),
        Alias("f", "canary", "2", "", additional_version_weights={"1": 0.1}),
    ],
)
async def test_a_version_an_alias_uses_cannot_be_deleted(store, alias):
    await add_function(store)
    for timeout in (5, 6):
        await store.publish_version(
            "f", description=None, expected_revision_id=None, code_sha256=None
        )
        await store.update_configuration(
            "f", lambda v, t=timeout: v.with_changes(timeout=t), expected_revision_id=None
        )
    await store.create_alias(alias)
    with pytest.raises(errors.ResourceConflict, match=alias.name):
        await store.delete_version("f", "1")


async def test_deleting_a_function_removes_everything_it_owns(store):
    await add_function(store)
    await store.publish_version("f", description=None, expected_revision_id=None, code_sha256=None)
    await store.create_alias(Alias("f", "live", "1", ""))
    await store.put_provisioned("f", "live", requested=1)
    await store.delete_function("f")
    catalog = await store.catalog()
    assert (catalog.versions, catalog.aliases, catalog.settings, catalog.provisioned) == (
        {},
        {},
        {},
        {},
    )


async def test_every_committed_change_reaches_subscribers(store):
    seen = []
    store.subscribe(lambda catalog: seen.append(len(catalog.versions)))
    await add_function(store)
    await store.publish_version("f", description=None, expected_revision_id=None, code_sha256=None)
    assert seen == [1, 1, 2]  # created, settled, published


async def test_a_failed_write_reaches_no_subscriber(store):
    seen = []
    store.subscribe(seen.append)
    with pytest.raises(errors.ResourceNotFound):
        await store.update_configuration("missing", keep, expected_revision_id=None)
    assert seen == []


async def test_unsubscribed_listener_hears_nothing_more(store):
    seen = []
    unsubscribe = store.subscribe(seen.append)
    unsubscribe()
    await add_function(store)
    assert seen == []


async def test_a_repeated_provisioned_report_is_no_news(store):
    await add_function(store)
    await store.publish_version("f", description=None, expected_revision_id=None, code_sha256=None)
    await store.put_provisioned("f", "1", requested=2)
    seen = []
    store.subscribe(seen.append)
    for _ in range(3):
        await store.set_provisioned_status("f", "1", allocated=2, status=ProvisionedStatus.READY)
    assert len(seen) == 1
    assert seen[0].provisioned[("f", "1")].status is ProvisionedStatus.READY


async def test_a_report_on_a_deleted_config_is_ignored(store):
    await add_function(store)
    await store.set_provisioned_status("f", "9", allocated=1, status=ProvisionedStatus.READY)
    assert (await store.catalog()).provisioned == {}
