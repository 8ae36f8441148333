"""DeadLetterConfig on Create/UpdateFunctionConfiguration and in every configuration
shape, via boto3."""

from __future__ import annotations

import pytest
from mgmt_gateway import REGION, create

DEFAULT_TOPIC = f"arn:aws:kafka:{REGION}:000000000000:topic/kubelambda-dlq.f"
TOPIC = f"arn:aws:kafka:{REGION}:000000000000:topic/my-dead-letters"


@pytest.fixture
def client(gateway):
    return gateway.client()


def test_every_configuration_shape_names_the_default_topic(client):
    created = create(client)
    assert created["DeadLetterConfig"] == {"TargetArn": DEFAULT_TOPIC}
    shown = {"TargetArn": DEFAULT_TOPIC}
    assert client.get_function_configuration(FunctionName="f")["DeadLetterConfig"] == shown
    assert client.get_function(FunctionName="f")["Configuration"]["DeadLetterConfig"] == shown
    (listed,) = client.list_functions()["Functions"]
    assert listed["DeadLetterConfig"] == shown


def test_create_takes_a_topic_arn(client):
    created = create(client, DeadLetterConfig={"TargetArn": TOPIC})
    assert created["DeadLetterConfig"] == {"TargetArn": TOPIC}
    assert client.get_function_configuration(FunctionName="f")["DeadLetterConfig"] == {
        "TargetArn": TOPIC
    }


def test_an_empty_target_turns_dead_letters_off(client):
    create(client)
    updated = client.update_function_configuration(
        FunctionName="f", DeadLetterConfig={"TargetArn": ""}
    )
    assert "DeadLetterConfig" not in updated
    assert "DeadLetterConfig" not in client.get_function_configuration(FunctionName="f")


def test_update_sets_a_topic_arn(client):
    create(client)
    updated = client.update_function_configuration(
        FunctionName="f", DeadLetterConfig={"TargetArn": TOPIC}
    )
    assert updated["DeadLetterConfig"] == {"TargetArn": TOPIC}


def test_an_update_without_dead_letter_config_keeps_it(client):
    create(client, DeadLetterConfig={"TargetArn": TOPIC})
    updated = client.update_function_configuration(FunctionName="f", Timeout=9)
    assert updated["DeadLetterConfig"] == {"TargetArn": TOPIC}


@pytest.mark.parametrize(
    "target",
    [
        "arn:aws:sqs:us-east-1:000000000000:dead",
        "arn:aws:lambda:us-east-1:000000000000:function:f",
        "kubelambda-dlq.f",
    ],
)
def test_create_refuses_a_target_that_is_not_a_topic_arn(client, target):
    with pytest.raises(client.exceptions.InvalidParameterValueException) as info:
        create(client, wait=False, DeadLetterConfig={"TargetArn": target})
    assert "topic ARN" in info.value.response["Error"]["Message"]


def test_update_refuses_a_target_that_is_not_a_topic_arn(client):
    create(client)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.update_function_configuration(
            FunctionName="f", DeadLetterConfig={"TargetArn": "arn:aws:sns:us-east-1:1:t"}
        )


def test_a_published_version_keeps_its_target(client):
    create(client, DeadLetterConfig={"TargetArn": TOPIC})
    client.publish_version(FunctionName="f")
    client.update_function_configuration(FunctionName="f", DeadLetterConfig={"TargetArn": ""})
    version = client.get_function_configuration(FunctionName="f", Qualifier="1")
    assert version["DeadLetterConfig"] == {"TargetArn": TOPIC}
