"""Helpers of the chart's static tests: the values files, rendering with the real helm, and
finding objects in the rendered manifests. Fixtures built on them are in conftest.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests import chart_files

__all__ = [
    "COMPONENTS",
    "DEFAULT_VALUES",
    "FULL_VALUES",
    "RELEASE",
    "Helm",
    "Manifest",
    "container",
    "environment",
    "named",
    "of_kind",
    "render",
]

FULL_VALUES = Path(__file__).parent / "values-full.yaml"
# The one value the chart cannot default: where Kafka is.
DEFAULT_VALUES = ("--set", "kafka.bootstrapServers=kafka.example:9092")
RELEASE = "kl"
COMPONENTS = ("gateway", "controller", "dispatcher")

Helm = Callable[..., subprocess.CompletedProcess[str]]
Manifest = dict[str, Any]


def render(helm: Helm, *values: str, namespace: str = "kubelambda") -> list[Manifest]:
    """`helm template` of the chart: its manifests, CRDs excluded."""
    done = helm("template", RELEASE, str(chart_files.CHART), "-n", namespace, *values)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


def container(deployment: Manifest) -> dict[str, Any]:
    """The one container of a platform Deployment."""
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def environment(deployment: Manifest) -> dict[str, Any]:
    """A platform container's variables: name -> value, or the valueFrom mapping."""
    return {
        variable["name"]: variable.get("value", variable.get("valueFrom"))
        for variable in container(deployment)["env"]
    }
