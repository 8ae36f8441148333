"""TagResource, UntagResource and ListTags, and the kubelambda.io knobs they carry."""

from __future__ import annotations

import pytest
from mgmt_gateway import create, key

ARN = "arn:aws:lambda:us-east-1:000000000000:function:f"


def test_tag_then_list(gateway):
    client = gateway.client()
    create(client, Tags={"team": "a"})
    tagged = client.tag_resource(Resource=ARN, Tags={"env": "prod"})
    assert tagged["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert client.list_tags(Resource=ARN)["Tags"] == {"team": "a", "env": "prod"}


def test_untag_removes_only_the_given_keys(gateway):
    client = gateway.client()
    create(client, Tags={"team": "a", "env": "prod"})
    untagged = client.untag_resource(Resource=ARN, TagKeys=["env"])
    assert untagged["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert client.list_tags(Resource=ARN)["Tags"] == {"team": "a"}


def test_knob_tags_reach_the_function_settings(gateway):
    client = gateway.client()
    create(client)
    client.tag_resource(
        Resource=ARN,
        Tags={
            "kubelambda.io/idle-timeout-seconds": "2.5",
            "kubelambda.io/instance-concurrency": "4",
        },
    )
    settings = gateway.run(gateway.store.catalog).settings[key("f")]
    assert (settings.idle_timeout_seconds, settings.instance_concurrency) == (2.5, 4)


@pytest.mark.parametrize(
    "tags",
    [
        {"kubelambda.io/idle-timeout-seconds": "0"},
        {"kubelambda.io/idle-timeout-seconds": "soon"},
        {"kubelambda.io/instance-concurrency": "2.5"},
        {"kubelambda.io/instance-concurrency": "1001"},
        {"aws:reserved": "x"},
    ],
)
def test_invalid_tags_are_refused(gateway, tags):
    client = gateway.client()
    create(client)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.tag_resource(Resource=ARN, Tags=tags)


def test_tags_of_an_unknown_function_are_not_found(gateway):
    client = gateway.client()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_tags(Resource=ARN)


def test_tags_on_a_qualified_arn_are_refused(gateway):
    client = gateway.client()
    create(client)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.tag_resource(Resource=ARN + ":1", Tags={"a": "b"})
