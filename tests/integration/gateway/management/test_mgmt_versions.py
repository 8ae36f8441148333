"""PublishVersion, ListVersionsByFunction, qualified reads and deletes, via boto3."""

from __future__ import annotations

import pytest
from mgmt_gateway import create, make_zip


def wait_updated(client, name="f"):
    client.get_waiter("function_updated_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )


def test_publish_answers_201_with_version_1(gateway):
    client = gateway.client()
    create(client)
    published = client.publish_version(FunctionName="f", Description="first")
    assert published["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert published["Version"] == "1"
    assert published["Description"] == "first"
    assert published["FunctionArn"].endswith(":function:f:1")


def test_publish_without_changes_returns_the_last_version(gateway):
    client = gateway.client()
    create(client)
    first = client.publish_version(FunctionName="f")
    again = client.publish_version(FunctionName="f")
    assert again["Version"] == first["Version"] == "1"
    assert again["RevisionId"] == first["RevisionId"]


def test_publish_after_a_change_makes_the_next_version(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.update_function_configuration(FunctionName="f", MemorySize=256)
    assert client.publish_version(FunctionName="f")["Version"] == "2"


def test_published_version_is_frozen(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.update_function_configuration(FunctionName="f", MemorySize=1024)
    assert client.get_function_configuration(FunctionName="f", Qualifier="1")["MemorySize"] == 128


def test_create_with_publish_reports_version_1(gateway):
    client = gateway.client()
    created = create(client, Publish=True)
    assert created["Version"] == "1"
    client.get_waiter("function_active_v2").wait(
        FunctionName="f:1", WaiterConfig={"Delay": 0.05, "MaxAttempts": 100}
    )
    assert (
        client.get_function(FunctionName="f", Qualifier="1")["Configuration"]["State"] == "Active"
    )


def test_update_code_with_publish_makes_a_version_of_the_new_code(gateway):
    client = gateway.client()
    create(client)
    package = make_zip({"app.py": "def handler(e, c):\n    return 3\n"})
    updated = client.update_function_code(FunctionName="f", ZipFile=package, Publish=True)
    assert updated["Version"] == "1"
    wait_updated(client)
    version = client.get_function_configuration(FunctionName="f", Qualifier="1")
    assert (version["State"], version["CodeSha256"]) == ("Active", updated["CodeSha256"])


def test_publish_with_a_different_code_sha_is_refused(gateway):
    client = gateway.client()
    create(client)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.publish_version(FunctionName="f", CodeSha256="AAAA")


def test_publish_with_a_stale_revision_fails_the_precondition(gateway):
    client = gateway.client()
    created = create(client)
    client.update_function_configuration(FunctionName="f", Timeout=9)
    with pytest.raises(client.exceptions.PreconditionFailedException):
        client.publish_version(FunctionName="f", RevisionId=created["RevisionId"])


def test_list_versions_starts_with_latest_and_pages(gateway):
    client = gateway.client()
    create(client)
    for memory in (256, 512):
        client.publish_version(FunctionName="f")
        client.update_function_configuration(FunctionName="f", MemorySize=memory)
    client.publish_version(FunctionName="f")
    first = client.list_versions_by_function(FunctionName="f", MaxItems=2)
    rest = client.list_versions_by_function(FunctionName="f", Marker=first["NextMarker"])
    versions = [v["Version"] for v in first["Versions"] + rest["Versions"]]
    assert versions == ["$LATEST", "1", "2", "3"]
    assert first["Versions"][0]["FunctionArn"].endswith(":function:f:$LATEST")
    assert "NextMarker" not in rest


def test_list_functions_all_includes_published_versions(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    listed = client.list_functions(FunctionVersion="ALL")["Functions"]
    assert [f["Version"] for f in listed] == ["$LATEST", "1"]


def test_get_function_with_an_arn_qualifier_encoded_in_the_path(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    arn = "arn:aws:lambda:us-east-1:000000000000:function:f:1"
    configuration = client.get_function_configuration(FunctionName=arn)
    assert (configuration["Version"], configuration["FunctionArn"]) == ("1", arn)


def test_unknown_version_is_not_found_with_its_qualified_arn(gateway):
    client = gateway.client()
    create(client)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.get_function(FunctionName="f", Qualifier="7")
    assert excinfo.value.response["Error"]["Message"].endswith(":function:f:7")


def test_delete_with_qualifier_removes_only_that_version(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    assert (
        client.delete_function(FunctionName="f", Qualifier="1")["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 204
    )
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_function(FunctionName="f", Qualifier="1")
    assert client.get_function(FunctionName="f")["Configuration"]["Version"] == "$LATEST"


def test_version_numbers_are_not_reused_after_a_delete(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.delete_function(FunctionName="f", Qualifier="1")
    client.update_function_configuration(FunctionName="f", Timeout=8)
    assert client.publish_version(FunctionName="f")["Version"] == "2"


def test_delete_of_latest_alone_is_refused(gateway):
    client = gateway.client()
    create(client)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.delete_function(FunctionName="f", Qualifier="$LATEST")


def test_delete_of_a_version_an_alias_points_to_is_a_conflict(gateway):
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    with pytest.raises(client.exceptions.ResourceConflictException) as excinfo:
        client.delete_function(FunctionName="f", Qualifier="1")
    assert "[live]" in excinfo.value.response["Error"]["Message"]
