"""The Kubernetes store against the real apiserver, beyond the port's contract
(tests/integration/store_contract): hand-written Functions applied with kubectl, inline
code imported by the controller's store, racing writers, and how fast the catalog
follows an edit made outside the API."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from kubelambda import errors
from kubelambda.kubernetes import connection
from kubelambda.kubernetes.store import KubernetesStore
from kubelambda.models import (
    LATEST,
    CodePackage,
    EnvironmentReference,
    FunctionKey,
    FunctionSettings,
    LastUpdateStatus,
    State,
    Target,
)
from kubelambda.store import LocalCodeStore
from tests import factories

REGION = "eu-central-1"


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def manifest(code: dict[str, object], **spec: object) -> str:
    return json.dumps(
        {
            "apiVersion": "kubelambda.io/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "hello"},
            "spec": {
                "functionName": "Hello_World",
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": code,
                **spec,
            },
        }
    )


async def eventually(what, probe, seconds=20.0):
    deadline = time.monotonic() + seconds
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return found


@pytest.fixture
async def gateway_store(crds, kubeconfig, namespace):
    async with (
        connection.connected(str(kubeconfig)) as api,
        KubernetesStore.open(api, region=REGION, namespaces=[namespace]) as store,
    ):
        yield store


@pytest.fixture
async def controller_store(crds, kubeconfig, namespace, tmp_path: Path):
    code_store = LocalCodeStore(tmp_path)
    async with (
        connection.connected(str(kubeconfig)) as api,
        KubernetesStore.open(
            api, region=REGION, namespaces=[namespace], code_store=code_store
        ) as store,
    ):
        yield store, code_store


async def test_a_function_applied_with_kubectl_is_in_the_catalog_with_its_code_imported(
    controller_store, gateway_store, kubectl, namespace
):
    store, code_store = controller_store
    data = zipped({"app.py": "def handler(event, context):\n    return event\n"})
    package = CodePackage(hashlib.sha256(data).hexdigest(), len(data))
    env = {
        "variables": {"COLOR": "red"},
        "valueFrom": [{"name": "TOKEN", "secretKeyRef": {"name": "creds", "key": "token"}}],
    }
    applied = kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=manifest({"zipBase64": base64.b64encode(data).decode()}, environment=env),
    )
    assert applied.returncode == 0, applied.stderr
    target = Target(namespace, "Hello_World", LATEST)

    async def listed():
        return (await store.catalog()).versions.get(target)

    latest = await eventually("the function in the catalog", listed)
    assert (latest.package, latest.state) == (package, State.PENDING)
    assert (latest.runtime, latest.handler, dict(latest.environment)) == (
        "python3.11",
        "app.handler",
        {"COLOR": "red"},
    )
    assert latest.environment_references == (
        EnvironmentReference("TOKEN", "secret", "creds", "token"),
    )
    # The controller's store imported the zip before its catalog showed the function.
    assert b"".join([chunk async for chunk in code_store.open(package.sha256_hex)]) == data
    assert await store.finish_package(latest.key, latest.code_sha256, error=None)

    async def settled():
        # Another process's store: it sees the controller's report once its watch does.
        found = await gateway_store.get_version(latest.key, LATEST)
        return found if found.state is State.ACTIVE else None

    settled_version = await eventually("the gateway's store to see it settled", settled)
    assert settled_version.last_update_status is LastUpdateStatus.SUCCESSFUL
    shown = json.loads(kubectl("get", "-n", namespace, "klfn", "hello", "-o", "json").stdout)
    assert shown["status"]["state"] == "Active"
    assert shown["status"]["conditions"][0]["type"] == "Ready"
    assert shown["status"]["conditions"][0]["status"] == "True"


async def test_inline_code_that_is_not_a_zip_fails_the_function(
    controller_store, kubectl, namespace
):
    store, _ = controller_store
    garbage = base64.b64encode(b"not a zip at all").decode()
    applied = kubectl("apply", "-n", namespace, "-f", "-", stdin=manifest({"zipBase64": garbage}))
    assert applied.returncode == 0, applied.stderr

    async def failed():
        found = (await store.catalog()).versions.get(Target(namespace, "Hello_World", LATEST))
        return found if found is not None and found.state is State.FAILED else None

    latest = await eventually("the function to fail", failed)
    assert "Could not unzip" in latest.state_reason
    shown = json.loads(kubectl("get", "-n", namespace, "klfn", "hello", "-o", "json").stdout)
    assert shown["status"]["state"] == "Failed"


async def test_of_two_writers_with_the_same_revision_one_wins(
    gateway_store, crds, kubeconfig, namespace
):
    key = FunctionKey(namespace, "f")
    latest = factories.function_version("f", LATEST, namespace=namespace, revision_id="")
    created = await gateway_store.create_function(
        latest, FunctionSettings(namespace, "f"), publish=False
    )
    await gateway_store.finish_package(key, created.code_sha256, error=None)
    revision = (await gateway_store.get_version(key, LATEST)).revision_id
    async with (
        connection.connected(str(kubeconfig)) as api,
        KubernetesStore.open(api, region=REGION, namespaces=[namespace]) as other,
    ):
        outcomes = await asyncio.gather(
            gateway_store.update_configuration(
                key, lambda v: v.with_changes(timeout=10), expected_revision_id=revision
            ),
            other.update_configuration(
                key, lambda v: v.with_changes(timeout=20), expected_revision_id=revision
            ),
            return_exceptions=True,
        )
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    (won,) = [o for o in outcomes if not isinstance(o, BaseException)]
    assert [type(f) for f in failed] == [errors.PreconditionFailed]
    assert (await gateway_store.get_version(key, LATEST)).timeout == won.timeout


async def test_the_catalog_follows_a_kubectl_edit_within_a_second(
    gateway_store, kubectl, namespace
):
    sha = "0" * 64
    applied = kubectl(
        "apply", "-n", namespace, "-f", "-", stdin=manifest({"sha256": sha, "size": 1})
    )
    assert applied.returncode == 0, applied.stderr
    target = Target(namespace, "Hello_World", LATEST)

    async def listed():
        return (await gateway_store.catalog()).versions.get(target)

    await eventually("the function", listed)
    changed = asyncio.get_running_loop().create_future()

    def heard(catalog):
        version = catalog.versions.get(target)
        if version is not None and version.memory_size == 512 and not changed.done():
            changed.set_result(time.monotonic())

    gateway_store.subscribe(heard)
    patched = kubectl(
        "patch",
        "-n",
        namespace,
        "klfn",
        "hello",
        "--type=merge",
        "-p",
        '{"spec":{"memorySize":512}}',
    )
    # kubectl has returned: the apiserver accepted the edit (the loop was blocked meanwhile).
    accepted = time.monotonic()
    assert patched.returncode == 0, patched.stderr
    heard_at = await asyncio.wait_for(changed, timeout=5)
    assert heard_at - accepted < 1.0


async def test_a_function_just_applied_is_found_before_the_watch_delivers_it(
    gateway_store, kubectl, namespace
):
    data = zipped({"app.py": "def handler(event, context):\n    return event\n"})
    body = json.loads(manifest({"zipBase64": base64.b64encode(data).decode()}))
    body["metadata"]["name"] = "quick"
    del body["spec"]["functionName"]
    # kubectl blocks this event loop: the informer cannot have seen the object when the
    # store is asked, so only the store's lookup on a miss can find it.
    applied = kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    assert applied.returncode == 0, applied.stderr
    function = FunctionKey(namespace, "quick")
    latest = await gateway_store.get_version(function, LATEST)
    assert latest.state is State.PENDING
    with pytest.raises(errors.ResourceNotFound):
        await gateway_store.get_version(FunctionKey(namespace, "never-applied"), LATEST)
