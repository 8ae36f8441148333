"""Namespaces at the API: a caller's keys are bound to a namespace, and every name it uses
(create, list, get, invoke, delete) is looked up there and nowhere else."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mgmt_gateway import RunningGateway, create, make_zip, running_gateway
from prometheus_client import parser

from kubelambda import credentials
from kubelambda.credentials import Principal

ALICE = dataclasses.replace(
    credentials.generate(), principal=Principal(name="alice", namespace="team-a")
)
BOB = dataclasses.replace(
    credentials.generate(), principal=Principal(name="bob", namespace="team-b")
)


def owner_zip(owner: str) -> bytes:
    return make_zip({"app.py": f"def handler(event, context):\n    return {owner!r}\n"})


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    with running_gateway(tmp_path, autoscale=True, more_keys=(ALICE, BOB)) as running:
        yield running


@pytest.fixture
def clients(gateway: RunningGateway) -> dict[str, object]:
    """Alice and Bob each created a function named ``f``, with code saying whose it is."""
    made = {}
    for keys in (ALICE, BOB):
        client = gateway.client(keys)
        create(client, "f", Code={"ZipFile": owner_zip(keys.principal.name)})
        made[keys.principal.name] = client
    return made


def invoke(client: object, name: str = "f") -> object:
    response = client.invoke(FunctionName=name, Payload=b"{}")  # type: ignore[attr-defined]
    return json.loads(response["Payload"].read())


def test_the_same_name_can_be_created_in_two_namespaces(clients):
    for client in clients.values():
        configuration = client.get_function_configuration(FunctionName="f")
        assert (configuration["State"], configuration["FunctionName"]) == ("Active", "f")
    shas = {
        c.get_function(FunctionName="f")["Configuration"]["CodeSha256"] for c in clients.values()
    }
    assert len(shas) == 2


def test_each_caller_lists_only_its_own_functions(gateway, clients):
    create(clients["alice"], "only-alice", wait=False)
    listed = {
        owner: [f["FunctionName"] for f in client.list_functions()["Functions"]]
        for owner, client in clients.items()
    }
    assert listed == {"alice": ["f", "only-alice"], "bob": ["f"]}
    assert gateway.client().list_functions()["Functions"] == []


def test_each_caller_invokes_its_own_function(clients):
    assert invoke(clients["alice"]) == "alice"
    assert invoke(clients["bob"]) == "bob"


def test_another_namespaces_function_is_not_found(gateway, clients):
    create(clients["alice"], "only-alice", wait=False)
    bob = clients["bob"]
    with pytest.raises(bob.exceptions.ResourceNotFoundException):
        bob.get_function(FunctionName="only-alice")
    with pytest.raises(bob.exceptions.ResourceNotFoundException):
        bob.invoke(FunctionName="only-alice", Payload=b"{}")
    admin = gateway.client()
    with pytest.raises(admin.exceptions.ResourceNotFoundException):
        admin.invoke(FunctionName="f", Payload=b"{}")


def test_deleting_in_one_namespace_leaves_the_other_untouched(clients):
    clients["alice"].delete_function(FunctionName="f")
    with pytest.raises(clients["alice"].exceptions.ResourceNotFoundException):
        clients["alice"].get_function(FunctionName="f")
    assert invoke(clients["bob"]) == "bob"


def test_invocations_are_counted_under_each_callers_namespace(gateway, clients):
    invoke(clients["alice"])
    invoke(clients["bob"])
    invoke(clients["bob"])
    exposed = httpx.get(f"{gateway.url}/metrics").text
    counts = {
        sample.labels["namespace"]: sample.value
        for family in parser.text_string_to_metric_families(exposed)
        for sample in family.samples
        if sample.name == "kubelambda_invocations_total"
        and sample.labels["outcome"] == "success"
        and sample.labels["function"] == "f"
    }
    assert counts == {"team-a": 1, "team-b": 2}
