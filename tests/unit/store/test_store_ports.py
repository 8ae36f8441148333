"""The store adapters offer every method of the ports they implement, as declared."""

from __future__ import annotations

import inspect

import pytest

from kubelambda.kubernetes.store import KubernetesStore
from kubelambda.ports.catalog import CatalogSource
from kubelambda.ports.code import CodeStore
from kubelambda.ports.control import ControllerStore
from kubelambda.ports.management import ManagementStore
from kubelambda.ports.queue import Queue, TopicLog
from kubelambda.store import LocalCodeStore, SqliteQueue, SqliteStore


def port_methods(port: type) -> dict[str, object]:
    methods: dict[str, object] = {}
    for base in reversed(port.__mro__):
        if base in (CatalogSource, ControllerStore, ManagementStore, CodeStore, Queue, TopicLog):
            methods.update(
                (name, value)
                for name, value in vars(base).items()
                if inspect.isfunction(value) and not name.startswith("_")
            )
    return methods


def shape(function) -> tuple[list[tuple[str, object]], bool]:
    parameters = inspect.signature(function).parameters.values()
    return [(p.name, p.kind) for p in parameters], inspect.iscoroutinefunction(function)


@pytest.mark.parametrize(
    ("adapter", "port"),
    [
        (SqliteStore, ManagementStore),
        (SqliteStore, ControllerStore),
        (KubernetesStore, ManagementStore),
        (KubernetesStore, ControllerStore),
        (LocalCodeStore, CodeStore),
        (SqliteQueue, Queue),
        (SqliteQueue, TopicLog),
    ],
)
def test_adapter_matches_the_port(adapter, port):
    methods = port_methods(port)
    assert methods
    for name, declared in methods.items():
        assert shape(getattr(adapter, name)) == shape(declared), name
