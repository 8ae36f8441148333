"""Event invoke configs (Put/Update/Get/Delete/List) via boto3 and the AWS CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from mgmt_gateway import REGION, create, key

from kubelambda.models import LATEST

ARN = f"arn:aws:lambda:{REGION}:000000000000:function"
ON_FAILURE = f"{ARN}:on-fail"
TOPIC = f"arn:aws:kafka:{REGION}:000000000000:topic/outcomes"
NO_DESTINATIONS = {"OnSuccess": {}, "OnFailure": {}}


@pytest.fixture
def client(gateway):
    """A function with version 1 and an alias ``live`` on it."""
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    return client


def members(config):
    return {k: v for k, v in config.items() if k not in ("ResponseMetadata", "LastModified")}


def test_put_then_get_round_trips(client):
    put = client.put_function_event_invoke_config(
        FunctionName="f",
        MaximumRetryAttempts=1,
        MaximumEventAgeInSeconds=300,
        DestinationConfig={
            "OnSuccess": {"Destination": TOPIC},
            "OnFailure": {"Destination": ON_FAILURE},
        },
    )
    expected = {
        "FunctionArn": f"{ARN}:f:$LATEST",
        "MaximumRetryAttempts": 1,
        "MaximumEventAgeInSeconds": 300,
        "DestinationConfig": {
            "OnSuccess": {"Destination": TOPIC},
            "OnFailure": {"Destination": ON_FAILURE},
        },
    }
    assert members(put) == expected
    assert members(client.get_function_event_invoke_config(FunctionName="f")) == expected


def test_last_modified_reaches_boto3_as_a_timestamp(client):
    put = client.put_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=0)
    assert isinstance(put["LastModified"], datetime)
    assert put["LastModified"].tzinfo is not None


def test_members_not_put_take_lambdas_defaults(client):
    put = client.put_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=0)
    assert (put["MaximumEventAgeInSeconds"], put["DestinationConfig"]) == (21600, NO_DESTINATIONS)


def test_put_replaces_the_whole_config(client):
    client.put_function_event_invoke_config(
        FunctionName="f",
        MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": ON_FAILURE}},
    )
    client.put_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=1)
    got = client.get_function_event_invoke_config(FunctionName="f")
    assert (got["MaximumRetryAttempts"], got["MaximumEventAgeInSeconds"]) == (1, 21600)
    assert got["DestinationConfig"] == NO_DESTINATIONS


def test_update_changes_only_the_members_given(client):
    client.put_function_event_invoke_config(
        FunctionName="f",
        MaximumRetryAttempts=2,
        MaximumEventAgeInSeconds=60,
        DestinationConfig={"OnFailure": {"Destination": ON_FAILURE}},
    )
    updated = client.update_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=0)
    assert (updated["MaximumRetryAttempts"], updated["MaximumEventAgeInSeconds"]) == (0, 60)
    assert updated["DestinationConfig"] == {
        "OnSuccess": {},
        "OnFailure": {"Destination": ON_FAILURE},
    }


def test_update_replaces_the_destination_config_as_one_member(client):
    client.put_function_event_invoke_config(
        FunctionName="f", DestinationConfig={"OnFailure": {"Destination": ON_FAILURE}}
    )
    updated = client.update_function_event_invoke_config(
        FunctionName="f", DestinationConfig={"OnSuccess": {"Destination": TOPIC}}
    )
    assert updated["DestinationConfig"] == {"OnSuccess": {"Destination": TOPIC}, "OnFailure": {}}


def test_update_with_none_set_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.update_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=0)


@pytest.mark.parametrize(
    ("function_name", "qualifier", "arn"),
    [
        ("f", "1", f"{ARN}:f:1"),
        ("f", "live", f"{ARN}:f:live"),
        ("f:live", None, f"{ARN}:f:live"),
        (f"{ARN}:f:1", None, f"{ARN}:f:1"),
        ("f", "$LATEST", f"{ARN}:f:$LATEST"),
    ],
)
def test_a_config_belongs_to_the_qualifier_named(client, function_name, qualifier, arn):
    params = {"FunctionName": function_name} | ({"Qualifier": qualifier} if qualifier else {})
    put = client.put_function_event_invoke_config(**params, MaximumRetryAttempts=1)
    assert put["FunctionArn"] == arn
    assert client.get_function_event_invoke_config(**params)["FunctionArn"] == arn
    listed = client.list_function_event_invoke_configs(FunctionName="f")
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [arn]


@pytest.mark.parametrize("qualifier", ["7", "nope"])
def test_a_put_on_a_qualifier_that_does_not_exist_is_not_found(client, qualifier):
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.put_function_event_invoke_config(
            FunctionName="f", Qualifier=qualifier, MaximumRetryAttempts=1
        )
    assert info.value.response["Error"]["Message"] == f"Function not found: {ARN}:f:{qualifier}"


def test_a_get_with_none_set_is_not_found_as_aws_words_it(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException) as info:
        client.get_function_event_invoke_config(FunctionName="f", Qualifier="live")
    response = info.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert (
        response["Error"]["Message"]
        == f"The function {ARN}:f:live doesn't have an EventInvokeConfig"
    )


def test_delete_answers_204_and_then_the_config_is_gone(client):
    client.put_function_event_invoke_config(FunctionName="f", MaximumRetryAttempts=1)
    deleted = client.delete_function_event_invoke_config(FunctionName="f")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function_event_invoke_config(FunctionName="f")


def test_a_delete_with_none_set_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_function_event_invoke_config(FunctionName="f")


def test_the_list_pages_with_marker_and_max_items(client):
    for qualifier in ("live", "$LATEST", "1"):
        client.put_function_event_invoke_config(
            FunctionName="f", Qualifier=qualifier, MaximumRetryAttempts=1
        )
    first = client.list_function_event_invoke_configs(FunctionName="f", MaxItems=2)
    rest = client.list_function_event_invoke_configs(
        FunctionName="f", MaxItems=2, Marker=first["NextMarker"]
    )
    assert "NextMarker" not in rest
    arns = [c["FunctionArn"] for c in first["FunctionEventInvokeConfigs"]]
    arns += [c["FunctionArn"] for c in rest["FunctionEventInvokeConfigs"]]
    assert arns == [f"{ARN}:f:$LATEST", f"{ARN}:f:1", f"{ARN}:f:live"]


def test_the_list_of_a_function_that_does_not_exist_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_function_event_invoke_configs(FunctionName="nope")


@pytest.mark.parametrize(
    "values",
    [
        {"MaximumRetryAttempts": 3},
        {"MaximumRetryAttempts": -1},
        {"MaximumEventAgeInSeconds": 59},
        {"MaximumEventAgeInSeconds": 21601},
    ],
)
def test_values_out_of_range_are_refused(gateway, client, values):
    # botocore would refuse the values below the minimum before sending them.
    unchecked = boto3.client(
        "lambda",
        endpoint_url=gateway.url,
        region_name=REGION,
        aws_access_key_id=gateway.keys.access_key_id,
        aws_secret_access_key=gateway.keys.secret_access_key,
        config=Config(retries={"max_attempts": 0}, parameter_validation=False),
    )
    with pytest.raises(unchecked.exceptions.InvalidParameterValueException) as info:
        unchecked.put_function_event_invoke_config(FunctionName="f", **values)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert next(iter(values)) in info.value.response["Error"]["Message"]


@pytest.mark.parametrize(
    "destination",
    ["on-fail", "arn:aws:sqs:us-east-1:000000000000:queue", f"{ARN}:f"],
)
def test_a_destination_that_is_not_another_function_or_a_topic_is_refused(client, destination):
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_event_invoke_config(
            FunctionName="f", DestinationConfig={"OnFailure": {"Destination": destination}}
        )


def test_the_refusal_of_a_destination_says_what_is_accepted(client):
    with pytest.raises(client.exceptions.InvalidParameterValueException) as info:
        client.put_function_event_invoke_config(
            FunctionName="f", DestinationConfig={"OnSuccess": {"Destination": "on-fail"}}
        )
    message = info.value.response["Error"]["Message"]
    assert "function ARN" in message and "topic ARN" in message


def test_a_put_that_sets_nothing_is_refused(client):
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_event_invoke_config(FunctionName="f")


def test_deleting_the_alias_deletes_its_config(client):
    client.put_function_event_invoke_config(
        FunctionName="f", Qualifier="live", MaximumRetryAttempts=1
    )
    client.delete_alias(FunctionName="f", Name="live")
    listed = client.list_function_event_invoke_configs(FunctionName="f")
    assert listed["FunctionEventInvokeConfigs"] == []


def test_a_config_reaches_the_catalog(gateway, client):
    client.put_function_event_invoke_config(
        FunctionName="f",
        Qualifier="live",
        MaximumRetryAttempts=0,
        DestinationConfig={"OnFailure": {"Destination": ON_FAILURE}},
    )
    config = gateway.run(gateway.store.catalog).event_invoke_configs[(key("f"), "live")]
    assert (config.maximum_retry_attempts, config.on_failure) == (0, ON_FAILURE)


def test_the_aws_cli_puts_a_config(gateway, client, tmp_path: Path):
    aws = str(Path(sys.executable).with_name("aws"))
    destination = json.dumps({"OnFailure": {"Destination": ON_FAILURE}})
    result = subprocess.run(
        [
            aws,
            "lambda",
            "put-function-event-invoke-config",
            "--endpoint-url",
            gateway.url,
            "--function-name",
            "f",
            "--maximum-retry-attempts",
            "1",
            "--destination-config",
            destination,
        ],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "AWS_CONFIG_FILE": str(tmp_path / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "credentials"),
            "AWS_ACCESS_KEY_ID": gateway.keys.access_key_id,
            "AWS_SECRET_ACCESS_KEY": gateway.keys.secret_access_key,
            "AWS_DEFAULT_REGION": REGION,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["FunctionArn"] == f"{ARN}:f:{LATEST}"
    got = client.get_function_event_invoke_config(FunctionName="f")
    assert got["MaximumRetryAttempts"] == 1
    assert got["DestinationConfig"]["OnFailure"] == {"Destination": ON_FAILURE}
