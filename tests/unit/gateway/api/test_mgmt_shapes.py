"""Response shapes: FunctionConfiguration members, ARN qualification, state reasons."""

from __future__ import annotations

import pytest

from gateway.api import shapes
from kubelambda.models import (
    Alias,
    EventInvokeConfig,
    LastUpdateStatus,
    ProvisionedConcurrency,
    ProvisionedStatus,
    State,
)
from tests import factories

VERSION = factories.function_version(
    "f",
    "$LATEST",
    role="arn:aws:iam::123456789012:role/r",
    code_sha256="abc=",
    code_size=10,
    last_modified="2026-01-02T03:04:05.678+0000",
)


@pytest.mark.parametrize(
    ("qualifier", "arn"),
    [
        (None, "arn:aws:lambda:eu-west-1:000000000000:function:f"),
        ("3", "arn:aws:lambda:eu-west-1:000000000000:function:f:3"),
        ("live", "arn:aws:lambda:eu-west-1:000000000000:function:f:live"),
    ],
)
def test_function_arn_carries_the_qualifier_and_region(qualifier, arn):
    shape = shapes.function_configuration(VERSION, region="eu-west-1", arn_qualifier=qualifier)
    assert shape["FunctionArn"] == arn


def test_environment_is_omitted_when_empty_and_shown_when_set():
    assert "Environment" not in shapes.function_configuration(VERSION, region="us-east-1")
    with_env = VERSION.with_changes(environment={"A1": "b"})
    shape = shapes.function_configuration(with_env, region="us-east-1")
    assert shape["Environment"] == {"Variables": {"A1": "b"}}


@pytest.mark.parametrize(
    ("state", "update", "reasons"),
    [
        (State.ACTIVE, LastUpdateStatus.SUCCESSFUL, {}),
        (
            State.PENDING,
            LastUpdateStatus.IN_PROGRESS,
            {"StateReasonCode": "Creating", "LastUpdateStatusReasonCode": "Creating"},
        ),
        (State.ACTIVE, LastUpdateStatus.IN_PROGRESS, {"LastUpdateStatusReasonCode": "Creating"}),
        (
            State.FAILED,
            LastUpdateStatus.FAILED,
            {
                "StateReasonCode": "InvalidZipFileException",
                "LastUpdateStatusReasonCode": "InvalidZipFileException",
            },
        ),
    ],
)
def test_state_reason_codes(state, update, reasons):
    version = VERSION.with_changes(state=state, last_update_status=update)
    shape = shapes.function_configuration(version, region="us-east-1")
    codes = {k: v for k, v in shape.items() if k.endswith("ReasonCode")}
    assert codes == reasons


def test_alias_shows_routing_only_when_split():
    plain = Alias("default", "f", "live", "1", "rev")
    split = plain.with_changes(additional_version_weights={"2": 0.1})
    assert "RoutingConfig" not in shapes.alias_configuration(plain, region="us-east-1")
    assert shapes.alias_configuration(split, region="us-east-1")["RoutingConfig"] == {
        "AdditionalVersionWeights": {"2": 0.1}
    }


def test_provisioned_list_item_names_the_qualified_arn():
    config = ProvisionedConcurrency("default", "f", "live", 3, 3, ProvisionedStatus.READY, "", "t")
    item = shapes.provisioned_config(config, region="us-east-1")
    assert item["FunctionArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f:live"
    assert (item["Status"], item["AvailableProvisionedConcurrentExecutions"]) == ("READY", 3)
    assert "FunctionArn" not in shapes.provisioned_config(config)


@pytest.mark.parametrize(
    ("namespace", "target", "shown"),
    [
        ("default", None, "arn:aws:kafka:eu-west-1:000000000000:topic/kubelambda-dlq.f"),
        ("team-a", None, "arn:aws:kafka:eu-west-1:000000000000:topic/kubelambda-dlq.team-a.f"),
        (
            "default",
            "arn:aws:kafka:eu-west-1:000000000000:topic/mine",
            "arn:aws:kafka:eu-west-1:000000000000:topic/mine",
        ),
    ],
)
def test_dead_letter_config_names_the_default_topic_unless_set(namespace, target, shown):
    version = VERSION.with_changes(namespace=namespace, dead_letter_target_arn=target)
    shape = shapes.function_configuration(version, region="eu-west-1")
    assert shape["DeadLetterConfig"] == {"TargetArn": shown}


def test_dead_letter_config_is_omitted_when_turned_off():
    version = VERSION.with_changes(dead_letter_target_arn="")
    assert "DeadLetterConfig" not in shapes.function_configuration(version, region="us-east-1")


def test_event_invoke_config_shape():
    config = EventInvokeConfig(
        "default",
        "f",
        "$LATEST",
        maximum_retry_attempts=1,
        maximum_event_age_seconds=60,
        on_failure="arn:aws:kafka:us-east-1:000000000000:topic/t",
        last_modified="2026-01-02T03:04:05.678+0000",
    )
    assert shapes.event_invoke_config(config, region="us-east-1") == {
        "FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:f:$LATEST",
        "MaximumRetryAttempts": 1,
        "MaximumEventAgeInSeconds": 60,
        "DestinationConfig": {
            "OnSuccess": {},
            "OnFailure": {"Destination": "arn:aws:kafka:us-east-1:000000000000:topic/t"},
        },
        # A timestamp member: epoch seconds, as rest-json sends it.
        "LastModified": 1767323045.678,
    }
