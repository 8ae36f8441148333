"""The mapping between custom resources and models: state, settings, configs, round trips."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from kubelambda.kubernetes import crds, resources
from kubelambda.models import (
    IDLE_TIMEOUT_TAG,
    INSTANCE_CONCURRENCY_TAG,
    LATEST,
    Alias,
    CodePackage,
    EnvironmentReference,
    EventInvokeConfig,
    LastUpdateStatus,
    ProvisionedStatus,
    State,
)
from kubelambda.runtimes import PROVIDED_RUNTIMES, PYTHON_RUNTIMES
from tests import factories

UID = "6f1c2a52-3c43-4b38-9c3c-5d0f6ad3a0a1"
OLD = CodePackage("a" * 64, 10)
NEW = CodePackage("b" * 64, 20)


def function(spec=None, status=None, **metadata):
    return {
        "metadata": {
            "name": "hello",
            "namespace": "team-a",
            "uid": UID,
            "generation": 1,
            "resourceVersion": "7",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            **metadata,
        },
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": resources.package_fields(NEW),
            **(spec or {}),
        },
        **({"status": status} if status is not None else {}),
    }


def settled(package, **fields):
    return {"settledPackage": resources.package_fields(package), **fields}


@pytest.mark.parametrize(
    ("status", "state", "update", "serving"),
    [
        (None, State.PENDING, LastUpdateStatus.IN_PROGRESS, None),
        (settled(NEW), State.ACTIVE, LastUpdateStatus.SUCCESSFUL, None),
        (settled(OLD), State.ACTIVE, LastUpdateStatus.IN_PROGRESS, OLD),
        (
            {"failedPackage": resources.package_fields(NEW), "lastUpdateStatusReason": "bad"},
            State.FAILED,
            LastUpdateStatus.FAILED,
            None,
        ),
        (
            settled(OLD, failedPackage=resources.package_fields(NEW), lastUpdateStatusReason="bad"),
            State.ACTIVE,
            LastUpdateStatus.FAILED,
            OLD,
        ),
        # A failure of an older package says nothing about the spec's.
        (
            settled(OLD, failedPackage=resources.package_fields(OLD)),
            State.ACTIVE,
            LastUpdateStatus.IN_PROGRESS,
            OLD,
        ),
    ],
)
def test_latest_state_comes_from_the_spec_package_against_the_status(
    status, state, update, serving
):
    latest = resources.latest_from_function(function(status=status), package=NEW)
    assert (latest.state, latest.last_update_status, latest.serving_package) == (
        state,
        update,
        serving,
    )
    assert latest.version == LATEST
    assert latest.package == NEW


def test_a_failed_new_function_reports_the_reason_twice():
    status = {
        "failedPackage": resources.package_fields(NEW),
        "stateReason": "bad zip",
        "lastUpdateStatusReason": "bad zip",
    }
    latest = resources.latest_from_function(function(status=status), package=NEW)
    assert (latest.state_reason, latest.last_update_status_reason) == ("bad zip", "bad zip")


@pytest.mark.parametrize(
    ("spec", "name"), [({}, "hello"), ({"functionName": "Hello_World"}, "Hello_World")]
)
def test_the_lambda_name_is_the_object_name_unless_the_spec_gives_one(spec, name):
    assert resources.function_key(function(spec)).name == name


def test_the_revision_moves_with_the_generation_only():
    first = resources.revision_id(function())
    assert resources.revision_id(function(resourceVersion="99")) == first
    assert resources.revision_id(function(generation=2)) != first
    assert resources.revision_id(function(uid=str(uuid.uuid4()))) != first


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({resources.LAST_MODIFIED: "2026-05-06T07:08:09.123+0000"}, "2026-05-06T07:08:09.123+0000"),
        ({}, "2026-01-02T03:04:05.000+0000"),
    ],
)
def test_last_modified(annotations, expected):
    assert resources.last_modified(function(annotations=annotations)) == expected


def test_an_inline_zip_is_named_by_its_digest():
    data = b"PK\x05\x06" + bytes(18)
    obj = function({"code": {"zipBase64": base64.b64encode(data).decode()}})
    assert resources.inline_zip(obj) == data
    assert resources.spec_package(obj) == CodePackage(hashlib.sha256(data).hexdigest(), len(data))


@pytest.mark.parametrize("separator", [" ", "\n", "\r\n"])
def test_inline_code_split_over_yaml_lines_is_one_zip(separator):
    data = bytes(range(256)) * 3
    encoded = base64.b64encode(data).decode()
    split = separator.join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    assert resources.inline_zip(function({"code": {"zipBase64": split}})) == data


def test_inline_code_that_is_not_base64_is_refused():
    obj = function({"code": {"zipBase64": "not base64!"}})
    with pytest.raises(ValueError, match="not base64"):
        resources.inline_zip(obj)
    assert resources.spec_package(obj).size == len("not base64!")


def test_environment_references_come_from_value_from():
    environment = {
        "variables": {"COLOR": "red"},
        "valueFrom": [
            {"name": "TOKEN", "secretKeyRef": {"name": "creds", "key": "token"}},
            {"name": "MODE", "configMapKeyRef": {"name": "settings", "key": "mode"}},
        ],
    }
    latest = resources.latest_from_function(function({"environment": environment}), package=NEW)
    assert dict(latest.environment) == {"COLOR": "red"}
    assert latest.environment_references == (
        EnvironmentReference("TOKEN", "secret", "creds", "token"),
        EnvironmentReference("MODE", "configMap", "settings", "mode"),
    )
    assert resources.version_fields(latest)["environment"] == environment


@pytest.mark.parametrize(
    ("spec", "tags"),
    [
        ({}, {}),
        ({"idleTimeoutSeconds": 300, "instanceConcurrency": 1}, {}),
        ({"idleTimeoutSeconds": 60, "tags": {"team": "a"}}, {IDLE_TIMEOUT_TAG: "60", "team": "a"}),
        ({"instanceConcurrency": 4}, {INSTANCE_CONCURRENCY_TAG: "4"}),
    ],
)
def test_settings_show_the_reserved_tags_when_not_default(spec, tags):
    assert dict(resources.settings_from_function(function(spec)).tags) == tags


@pytest.mark.parametrize(
    ("tags", "spec"),
    [
        ({"team": "a"}, {"tags": {"team": "a"}}),
        ({IDLE_TIMEOUT_TAG: "60"}, {"tags": {}, "idleTimeoutSeconds": 60}),
        ({INSTANCE_CONCURRENCY_TAG: "4.0"}, {"tags": {}, "instanceConcurrency": 4}),
    ],
)
def test_writing_tags_puts_the_reserved_ones_in_their_fields(tags, spec):
    written = {"idleTimeoutSeconds": 5}
    resources.write_settings(written, tags)
    assert written == spec


@pytest.mark.parametrize("value", ["0.5", "0"])
def test_a_reserved_tag_the_spec_cannot_hold_is_refused(value):
    with pytest.raises(ValueError, match="whole number"):
        resources.write_settings({}, {IDLE_TIMEOUT_TAG: value})


def test_provisioned_configs_join_the_spec_and_the_report():
    obj = function(
        {
            "provisionedConcurrency": [
                {"qualifier": "1", "count": 2, "lastModified": "t1"},
                {"qualifier": "live", "count": 3, "lastModified": "t2"},
            ]
        },
        {"provisionedConcurrency": [{"qualifier": "1", "allocated": 2, "status": "READY"}]},
    )
    first, second = resources.provisioned_from_function(obj)
    assert (first.requested, first.allocated, first.status, first.last_modified) == (
        2,
        2,
        ProvisionedStatus.READY,
        "t1",
    )
    assert (second.allocated, second.status) == (0, ProvisionedStatus.IN_PROGRESS)


def test_event_invoke_configs_round_trip():
    config = EventInvokeConfig(
        "team-a", "hello", "live", 1, 120, on_failure="arn", last_modified="t"
    )
    spec = {}
    resources.write_event_invoke_config(spec, config)
    resources.write_event_invoke_config(spec, config.with_changes(qualifier=LATEST))
    assert [e["qualifier"] for e in spec["eventInvokeConfigs"]] == [LATEST, "live"]
    assert resources.event_invoke_configs_from_function(function(spec))[1] == config


def test_aliases_round_trip():
    alias = Alias("team-a", "hello", "live", "2", "", "desc", {"1": 0.25})
    spec = {}
    resources.write_alias(spec, alias)
    obj = {"metadata": {**function()["metadata"], "name": "hello-live"}, "spec": spec}
    assert resources.alias_from_object(obj) == alias.with_changes(
        revision_id=resources.revision_id(obj)
    )


@pytest.mark.parametrize(
    ("status", "state", "update"),
    [
        (None, State.PENDING, LastUpdateStatus.IN_PROGRESS),
        ({"state": "Active"}, State.ACTIVE, LastUpdateStatus.SUCCESSFUL),
        ({"state": "Failed", "stateReason": "bad"}, State.FAILED, LastUpdateStatus.FAILED),
    ],
)
def test_a_published_version_takes_its_state_from_its_status(status, state, update):
    latest = factories.function_version("hello", LATEST, namespace="team-a")
    obj = {
        "metadata": {**function()["metadata"], "name": "hello-v3"},
        "spec": {
            **resources.version_fields(latest),
            "functionName": "hello",
            "version": "3",
            "code": resources.package_fields(latest.package),
        },
        **({"status": status} if status else {}),
    }
    version = resources.version_from_object(obj)
    assert (version.version, version.state, version.last_update_status) == ("3", state, update)
    assert version.runs_like(latest)


def test_the_crds_accept_exactly_the_supported_runtimes():
    (function_crd, version_crd, _) = crds.definitions()
    for definition in (function_crd, version_crd):
        schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        runtime = schema["properties"]["spec"]["properties"]["runtime"]
        assert runtime["enum"] == [*PYTHON_RUNTIMES, *PROVIDED_RUNTIMES]
