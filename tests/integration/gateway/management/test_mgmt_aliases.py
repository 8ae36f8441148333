"""Create/Get/Update/Delete/ListAliases and their routing configuration, via boto3."""

from __future__ import annotations

import botocore.exceptions
import pytest
from mgmt_gateway import create, key


@pytest.fixture
def client(gateway):
    """A function with published versions 1 and 2."""
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.update_function_configuration(FunctionName="f", MemorySize=256)
    client.publish_version(FunctionName="f")
    return client


def test_create_alias_answers_201_with_its_configuration(client):
    created = client.create_alias(
        FunctionName="f",
        Name="live",
        FunctionVersion="1",
        Description="prod",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"] == "arn:aws:lambda:us-east-1:000000000000:function:f:live"
    assert (created["Name"], created["FunctionVersion"], created["Description"]) == (
        "live",
        "1",
        "prod",
    )
    assert created["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    assert created["RevisionId"]


def test_get_alias_returns_what_was_created(client):
    created = client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    got = client.get_alias(FunctionName="f", Name="live")
    assert got["RevisionId"] == created["RevisionId"]
    assert got["FunctionVersion"] == "1"


def test_alias_may_point_at_latest(client):
    created = client.create_alias(FunctionName="f", Name="dev", FunctionVersion="$LATEST")
    assert created["FunctionVersion"] == "$LATEST"


def test_update_alias_moves_it_and_sets_a_canary(client):
    client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    updated = client.update_alias(
        FunctionName="f",
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"1": 0.25}},
    )
    assert updated["FunctionVersion"] == "2"
    assert updated["RoutingConfig"] == {"AdditionalVersionWeights": {"1": 0.25}}


def test_update_alias_with_empty_routing_clears_the_canary(client):
    client.create_alias(
        FunctionName="f",
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}},
    )
    updated = client.update_alias(
        FunctionName="f", Name="live", RoutingConfig={"AdditionalVersionWeights": {}}
    )
    assert "RoutingConfig" not in updated


def test_update_alias_with_a_stale_revision_fails_the_precondition(client):
    created = client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    client.update_alias(FunctionName="f", Name="live", Description="x")
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.update_alias(
            FunctionName="f", Name="live", Description="y", RevisionId=created["RevisionId"]
        )


def test_alias_reaches_the_catalog_with_its_weights(gateway, client):
    client.create_alias(
        FunctionName="f",
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.3}},
    )
    alias = gateway.run(gateway.store.catalog).aliases[(key("f"), "live")]
    assert (alias.function_version, dict(alias.additional_version_weights)) == ("1", {"2": 0.3})


def test_list_aliases_pages_and_filters_by_version(client):
    for name, version in (("a", "1"), ("b", "2"), ("c", "1")):
        client.create_alias(FunctionName="f", Name=name, FunctionVersion=version)
    first = client.list_aliases(FunctionName="f", MaxItems=2)
    rest = client.list_aliases(FunctionName="f", Marker=first["NextMarker"])
    assert [a["Name"] for a in first["Aliases"] + rest["Aliases"]] == ["a", "b", "c"]
    only_1 = client.list_aliases(FunctionName="f", FunctionVersion="1")["Aliases"]
    assert [a["Name"] for a in only_1] == ["a", "c"]


def test_delete_alias_answers_204(client):
    client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    deleted = client.delete_alias(FunctionName="f", Name="live")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_alias(FunctionName="f", Name="live")


def test_duplicate_alias_is_a_conflict(client):
    client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceConflictException):
        client.create_alias(FunctionName="f", Name="live", FunctionVersion="2")


def test_alias_to_a_missing_version_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.create_alias(FunctionName="f", Name="live", FunctionVersion="9")


@pytest.mark.parametrize(
    ("primary", "weights", "name"),
    [
        ("1", {"2": 0.5, "3": 0.1}, "live"),  # more than one extra version
        ("1", {"2": 1.5}, "live"),  # weight above 1
        ("1", {"$LATEST": 0.5}, "live"),  # $LATEST as the extra version
        ("$LATEST", {"2": 0.5}, "live"),  # $LATEST as the primary of a split
        ("1", {"1": 0.5}, "live"),  # the primary again
        ("1", {}, "123"),  # an all-digit alias name
    ],
)
def test_invalid_alias_is_refused(client, primary, weights, name):
    with pytest.raises(botocore.exceptions.ClientError) as excinfo:
        client.create_alias(
            FunctionName="f",
            Name=name,
            FunctionVersion=primary,
            RoutingConfig={"AdditionalVersionWeights": weights},
        )
    response = excinfo.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"]["Code"] == "InvalidParameterValueException"
