"""Store transitions: publishing, revision checks, update conflicts, package settling."""

from __future__ import annotations

import pytest
from store_helpers import add_function, key, package, publish

from kubelambda import errors
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    LATEST,
    Alias,
    LastUpdateStatus,
    ProvisionedStatus,
    State,
    Target,
)

F = key()
LATEST_F = Target(DEFAULT_NAMESPACE, "f", LATEST)


def keep(version):
    return version


async def begin_update(store, content, *, publish=False, expected_revision_id=None):
    new = package(content)
    updated = await store.begin_code_update(
        F, new, expected_revision_id=expected_revision_id, publish=publish
    )
    return new, updated


async def test_created_function_is_pending_and_stamped(store):
    created = await add_function(store, settle=False)
    assert (created.state, created.last_update_status) == (
        State.PENDING,
        LastUpdateStatus.IN_PROGRESS,
    )
    assert created.last_modified == "2026-01-02T03:04:05.678+0000"
    assert created.revision_id
    assert created.serving_package is None


async def test_settling_a_new_function_makes_it_active(store):
    created = await add_function(store, settle=False)
    assert await store.finish_package(F, created.code_sha256, error=None)
    settled = await store.get_version(F, LATEST)
    assert (settled.state, settled.last_update_status) == (
        State.ACTIVE,
        LastUpdateStatus.SUCCESSFUL,
    )


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
    first = await publish(store, F)
    await store.update_configuration(F, change, expected_revision_id=None)
    second = await publish(store, F)
    assert (second.version != first.version) is new_version


async def test_publish_freezes_a_copy_with_its_own_revision(store):
    latest = await add_function(store)
    published = await store.publish_version(
        F, description="v1", expected_revision_id=None, code_sha256=None
    )
    assert (published.version, published.description) == ("1", "v1")
    assert published.revision_id != latest.revision_id
    assert published.code_sha256 == latest.code_sha256


async def test_publish_refuses_a_code_sha256_that_is_not_latest(store):
    await add_function(store)
    with pytest.raises(errors.InvalidParameterValue, match="CodeSHA256"):
        await store.publish_version(
            F,
            description=None,
            expected_revision_id=None,
            code_sha256=package("other").code_sha256,
        )


@pytest.mark.parametrize(
    ("expected", "outcome"),
    [("current", None), (None, None), ("stale", errors.PreconditionFailed)],
)
async def test_update_checks_the_expected_revision(store, expected, outcome):
    created = await add_function(store)
    revision = {"current": created.revision_id, None: None, "stale": "some-old-id"}[expected]
    if outcome is None:
        updated = await store.update_configuration(
            F, lambda v: v.with_changes(timeout=9), expected_revision_id=revision
        )
        assert updated.revision_id not in (created.revision_id, "")
    else:
        with pytest.raises(outcome):
            await store.update_configuration(
                F, lambda v: v.with_changes(timeout=9), expected_revision_id=revision
            )


async def test_a_configuration_update_cannot_change_what_the_store_owns(store):
    created = await add_function(store)
    updated = await store.update_configuration(
        F,
        lambda v: v.with_changes(
            timeout=9, function_name="g", code_sha256=package("other").code_sha256
        ),
        expected_revision_id=None,
    )
    assert (updated.function_name, updated.code_sha256, updated.timeout) == (
        "f",
        created.code_sha256,
        9,
    )
    assert await store.get_version(F, LATEST) == updated


async def test_update_of_a_pending_function_is_a_conflict(store):
    await add_function(store, settle=False)
    with pytest.raises(errors.ResourceConflict, match="Pending"):
        await store.update_configuration(F, keep, expected_revision_id=None)


async def test_code_update_checks_the_expected_revision(store):
    await add_function(store)
    with pytest.raises(errors.PreconditionFailed):
        await begin_update(store, "x = 2\n", expected_revision_id="some-old-id")
    assert (await store.get_version(F, LATEST)).code_sha256 == package().code_sha256


