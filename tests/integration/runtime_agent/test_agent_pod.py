"""The runtime image in a real pod, laid out as Kubernetes mode will run every function.

The pod is the one the controller is to build: a ``fetch-code`` init container fetches
the zip from an authenticated HTTP server this test runs on the node's address (pods reach
the host there) into the ``code`` emptyDir, then the ``agent`` container serves invokes on
8080 under the restricted security context (non-root 10001, read-only root filesystem, no
capabilities, RuntimeDefault seccomp). The test invokes it at the pod's IP as the
gateway does, and reads the function log with ``kubectl logs``.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import io
import json
import pathlib
import secrets
import stat
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubelambda_agent import protocol
from kubernetes import client, config

from kubelambda_testbed import k8s_layout

T = TypeVar("T")

TIMEOUT = 90.0
AGENT_PORT = 8080
FUNCTION = "hello"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
INVOKE_TOKEN = secrets.token_urlsafe(32)
HANDLER = b"""\
import os


def handler(event, context):
    print("handling", context.aws_request_id)
    try:
        open("/var/task/scribble", "w").close()
        task_root = "writable"
    except OSError:
        task_root = "read-only"
    return {"hello": event["name"], "uid": os.getuid(), "task_root": task_root}
"""


def eventually(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


# A custom runtime: the package's own executable `bootstrap` (the exec bit must survive the
# fetch, and the code volume must allow exec) polling the Runtime API itself.
BOOTSTRAP = b"""\
#!/bin/sh
exec python3 -c '
import json, os, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
while True:
    with urllib.request.urlopen(api + "next") as response:
        request_id = response.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.load(response)
    print("handling", request_id, flush=True)
    answer = json.dumps({"hello": event["name"], "uid": os.getuid()}).encode()
    urllib.request.urlopen(api + request_id + "/response", data=answer).read()
'
"""
PACKAGES = {
    "python3.11": ("app.py", HANDLER, 0o644),
    "provided.al2023": ("bootstrap", BOOTSTRAP, 0o755),
}


def function_zip(name: str, content: bytes, mode: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (stat.S_IFREG | mode) << 16
        archive.writestr(info, content)
    return buffer.getvalue()


class CodeServer:
    """Serves zips at ``/code/<sha256>.zip`` to requests bearing ``token``, on the node's
    address (the platform's code server will serve packages the same way)."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.packages: dict[str, bytes] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = server.packages.get(self.path.removeprefix("/code/").removesuffix(".zip"))
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self.send_error(401)
                elif body is None:
                    self.send_error(404)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((k8s_layout.NODE_IP, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,), daemon=True)
        self.thread.start()

    def add(self, body: bytes) -> tuple[str, str]:
        """Serve ``body``: its URL and SHA-256."""
        sha256 = hashlib.sha256(body).hexdigest()
        self.packages[sha256] = body
        port = self.httpd.server_address[1]
        return f"http://{k8s_layout.NODE_IP}:{port}/code/{sha256}.zip", sha256

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def api(kubeconfig: pathlib.Path) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(kubeconfig)) as api_client:
        yield api_client


@pytest.fixture(scope="module")
def code_server() -> Iterator[CodeServer]:
    server = CodeServer(token=secrets.token_urlsafe(32))
    yield server
    server.close()


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient, code_server: CodeServer) -> Iterator[str]:
    """A namespace holding the Secret with both tokens, deleted with everything in it."""
    name = f"wt-image-agent-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(
        name,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "instance"},
            "stringData": {"code-token": code_server.token, "invoke-token": INVOKE_TOKEN},
        },
    )
    yield name
    core.delete_namespace(name)


def secret_env(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "instance", "key": key}}}


