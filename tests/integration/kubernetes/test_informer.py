"""The informer against the real apiserver: it lists, then follows creates, updates and
deletes; it resumes after the apiserver ends a watch; it lists again after a 410.

The 410 is a real one: a custom resource's definition is deleted and created again, so
the apiserver's history of that resource restarts after the version the informer last
saw, and its next watch is answered "too old resource version" (Expired).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import pytest

from kubelambda.kubernetes import rest
from kubelambda.kubernetes.informer import Informer, Resource

CONFIGMAPS = Resource("", "v1", "configmaps")


async def eventually(what: str, probe: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def configmap(name: str, value: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"value": value}}


def values(informer: Informer) -> dict[str, str]:
    """Our configmaps' values (the namespace also holds kube-root-ca.crt)."""
    return {
        name: obj["data"]["value"]
        for (_, name), obj in informer.objects().items()
        if "value" in obj.get("data", {})
    }


async def test_it_lists_then_follows_creates_updates_and_deletes(api, namespace):
    path = rest.resource_path("", "v1", "configmaps", namespace=namespace)
    await rest.request(api, "POST", path, body=configmap("before", "1"))
    informer = Informer(api, CONFIGMAPS, namespace=namespace, label_selector="team=a")
    notified = []
    informer.subscribe(lambda: notified.append(dict(values(informer))))
    await informer.start()
    try:
        assert values(informer) == {}  # the label selector leaves "before" out
        await rest.request(api, "POST", path, body=configmap("one", "1", {"team": "a"}))
        await rest.request(api, "POST", path, body=configmap("other", "1", {"team": "b"}))
        await eventually("the create", lambda: values(informer) == {"one": "1"})
        await rest.request(
            api,
            "PATCH",
            f"{path}/one",
            body={"data": {"value": "2"}},
            content_type="application/merge-patch+json",
        )
        await eventually("the update", lambda: values(informer) == {"one": "2"})
        await rest.request(api, "DELETE", f"{path}/one")
        await eventually("the delete", lambda: values(informer) == {})
        assert notified == [{}, {"one": "1"}, {"one": "2"}, {}]
    finally:
        await informer.aclose()


async def test_it_resumes_after_the_apiserver_ends_a_watch(api, namespace, caplog):
    caplog.set_level(logging.INFO, "kubelambda.kubernetes.informer")
    path = rest.resource_path("", "v1", "configmaps", namespace=namespace)
    informer = Informer(api, CONFIGMAPS, namespace=namespace, watch_seconds=1)
    await informer.start()
    try:
        await asyncio.sleep(2.5)  # at least two watches ended by the apiserver
        await rest.request(api, "POST", path, body=configmap("late", "1"))
        await eventually("the create", lambda: "late" in values(informer))
    finally:
        await informer.aclose()
    assert "watch_expired" not in caplog.text
    assert "watch_failed" not in caplog.text


@pytest.fixture
async def widgets(api):
    """A throwaway namespaced custom resource: (resource, definition manifest)."""
    group = f"w{uuid.uuid4().hex[:8]}.test.kubelambda.io"
    definition = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    await _define(api, definition)
    yield Resource(group, "v1", "widgets"), definition
    await _undefine(api, definition)


async def test_it_lists_again_when_its_resource_version_expired(api, namespace, widgets, caplog):
    caplog.set_level(logging.INFO, "kubelambda.kubernetes.informer")
    resource, definition = widgets
    path = rest.resource_path(
        resource.group, resource.version, resource.plural, namespace=namespace
    )
    informer = Informer(api, resource, namespace=namespace)
    await informer.start()
    try:
        await rest.request(api, "POST", path, body=_widget(resource, "first"))
        await eventually("the first widget", lambda: _names(informer) == {"first"})
        await _undefine(api, definition)
        await _define(api, definition)
        await rest.request(api, "POST", path, body=_widget(resource, "second"))
        await eventually("the second widget only", lambda: _names(informer) == {"second"})
    finally:
        await informer.aclose()
    assert "event=watch_expired resource=widgets" in caplog.text


def _widget(resource: Resource, name: str) -> dict[str, object]:
    return {
        "apiVersion": f"{resource.group}/{resource.version}",
        "kind": "Widget",
        "metadata": {"name": name},
    }


def _names(informer: Informer) -> set[str]:
    return {name for _, name in informer.objects()}


async def _define(api, definition) -> None:
    collection = rest.resource_path("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    await rest.request(api, "POST", collection, body=definition)
    path = f"{collection}/{definition['metadata']['name']}"

    async def established() -> bool:
        status = (await rest.request(api, "GET", path)).get("status", {})
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in status.get("conditions") or []
        )

    for _ in range(200):
        if await established():
            # Established means served; give the resource's REST handler a moment to be
            # installed in the apiserver before the first create.
            for _ in range(100):
                try:
                    await rest.request(
                        api,
                        "GET",
                        rest.resource_path(
                            definition["spec"]["group"], "v1", definition["spec"]["names"]["plural"]
                        ),
                    )
                    return
                except rest.ApiError:
                    await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)
    raise AssertionError("the definition never became Established")


async def _undefine(api, definition) -> None:
    path = rest.resource_path(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        name=definition["metadata"]["name"],
    )
    try:
        await rest.request(api, "DELETE", path)
    except rest.ApiError as exc:
        if exc.status != 404:
            raise
        return
    for _ in range(300):
        try:
            await rest.request(api, "GET", path)
        except rest.ApiError as exc:
            if exc.status == 404:
                return
            raise
        await asyncio.sleep(0.1)
    raise AssertionError("the definition was never deleted")