async def test_update_while_one_is_in_progress_is_a_conflict(store):
    await add_function(store)
    await begin_update(store, "x = 2\n")
    with pytest.raises(errors.ResourceConflict, match="in progress"):
        await store.update_configuration(F, keep, expected_revision_id=None)
    with pytest.raises(errors.ResourceConflict, match="in progress"):
        await begin_update(store, "x = 3\n")


async def test_an_update_in_progress_reports_the_new_code_and_runs_the_old(store):
    old = await add_function(store)
    new, updated = await begin_update(store, "x = 2\n")
    assert updated.last_update_status is LastUpdateStatus.IN_PROGRESS
    assert (updated.code_sha256, updated.code_size) == (new.code_sha256, new.size)
    assert updated.serving_package == old.package
    assert updated.running_package == old.package
    assert updated.awaits_package


async def test_api_reads_and_the_catalog_agree_while_an_update_is_in_progress(store):
    await add_function(store)
    await begin_update(store, "x = 2\n")
    (serving,) = (await store.catalog()).versions.values()
    assert serving == await store.get_version(F, LATEST)


@pytest.mark.parametrize(
    ("error", "status", "runs_new"),
    [(None, LastUpdateStatus.SUCCESSFUL, True), ("broken zip", LastUpdateStatus.FAILED, False)],
)
async def test_finishing_a_code_update(store, error, status, runs_new):
    old = await add_function(store)
    new, _ = await begin_update(store, "x = 2\n")
    assert await store.finish_package(F, new.code_sha256, error=error)
    latest = await store.get_version(F, LATEST)
    assert latest.last_update_status is status
    assert latest.state is State.ACTIVE
    assert latest.last_update_status_reason == (error or "")
    assert latest.code_sha256 == new.code_sha256
    assert latest.serving_package == (None if runs_new else old.package)
    serving = (await store.catalog()).versions[LATEST_F]
    assert serving.running_package == (new if runs_new else old.package)


async def test_after_a_failed_update_the_next_one_keeps_running_the_last_good_package(store):
    good = await add_function(store)
    broken, _ = await begin_update(store, "x = 2\n")
    await store.finish_package(F, broken.code_sha256, error="broken zip")
    _, updated = await begin_update(store, "x = 3\n")
    assert updated.serving_package == good.package


async def test_a_superseded_package_settles_nothing(store):
    await add_function(store)
    broken, _ = await begin_update(store, "x = 2\n")
    await store.finish_package(F, broken.code_sha256, error="broken zip")
    newer, _ = await begin_update(store, "x = 3\n")
    assert not await store.finish_package(F, broken.code_sha256, error=None)
    assert (await store.get_version(F, LATEST)).last_update_status is LastUpdateStatus.IN_PROGRESS
    assert await store.finish_package(F, newer.code_sha256, error=None)
    assert (await store.get_version(F, LATEST)).running_package == newer


async def test_a_package_nobody_waits_for_settles_nothing(store):
    created = await add_function(store)
    seen = []
    store.subscribe(seen.append)
    assert not await store.finish_package(F, created.code_sha256, error=None)
    assert not await store.finish_package(key("missing"), created.code_sha256, error=None)
    assert seen == []


async def test_a_package_that_fails_leaves_a_new_function_failed(store):
    created = await add_function(store, settle=False)
    await store.finish_package(F, created.code_sha256, error="bad entry")
    failed = await store.get_version(F, LATEST)
    assert (failed.state, failed.state_reason) == (State.FAILED, "bad entry")
    assert (failed.last_update_status, failed.last_update_status_reason) == (
        LastUpdateStatus.FAILED,
        "bad entry",
    )


async def test_version_published_during_create_settles_with_latest(store):
    created = await add_function(store, publish=True, settle=False)
    assert (created.version, created.state) == ("1", State.PENDING)
    await store.finish_package(F, created.code_sha256, error=None)
    assert (await store.get_version(F, "1")).state is State.ACTIVE


