"""The platform image in a real pod, locked down as the Helm chart runs the gateway, the
controller and the dispatcher.

One pod on the test node, from the image this checkout makes (``platform_image``), under the
restricted security context: non-root (the image's own user, 10002), read-only root
filesystem, no capabilities, RuntimeDefault seccomp, and an emptyDir at
``/var/lib/kubelambda`` as the chart's writable volume. One container runs the image's
entry point (``kubelambda --help``: the console script is on PATH and its interpreter is
the image's python3); the other imports the modules the three processes are made of and
reports, as JSON in its log, who it runs as, where it may write and whether byte code was
compiled into the image.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

TIMEOUT = 90.0
HOME = "/var/lib/kubelambda"
POD = "platform"
# The processes' composition roots and the clients they hold; then what the pod allows.
CHECK = """\
import importlib.util, json, os, pathlib, pwd
import kubelambda.launch.cli, gateway.app, controller.autoscaler.loop
import kubelambda.kubernetes.store, aiokafka, kubernetes_asyncio

modules = [kubelambda.launch.cli, gateway.app, controller.autoscaler.loop,
           kubelambda.kubernetes.store, aiokafka, kubernetes_asyncio]
home = pathlib.Path(os.environ["KUBELAMBDA_HOME"])
(home / "written").write_text("ok")
try:
    open(os.path.join(os.path.dirname(kubelambda.__file__), "written"), "w").close()
    root = "writable"
except OSError:
    root = "read-only"
print(json.dumps({
    "user": pwd.getpwuid(os.getuid()).pw_name,
    "uid": os.getuid(),
    "home": os.environ["HOME"],
    "kubelambda_home": str(home),
    "written": (home / "written").read_text(),
    "root": root,
    "precompiled": all(os.path.exists(importlib.util.cache_from_source(m.__file__))
                       for m in modules),
}))
"""


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def api(kubeconfig: pathlib.Path) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A namespace for the pod, deleted with everything in it."""
    name = f"platimg-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def locked_down(name: str, image: str, **command: list[str]) -> dict[str, Any]:
    """A container of ``image`` as the chart runs one, with ``command`` and/or ``args``."""
    return {
        "name": name,
        "image": image,
        # Nothing can be pulled here: kubelambda_testbed loads the image into containerd.
        "imagePullPolicy": "Never",
        **command,
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "home", "mountPath": HOME}],
    }


def finished_phase(core: client.CoreV1Api, namespace: str) -> str | None:
    phase: str = core.read_namespaced_pod(POD, namespace).status.phase
    return phase if phase in ("Succeeded", "Failed") else None


def test_platform_image_runs_locked_down_as_its_own_user(
    api: client.ApiClient, namespace: str, platform_image: str
) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": POD},
            "spec": {
                "restartPolicy": "Never",
                # No runAsUser: the image's USER must satisfy runAsNonRoot on its own.
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    locked_down("help", platform_image, args=["--help"]),
                    locked_down("imports", platform_image, command=["python3", "-c", CHECK]),
                ],
                "volumes": [{"name": "home", "emptyDir": {}}],
            },
        },
    )
    deadline = time.monotonic() + TIMEOUT
    while (phase := finished_phase(core, namespace)) is None:
        assert time.monotonic() < deadline, f"the pod did not finish within {TIMEOUT:.0f}s"
        time.sleep(0.5)

    help_log = kubectl("logs", "-n", namespace, POD, "-c", "help")
    imports_log = kubectl("logs", "-n", namespace, POD, "-c", "imports")

    assert phase == "Succeeded", f"help:\n{help_log}\nimports:\n{imports_log}"
    assert help_log.startswith("usage: kubelambda")
    assert json.loads(imports_log) == {
        "user": "kubelambda",
        "uid": 10002,
        "home": HOME,
        "kubelambda_home": HOME,
        "written": "ok",
        "root": "read-only",
        "precompiled": True,
    }