def function_pod(
    name: str, *, image: str, runtime: str, code_url: str, sha256: str
) -> dict[str, Any]:
    """The pod of one instance, as the controller's Deployment template will make it."""
    locked_down = {
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    agent_env = {
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": "/var/task",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{FUNCTION}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{name}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "TZ": ":UTC",
        "KUBELAMBDA_AGENT_LISTEN": f"0.0.0.0:{AGENT_PORT}",
        "KUBELAMBDA_AGENT_CONCURRENCY": "1",
        "KUBELAMBDA_AGENT_RUNTIME": runtime,
        "KUBELAMBDA_AGENT_TIMEOUT_SECONDS": "3",
        "KUBELAMBDA_AGENT_PYTHON": "/usr/bin/python3",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": FUNCTION}},
        "spec": {
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "volumes": [{"name": "code", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": "fetch-code",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-m", "kubelambda_agent.fetch_code"],
                    "env": [
                        {"name": "KUBELAMBDA_CODE_URL", "value": code_url},
                        {"name": "KUBELAMBDA_CODE_SHA256", "value": sha256},
                        secret_env("KUBELAMBDA_CODE_TOKEN", "code-token"),
                        {"name": "KUBELAMBDA_CODE_DIR", "value": "/var/task"},
                    ],
                    "securityContext": locked_down,
                    "volumeMounts": [
                        {"name": "code", "mountPath": "/var/task"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "containers": [
                {
                    "name": "agent",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-m", "kubelambda_agent"],
                    "env": [
                        *({"name": k, "value": v} for k, v in agent_env.items()),
                        secret_env("KUBELAMBDA_AGENT_INVOKE_TOKEN", "invoke-token"),
                    ],
                    "ports": [{"name": "invoke", "containerPort": AGENT_PORT}],
                    "readinessProbe": {
                        "httpGet": {"path": protocol.READY_PATH, "port": AGENT_PORT},
                        "periodSeconds": 1,
                    },
                    "securityContext": locked_down,
                    "volumeMounts": [
                        {"name": "code", "mountPath": "/var/task", "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
        },
    }


def pod_ready(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    """The pod's IP once it is Ready."""
    status = core.read_namespaced_pod(name, namespace).status
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    return status.pod_ip if ready else None


def invoke(ip: str, event: object, *, request_id: str, token: str) -> tuple[int, bytes]:
    """``POST /invoke`` with the headers the gateway's agent client sends."""
    connection = http.client.HTTPConnection(ip, AGENT_PORT, timeout=30)
    try:
        connection.request(
            "POST",
            protocol.INVOKE_PATH,
            body=json.dumps(event).encode(),
            headers={
                protocol.INVOKE_TOKEN: token,
                protocol.REQUEST_ID: request_id,
                protocol.INVOKED_FUNCTION_ARN: ARN,
            },
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("runtime", sorted(PACKAGES))
def test_pod_fetches_its_code_and_serves_invokes(
    api: client.ApiClient,
    namespace: str,
    code_server: CodeServer,
    runtime_image: str,
    runtime: str,
) -> None:
    core = client.CoreV1Api(api)
    body = function_zip(*PACKAGES[runtime])
    url, sha256 = code_server.add(body)
    name = runtime.replace(".", "-")
    pod = function_pod(name, image=runtime_image, runtime=runtime, code_url=url, sha256=sha256)
    core.create_namespaced_pod(namespace, pod)
    ip = eventually("the function pod to become Ready", lambda: pod_ready(core, namespace, name))
    request_id = str(uuid.uuid4())

    status, answer = invoke(ip, {"name": "pod"}, request_id=request_id, token=INVOKE_TOKEN)
    refused, _ = invoke(ip, {"name": "pod"}, request_id="x", token="not-" + INVOKE_TOKEN)

    assert status == 200, answer
    expected = {"hello": "pod", "uid": 10001}
    if runtime == "python3.11":
        expected["task_root"] = "read-only"
    assert json.loads(answer) == expected
    assert refused == 403
    fetched = kubectl("logs", "-n", namespace, name, "-c", "fetch-code")
    assert fetched.startswith(f"fetch-code: 1 files from {len(body)} bytes (sha256 {sha256})")
    assert code_server.token not in fetched
    log = eventually(
        "the REPORT line in the agent's log",
        lambda: (
            (text := kubectl("logs", "-n", namespace, name, "-c", "agent"))
            and f"REPORT RequestId: {request_id}" in text
            and text
        ),
        timeout=10,
    )
    assert f"START RequestId: {request_id}" in log
    assert f"handling {request_id}" in log


def test_pod_with_a_wrong_digest_never_becomes_ready(
    api: client.ApiClient, namespace: str, code_server: CodeServer, runtime_image: str
) -> None:
    core = client.CoreV1Api(api)
    url, sha256 = code_server.add(function_zip(*PACKAGES["python3.11"]))
    wrong = hashlib.sha256(b"another package").hexdigest()
    pod = function_pod("bad", image=runtime_image, runtime="python3.11", code_url=url, sha256=wrong)
    core.create_namespaced_pod(namespace, pod)

    def failed_fetch() -> str | None:
        status = core.read_namespaced_pod("bad", namespace).status
        for init in status.init_container_statuses or []:
            terminated = init.state.terminated or init.last_state.terminated
            if terminated and terminated.exit_code != 0:
                # The failed attempt's log: the current one, or the one before a restart.
                for previous in ("false", "true"):
                    result = subprocess.run(
                        ["kubectl", "logs", "-n", namespace, "bad", "-c", "fetch-code",
                         f"--previous={previous}"],
                        capture_output=True, text=True, check=False,
                    )  # fmt: skip
                    if "mismatch" in result.stdout:
                        return result.stdout
        return None

    log = eventually("the fetch-code init container to fail", failed_fetch)

    assert log == f"fetch-code: SHA-256 mismatch for {url}: got {sha256}, expected {wrong}\n"
    assert pod_ready(core, namespace, "bad") is None
    assert core.read_namespaced_pod("bad", namespace).status.phase == "Pending"
