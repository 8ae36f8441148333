"""Install kubelambda's CustomResourceDefinitions: Function, FunctionVersion, Alias.

The definitions are the YAML files in ``crds/`` (package data, also shipped by the Helm
chart). The Kubernetes launcher and the integration tests call ``install_crds`` at
start: each definition is created, or replaced when it exists (so an upgrade brings the
new schema), and the call returns once the apiserver reports every one Established.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import time
from typing import Any

import yaml
from kubernetes_asyncio import client

from kubelambda.kubernetes import rest

__all__ = ["CRD_FILES", "definitions", "install_crds"]

log = logging.getLogger(__name__)

CRD_FILES = ("functions.yaml", "functionversions.yaml", "aliases.yaml")
_GROUP, _VERSION, _PLURAL = "apiextensions.k8s.io", "v1", "customresourcedefinitions"


def definitions() -> list[dict[str, Any]]:
    """The CustomResourceDefinition manifests, as dicts."""
    folder = importlib.resources.files("kubelambda.kubernetes") / "crds"
    return [yaml.safe_load((folder / name).read_text()) for name in CRD_FILES]


async def install_crds(api: client.ApiClient, *, wait_seconds: float = 60.0) -> None:
    """Create or replace every definition, then wait until all are Established."""
    for manifest in definitions():
        await _apply(api, manifest)
    deadline = time.monotonic() + wait_seconds
    for manifest in definitions():
        await _established(api, manifest["metadata"]["name"], deadline=deadline)


async def _apply(api: client.ApiClient, manifest: dict[str, Any]) -> None:
    name = manifest["metadata"]["name"]
    collection = rest.resource_path(_GROUP, _VERSION, _PLURAL)
    try:
        await rest.request(api, "POST", collection, body=manifest)
        log.info("custom resource definition created name=%s", name)
        return
    except rest.ApiError as exc:
        if exc.status != 409:
            raise
    # It exists: replace it under its current resourceVersion, retrying a lost race.
    path = rest.resource_path(_GROUP, _VERSION, _PLURAL, name=name)
    while True:
        current = await rest.request(api, "GET", path)
        metadata = {
            **manifest["metadata"],
            "resourceVersion": current["metadata"]["resourceVersion"],
        }
        try:
            await rest.request(api, "PUT", path, body={**manifest, "metadata": metadata})
        except rest.ApiError as exc:
            if exc.status == 409:
                continue
            raise
        log.info("custom resource definition replaced name=%s", name)
        return


async def _established(api: client.ApiClient, name: str, *, deadline: float) -> None:
    path = rest.resource_path(_GROUP, _VERSION, _PLURAL, name=name)
    while True:
        current = await rest.request(api, "GET", path)
        conditions = (current.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"custom resource definition {name} is not Established")
        await asyncio.sleep(0.2)