async def test_version_published_with_a_code_update_waits_for_its_package(store):
    await add_function(store)
    await publish(store, F)
    new, published = await begin_update(store, "x = 2\n", publish=True)
    assert (published.version, published.state) == ("2", State.PENDING)
    assert published.code_sha256 == new.code_sha256
    assert published.serving_package is None
    await store.finish_package(F, new.code_sha256, error=None)
    assert (await store.get_version(F, "2")).state is State.ACTIVE


async def test_publishing_an_unchanged_code_update_returns_the_last_version(store):
    created = await add_function(store)
    first = await publish(store, F)
    _, returned = await begin_update(store, "x = 1\n", publish=True)
    assert returned == first
    assert created.code_sha256 == first.code_sha256


@pytest.mark.parametrize(
    "alias",
    [
        Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""),
        Alias(DEFAULT_NAMESPACE, "f", "canary", "2", "", additional_version_weights={"1": 0.1}),
    ],
)
async def test_a_version_an_alias_uses_cannot_be_deleted(store, alias):
    await add_function(store)
    for timeout in (5, 6):
        await publish(store, F)
        await store.update_configuration(
            F, lambda v, t=timeout: v.with_changes(timeout=t), expected_revision_id=None
        )
    await store.create_alias(alias)
    with pytest.raises(errors.ResourceConflict, match=alias.name):
        await store.delete_version(F, "1")


async def test_deleting_a_version_removes_its_provisioned_config(store):
    await add_function(store)
    await publish(store, F)
    await store.put_provisioned(F, "1", requested=1)
    await store.delete_version(F, "1")
    with pytest.raises(errors.ResourceNotFound):
        await store.get_version(F, "1")
    assert (await store.catalog()).provisioned == {}


async def test_deleting_an_alias_removes_its_provisioned_config(store):
    await add_function(store)
    await publish(store, F)
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""))
    await store.put_provisioned(F, "live", requested=1)
    await store.delete_alias(F, "live")
    assert (await store.catalog()).provisioned == {}


async def test_deleting_a_function_removes_everything_it_owns(store):
    await add_function(store)
    await publish(store, F)
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "live", "1", ""))
    await store.put_provisioned(F, "live", requested=1)
    await store.delete_function(F)
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
    await publish(store, F)
    assert seen == [1, 1, 2]  # created, settled, published


async def test_a_failed_write_reaches_no_subscriber(store):
    seen = []
    store.subscribe(seen.append)
    with pytest.raises(errors.ResourceNotFound):
        await store.update_configuration(key("missing"), keep, expected_revision_id=None)
    assert seen == []


async def test_unsubscribed_listener_hears_nothing_more(store):
    seen = []
    unsubscribe = store.subscribe(seen.append)
    unsubscribe()
    await add_function(store)
    assert seen == []


async def test_a_broken_listener_does_not_starve_the_others(store, caplog):
    seen = []

    def broken(catalog):
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(seen.append)
    await add_function(store, settle=False)
    assert len(seen) == 1
    assert "catalog listener failed" in caplog.text


async def test_a_repeated_provisioned_report_is_no_news(store):
    await add_function(store)
    await publish(store, F)
    await store.put_provisioned(F, "1", requested=2)
    seen = []
    store.subscribe(seen.append)
    for _ in range(3):
        await store.set_provisioned_status(F, "1", allocated=2, status=ProvisionedStatus.READY)
    assert len(seen) == 1
    assert seen[0].provisioned[(F, "1")].status is ProvisionedStatus.READY


async def test_a_report_on_a_deleted_config_is_ignored(store):
    await add_function(store)
    await store.set_provisioned_status(F, "9", allocated=1, status=ProvisionedStatus.READY)
    assert (await store.catalog()).provisioned == {}


@pytest.mark.parametrize(
    ("qualifier", "message"),
    [(LATEST, "unpublished"), ("latest-alias", "pointing to \\$LATEST")],
)
async def test_provisioned_concurrency_needs_a_published_version(store, qualifier, message):
    await add_function(store)
    await store.create_alias(Alias(DEFAULT_NAMESPACE, "f", "latest-alias", LATEST, ""))
    with pytest.raises(errors.InvalidParameterValue, match=message):
        await store.put_provisioned(F, qualifier, requested=1)
