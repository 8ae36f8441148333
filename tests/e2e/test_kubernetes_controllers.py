"""Controllers on one cluster: of two `kubelambda up --kubernetes`, one leads and the
other does nothing; a leader killed (SIGKILL) in the middle of scaling a version up and
started again on its home converges: its functions answer, old and new.

Each platform has its own home, so its code packages are its own: a second platform
could lead, but not serve the first one's packages to pods (a shared code store is for
the in-cluster install).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Platform, log_text, make_zip, start_platform, stop_platform

pytestmark = pytest.mark.infra

NODE_ADDRESS = "10.244.0.1"
LEASE = "kubelambda-controller"
HANDLER = "def handler(event, context):\n    return {'answer': event.get('n')}\n"


def kubectl(kubeconfig: Path, *args: str) -> str:
    completed = subprocess.run(
        ["kubectl", f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout


def lease_holder(kubeconfig: Path) -> str:
    lease = json.loads(kubectl(kubeconfig, "get", "lease", LEASE, "-n", "default", "-o", "json"))
    return str(lease["spec"].get("holderIdentity") or "")


def wait_for(what: str, probe: Any, *, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)
    return result


@pytest.fixture
def namespace(kubeconfig: Path) -> Iterator[str]:
    name = f"e2e-ha-{uuid.uuid4().hex[:8]}"
    kubectl(kubeconfig, "create", "namespace", name)
    yield name
    kubectl(kubeconfig, "delete", "namespace", name, "--wait=false")


def start(home: Path, namespace: str, kubeconfig: Path, runtime_image: str) -> Platform:
    return start_platform(
        home,
        "--kubernetes",
        "--host",
        NODE_ADDRESS,
        "--namespace",
        namespace,
        environ={
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "KUBELAMBDA_RUNTIME_IMAGE": runtime_image,
            # The restart waits out the killed leader's Lease: 6 s rather than the default
            # 15 s (the integration tests of the elector use 3 s).
            "KUBELAMBDA_LEADER_LEASE_SECONDS": "6",
        },
    )


def create(client: Any, name: str) -> None:
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::000000000000:role/function",
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": HANDLER})},
    )
    client.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
    )


def answer(client: Any, name: str, n: int) -> Any:
    response = client.invoke(FunctionName=name, Payload=json.dumps({"n": n}).encode())
    return json.loads(response["Payload"].read())


def test_two_controllers_one_leader_and_a_killed_leader_converges_on_restart(
    tmp_path: Path, kubeconfig: Path, runtime_image: str, namespace: str
) -> None:
    home = tmp_path / "first"
    first = start(home, namespace, kubeconfig, runtime_image)
    second = start(tmp_path / "second", namespace, kubeconfig, runtime_image)
    restarted: Platform | None = None
    try:
        leader = wait_for("a leader", lambda: lease_holder(kubeconfig))
        assert leader.endswith(f"-{first.process.pid}"), leader
        client = first.lambda_client()
        create(client, "steady")
        assert answer(client, "steady", 1) == {"answer": 1}
        assert "lease_acquired" not in log_text(second.home)
        assert "deployment namespace=" not in log_text(second.home)
        stop_platform(second.process)

        create(client, "interrupted")
        # A cold start through the leader, which is killed while it scales the version up.
        threading.Thread(
            target=_ignore_errors, args=(answer, client, "interrupted", 0), daemon=True
        ).start()
        time.sleep(0.3)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()

        # The killed run left its URL behind; the restart replaces it once it serves, and
        # the helper waits for the file, so it must not find the old one.
        (home / "gateway.url").unlink()
        restarted = start(home, namespace, kubeconfig, runtime_image)
        # Its Lease is taken over once the killed run's expires.
        wait_for(
            "the restarted platform to lead",
            lambda: lease_holder(kubeconfig).endswith(f"-{restarted.process.pid}"),
        )
        client = restarted.lambda_client()
        assert answer(client, "interrupted", 2) == {"answer": 2}
        assert answer(client, "steady", 3) == {"answer": 3}
        create(client, "after")
        assert answer(client, "after", 4) == {"answer": 4}
        replicas = json.loads(
            kubectl(kubeconfig, "get", "deployments", "-n", namespace, "-o", "json")
        )
        assert {d["metadata"]["name"]: d["spec"]["replicas"] for d in replicas["items"]} == {
            "steady-latest": 1,
            "interrupted-latest": 1,
            "after-latest": 1,
        }
    finally:
        for platform in (first, second, restarted):
            if platform is not None and platform.process.poll() is None:
                stop_platform(platform.process)


def _ignore_errors(call: Any, *args: Any) -> None:
    try:
        call(*args)
    except Exception:  # the platform it talks to is killed under it: expected
        return
