"""The CustomResourceDefinitions on the real apiserver: they install, a good Function
applies with kubectl, and kubectl's apply of a bad one is refused naming the field."""

from __future__ import annotations

import base64
import copy
import io
import json
import zipfile

import pytest

from kubelambda.kubernetes import crds as crd_install
from kubelambda.kubernetes import rest

SHA = "0" * 64


def function(name: str = "hello", **spec: object) -> dict[str, object]:
    return {
        "apiVersion": "kubelambda.io/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"sha256": SHA, "size": 10},
            **spec,
        },
    }


def inline_zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return event\n")
    return base64.b64encode(buffer.getvalue()).decode()


def function_version(spec_change: dict[str, object] | None = None) -> dict[str, object]:
    return {
        "apiVersion": "kubelambda.io/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": "hello-v1"},
        "spec": {
            "functionName": "hello",
            "version": "1",
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"sha256": SHA, "size": 10},
            **(spec_change or {}),
        },
    }


def alias(weights: dict[str, float]) -> dict[str, object]:
    return {
        "apiVersion": "kubelambda.io/v1alpha1",
        "kind": "Alias",
        "metadata": {"name": "hello-live"},
        "spec": {
            "functionName": "hello",
            "name": "live",
            "functionVersion": "1",
            "additionalVersionWeights": weights,
        },
    }


def apply(kubectl, namespace, manifest):
    return kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))


async def test_the_definitions_are_established(crds, api):
    # Installing again replaces them in place: what an upgrade does.
    await crd_install.install_crds(api)
    for manifest in crd_install.definitions():
        path = rest.resource_path(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            name=manifest["metadata"]["name"],
        )
        installed = await rest.request(api, "GET", path)
        conditions = {c["type"]: c["status"] for c in installed["status"]["conditions"]}
        assert conditions["Established"] == "True"


def test_a_good_function_applies_with_defaults(crds, kubectl, namespace):
    applied = apply(kubectl, namespace, function(code={"zipBase64": inline_zip()}))
    assert applied.returncode == 0, applied.stderr
    got = json.loads(kubectl("get", "-n", namespace, "klfn", "hello", "-o", "json").stdout)
    assert {k: got["spec"][k] for k in ("memorySize", "timeout", "instanceConcurrency")} == {
        "memorySize": 128,
        "timeout": 3,
        "instanceConcurrency": 1,
    }
    table = kubectl("get", "-n", namespace, "functions").stdout
    assert table.split()[:5] == ["NAME", "RUNTIME", "STATE", "VERSIONS", "AGE"]


@pytest.mark.parametrize(
    ("manifest", "field"),
    [
        (function(memorySize=64), "spec.memorySize"),
        (function(timeout=0), "spec.timeout"),
        (function(code={"sha256": SHA, "size": 1, "zipBase64": "UEsFBg=="}), "spec.code"),
        (function(code={"sha256": SHA}), "spec.code"),
        (function(runtime="cobol"), "spec.runtime"),
        (function("dotted.name"), "metadata.name"),
        (
            function(environment={"valueFrom": [{"name": "KEY"}]}),
            "spec.environment.valueFrom[0]",
        ),
        (alias({"2": 0.1, "3": 0.2}), "spec.additionalVersionWeights"),
        (alias({"2": 1.5}), "spec.additionalVersionWeights.2"),
    ],
)
def test_a_bad_resource_is_refused_naming_the_field(crds, kubectl, namespace, manifest, field):
    applied = apply(kubectl, namespace, manifest)
    assert applied.returncode != 0
    assert field in applied.stderr, applied.stderr


def test_a_function_version_is_immutable(crds, kubectl, namespace):
    assert apply(kubectl, namespace, function_version()).returncode == 0
    changed = apply(kubectl, namespace, function_version({"timeout": 30}))
    assert changed.returncode != 0
    assert "a FunctionVersion is immutable; publish a new version" in changed.stderr
    assert "spec" in changed.stderr


def test_an_unchanged_function_version_applies_again(crds, kubectl, namespace):
    manifest = function_version()
    assert apply(kubectl, namespace, manifest).returncode == 0
    assert apply(kubectl, namespace, copy.deepcopy(manifest)).returncode == 0
