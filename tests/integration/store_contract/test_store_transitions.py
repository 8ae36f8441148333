"""Store transitions: publishing, revision checks, update conflicts, package settling."""

from __future__ import annotations

import pytest

from kubelambda import errors
from kubelambda.models import (
    LATEST,
    Alias,
    FunctionKey,
    LastUpdateStatus,
    ProvisionedStatus,
    State,
    Target,
)
from tests.store_testkit import STAMP, add_function, package, publish


def keep(version):
    return version


async def begin_update(store, f, content, *, publish=False, expected_revision_id=None):
    new = package(content)
    updated = await store.begin_code_update(
        f, new, expected_revision_id=expected_revision_id, publish=publish
    )
    return new, updated


async def test_created_function_is_pending_and_stamped(store, f):
    created = await add_function(store, f, settle=False)
    assert (created.state, created.last_update_status) == (
        State.PENDING,
        LastUpdateStatus.IN_PROGRESS,
    )
    assert created.last_modified == STAMP
    assert created.revision_id
    assert created.serving_package is None


async def test_settling_a_new_function_makes_it_active(store, f):
    created = await add_function(store, f, settle=False)
    assert await store.finish_package(f, created.code_sha256, error=None)
    settled = await store.get_version(f, LATEST)
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
async def test_publish_makes_a_version_only_when_code_or_config_changed(
    store, f, change, new_version
):
    await add_function(store, f)
    first = await publish(store, f)
    await store.update_configuration(f, change, expected_revision_id=None)
    second = await publish(store, f)
    assert (second.version != first.version) is new_version


async def test_publish_freezes_a_copy_with_its_own_revision(store, f):
    latest = await add_function(store, f)
    published = await store.publish_version(
        f, description="v1", expected_revision_id=None, code_sha256=None
    )
    assert (published.version, published.description) == ("1", "v1")
    assert published.revision_id != latest.revision_id
    assert published.code_sha256 == latest.code_sha256


async def test_publish_refuses_a_code_sha256_that_is_not_latest(store, f):
    await add_function(store, f)
    with pytest.raises(errors.InvalidParameterValue, match="CodeSHA256"):
        await store.publish_version(
            f,
            description=None,
            expected_revision_id=None,
            code_sha256=package("other").code_sha256,
        )


@pytest.mark.parametrize(
    ("expected", "outcome"),
    [("current", None), (None, None), ("stale", errors.PreconditionFailed)],
)
async def test_update_checks_the_expected_revision(store, f, expected, outcome):
    created = await add_function(store, f)
    revision = {"current": created.revision_id, None: None, "stale": "some-old-id"}[expected]
    if outcome is None:
        updated = await store.update_configuration(
            f, lambda v: v.with_changes(timeout=9), expected_revision_id=revision
        )
        assert updated.revision_id not in (created.revision_id, "")
    else:
        with pytest.raises(outcome):
            await store.update_configuration(
                f, lambda v: v.with_changes(timeout=9), expected_revision_id=revision
            )


