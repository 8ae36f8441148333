"""Reserved concurrency and provisioned-concurrency configs, via boto3."""

from __future__ import annotations

import pytest
from mgmt_gateway import create, key

from kubelambda.models import ProvisionedStatus


@pytest.fixture
def client(gateway):
    """A function with version 1 and an alias ``live`` on it."""
    client = gateway.client()
    create(client)
    client.publish_version(FunctionName="f")
    client.create_alias(FunctionName="f", Name="live", FunctionVersion="1")
    return client


def test_put_then_get_reserved_concurrency(client):
    put = client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=7)
    assert put["ReservedConcurrentExecutions"] == 7
    assert client.get_function_concurrency(FunctionName="f")["ReservedConcurrentExecutions"] == 7


def test_reserved_concurrency_reaches_the_catalog(gateway, client):
    client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=0)
    assert gateway.run(gateway.store.catalog).settings[key("f")].reserved_concurrency == 0


def test_delete_reserved_concurrency_answers_204_and_unsets_it(client):
    client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=7)
    deleted = client.delete_function_concurrency(FunctionName="f")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(FunctionName="f")


def test_reserved_concurrency_above_the_limit_is_refused(client):
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_function_concurrency(FunctionName="f", ReservedConcurrentExecutions=1001)


def test_put_provisioned_answers_202_in_progress(client):
    put = client.put_provisioned_concurrency_config(
        FunctionName="f", Qualifier="live", ProvisionedConcurrentExecutions=2
    )
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert put["Status"] == "IN_PROGRESS"
    assert put["RequestedProvisionedConcurrentExecutions"] == 2
    assert put["AllocatedProvisionedConcurrentExecutions"] == 0


def test_provisioned_becomes_ready_when_the_controller_reports_it(gateway, client):
    client.put_provisioned_concurrency_config(
        FunctionName="f", Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    gateway.run(
        lambda: gateway.store.set_provisioned_status(
            key("f"), "1", allocated=2, status=ProvisionedStatus.READY
        )
    )
    got = client.get_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
    assert (got["Status"], got["AllocatedProvisionedConcurrentExecutions"]) == ("READY", 2)


def test_failed_provisioning_reports_the_reason(gateway, client):
    client.put_provisioned_concurrency_config(
        FunctionName="f", Qualifier="1", ProvisionedConcurrentExecutions=2
    )
    gateway.run(
        lambda: gateway.store.set_provisioned_status(
            key("f"), "1", allocated=0, status=ProvisionedStatus.FAILED, reason="no capacity"
        )
    )
    got = client.get_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
    assert (got["Status"], got["StatusReason"]) == ("FAILED", "no capacity")


def test_list_provisioned_configs_names_each_qualified_arn(client):
    for qualifier in ("1", "live"):
        client.put_provisioned_concurrency_config(
            FunctionName="f", Qualifier=qualifier, ProvisionedConcurrentExecutions=1
        )
    listed = client.list_provisioned_concurrency_configs(FunctionName="f")
    arns = [c["FunctionArn"] for c in listed["ProvisionedConcurrencyConfigs"]]
    assert [arn.rsplit(":", 1)[1] for arn in arns] == ["1", "live"]


def test_delete_provisioned_answers_204_and_then_it_is_not_found(client):
    client.put_provisioned_concurrency_config(
        FunctionName="f", Qualifier="1", ProvisionedConcurrentExecutions=1
    )
    deleted = client.delete_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(client.exceptions.ProvisionedConcurrencyConfigNotFoundException) as info:
        client.get_provisioned_concurrency_config(FunctionName="f", Qualifier="1")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_provisioned_on_latest_is_refused(client):
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_provisioned_concurrency_config(
            FunctionName="f", Qualifier="$LATEST", ProvisionedConcurrentExecutions=1
        )


def test_provisioned_on_an_unknown_alias_is_not_found(client):
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.put_provisioned_concurrency_config(
            FunctionName="f", Qualifier="nope", ProvisionedConcurrentExecutions=1
        )


def test_provisioned_config_reaches_the_catalog(gateway, client):
    client.put_provisioned_concurrency_config(
        FunctionName="f", Qualifier="live", ProvisionedConcurrentExecutions=3
    )
    config = gateway.run(gateway.store.catalog).provisioned[(key("f"), "live")]
    assert (config.requested, config.status) == (3, ProvisionedStatus.IN_PROGRESS)


def test_provisioned_on_an_alias_of_latest_is_refused(client):
    client.create_alias(FunctionName="f", Name="dev", FunctionVersion="$LATEST")
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.put_provisioned_concurrency_config(
            FunctionName="f", Qualifier="dev", ProvisionedConcurrentExecutions=1
        )