async def test_a_configuration_update_cannot_change_what_the_store_owns(store, f):
    created = await add_function(store, f)
    updated = await store.update_configuration(
        f,
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
    assert await store.get_version(f, LATEST) == updated


async def test_update_of_a_pending_function_is_a_conflict(store, f):
    await add_function(store, f, settle=False)
    with pytest.raises(errors.ResourceConflict, match="Pending"):
        await store.update_configuration(f, keep, expected_revision_id=None)


async def test_code_update_checks_the_expected_revision(store, f):
    await add_function(store, f)
    with pytest.raises(errors.PreconditionFailed):
        await begin_update(store, f, "x = 2\n", expected_revision_id="some-old-id")
    assert (await store.get_version(f, LATEST)).code_sha256 == package().code_sha256


async def test_update_while_one_is_in_progress_is_a_conflict(store, f):
    await add_function(store, f)
    await begin_update(store, f, "x = 2\n")
    with pytest.raises(errors.ResourceConflict, match="in progress"):
        await store.update_configuration(f, keep, expected_revision_id=None)
    with pytest.raises(errors.ResourceConflict, match="in progress"):
        await begin_update(store, f, "x = 3\n")


async def test_an_update_in_progress_reports_the_new_code_and_runs_the_old(store, f):
    old = await add_function(store, f)
    new, updated = await begin_update(store, f, "x = 2\n")
    assert updated.last_update_status is LastUpdateStatus.IN_PROGRESS
    assert (updated.code_sha256, updated.code_size) == (new.code_sha256, new.size)
    assert updated.serving_package == old.package
    assert updated.running_package == old.package
    assert updated.awaits_package


async def test_api_reads_and_the_catalog_agree_while_an_update_is_in_progress(store, f):
    await add_function(store, f)
    await begin_update(store, f, "x = 2\n")
    (serving,) = (await store.catalog()).versions.values()
    assert serving == await store.get_version(f, LATEST)


@pytest.mark.parametrize(
    ("error", "status", "runs_new"),
    [(None, LastUpdateStatus.SUCCESSFUL, True), ("broken zip", LastUpdateStatus.FAILED, False)],
)
async def test_finishing_a_code_update(store, f, error, status, runs_new):
    old = await add_function(store, f)
    new, _ = await begin_update(store, f, "x = 2\n")
    assert await store.finish_package(f, new.code_sha256, error=error)
    latest = await store.get_version(f, LATEST)
    assert latest.last_update_status is status
    assert latest.state is State.ACTIVE
    assert latest.last_update_status_reason == (error or "")
    assert latest.code_sha256 == new.code_sha256
    assert latest.serving_package == (None if runs_new else old.package)
    serving = (await store.catalog()).versions[Target(f.namespace, "f", LATEST)]
    assert serving.running_package == (new if runs_new else old.package)


async def test_after_a_failed_update_the_next_one_keeps_running_the_last_good_package(store, f):
    good = await add_function(store, f)
    broken, _ = await begin_update(store, f, "x = 2\n")
    await store.finish_package(f, broken.code_sha256, error="broken zip")
    _, updated = await begin_update(store, f, "x = 3\n")
    assert updated.serving_package == good.package


async def test_a_superseded_package_settles_nothing(store, f):
    await add_function(store, f)
    broken, _ = await begin_update(store, f, "x = 2\n")
    await store.finish_package(f, broken.code_sha256, error="broken zip")
    newer, _ = await begin_update(store, f, "x = 3\n")
    assert not await store.finish_package(f, broken.code_sha256, error=None)
    assert (await store.get_version(f, LATEST)).last_update_status is LastUpdateStatus.IN_PROGRESS
    assert await store.finish_package(f, newer.code_sha256, error=None)
    assert (await store.get_version(f, LATEST)).running_package == newer


async def test_a_package_nobody_waits_for_settles_nothing(store, f):
    created = await add_function(store, f)
    seen = []
    store.subscribe(seen.append)
    assert not await store.finish_package(f, created.code_sha256, error=None)
    assert not await store.finish_package(
        FunctionKey(f.namespace, "missing"), created.code_sha256, error=None
    )
    assert seen == []


async def test_a_package_that_fails_leaves_a_new_function_failed(store, f):
    created = await add_function(store, f, settle=False)
    await store.finish_package(f, created.code_sha256, error="bad entry")
    failed = await store.get_version(f, LATEST)
    assert (failed.state, failed.state_reason) == (State.FAILED, "bad entry")
    assert (failed.last_update_status, failed.last_update_status_reason) == (
        LastUpdateStatus.FAILED,
        "bad entry",
    )


async def test_version_published_during_create_settles_with_latest(store, f):
    created = await add_function(store, f, publish=True, settle=False)
    assert (created.version, created.state) == ("1", State.PENDING)
    await store.finish_package(f, created.code_sha256, error=None)
    assert (await store.get_version(f, "1")).state is State.ACTIVE


async def test_version_published_with_a_code_update_waits_for_its_package(store, f):
    await add_function(store, f)
    await publish(store, f)
    new, published = await begin_update(store, f, "x = 2\n", publish=True)
    assert (published.version, published.state) == ("2", State.PENDING)
    assert published.code_sha256 == new.code_sha256
    assert published.serving_package is None
    await store.finish_package(f, new.code_sha256, error=None)
    assert (await store.get_version(f, "2")).state is State.ACTIVE


async def test_publishing_an_unchanged_code_update_returns_the_last_version(store, f):
    created = await add_function(store, f)
    first = await publish(store, f)
    _, returned = await begin_update(store, f, "x = 1\n", publish=True)
    assert returned == first
    assert created.code_sha256 == first.code_sha256


@pytest.mark.parametrize(
    ("name", "version", "weights"),
    [("live", "1", {}), ("canary", "2", {"1": 0.1})],
)
async def test_a_version_an_alias_uses_cannot_be_deleted(store, f, name, version, weights):
    await add_function(store, f)
    for timeout in (5, 6):
        await publish(store, f)
        await store.update_configuration(
            f, lambda v, t=timeout: v.with_changes(timeout=t), expected_revision_id=None
        )
    await store.create_alias(
        Alias(f.namespace, "f", name, version, "", additional_version_weights=weights)
    )
    with pytest.raises(errors.ResourceConflict, match=name):
        await store.delete_version(f, "1")


async def test_deleting_a_version_removes_its_provisioned_config(store, f):
    await add_function(store, f)
    await publish(store, f)
    await store.put_provisioned(f, "1", requested=1)
    await store.delete_version(f, "1")
    with pytest.raises(errors.ResourceNotFound):
        await store.get_version(f, "1")
    assert (await store.catalog()).provisioned == {}


async def test_deleting_an_alias_removes_its_provisioned_config(store, f):
    await add_function(store, f)
    await publish(store, f)
    await store.create_alias(Alias(f.namespace, "f", "live", "1", ""))
    await store.put_provisioned(f, "live", requested=1)
    await store.delete_alias(f, "live")
    assert (await store.catalog()).provisioned == {}


async def test_deleting_a_function_removes_everything_it_owns(store, f):
    await add_function(store, f)
    await publish(store, f)
    await store.create_alias(Alias(f.namespace, "f", "live", "1", ""))
    await store.put_provisioned(f, "live", requested=1)
    await store.delete_function(f)
    catalog = await store.catalog()
    assert (catalog.versions, catalog.aliases, catalog.settings, catalog.provisioned) == (
        {},
        {},
        {},
        {},
    )


async def test_every_committed_change_reaches_subscribers(store, f):
    seen = []
    store.subscribe(lambda catalog: seen.append(catalog))
    await add_function(store, f, settle=False)
    assert seen[-1].versions[Target(f.namespace, "f", LATEST)].state is State.PENDING
    await store.finish_package(f, package().code_sha256, error=None)
    assert seen[-1].versions[Target(f.namespace, "f", LATEST)].state is State.ACTIVE
    await publish(store, f)
    assert len(seen[-1].versions) == 2


async def test_a_failed_write_reaches_no_subscriber(store, f):
    seen = []
    store.subscribe(seen.append)
    with pytest.raises(errors.ResourceNotFound):
        await store.update_configuration(
            FunctionKey(f.namespace, "missing"), keep, expected_revision_id=None
        )
    assert seen == []


async def test_unsubscribed_listener_hears_nothing_more(store, f):
    seen = []
    unsubscribe = store.subscribe(seen.append)
    unsubscribe()
    await add_function(store, f)
    assert seen == []


async def test_a_broken_listener_does_not_starve_the_others(store, f, caplog):
    seen = []

    def broken(catalog):
        raise RuntimeError("listener bug")

    store.subscribe(broken)
    store.subscribe(seen.append)
    await add_function(store, f, settle=False)
    assert len(seen) == 1
    assert "catalog listener failed" in caplog.text


async def test_a_repeated_provisioned_report_is_no_news(store, f):
    await add_function(store, f)
    await publish(store, f)
    await store.put_provisioned(f, "1", requested=2)
    seen = []
    store.subscribe(seen.append)
    for _ in range(3):
        await store.set_provisioned_status(f, "1", allocated=2, status=ProvisionedStatus.READY)
    assert len(seen) == 1
    assert seen[0].provisioned[(f, "1")].status is ProvisionedStatus.READY


async def test_a_report_on_a_deleted_config_is_ignored(store, f):
    await add_function(store, f)
    await store.set_provisioned_status(f, "9", allocated=1, status=ProvisionedStatus.READY)
    assert (await store.catalog()).provisioned == {}


@pytest.mark.parametrize(
    ("qualifier", "message"),
    [(LATEST, "unpublished"), ("latest-alias", "pointing to \\$LATEST")],
)
async def test_provisioned_concurrency_needs_a_published_version(store, f, qualifier, message):
    await add_function(store, f)
    await store.create_alias(Alias(f.namespace, "f", "latest-alias", LATEST, ""))
    with pytest.raises(errors.InvalidParameterValue, match=message):
        await store.put_provisioned(f, qualifier, requested=1)
