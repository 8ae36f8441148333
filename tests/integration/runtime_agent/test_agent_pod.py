"""The runtime image in a real pod, exactly as Kubernetes mode runs every function.

The pod is the one the controller builds (``kubelambda.kubernetes.workloads``, owner
references left out since nothing owns it here): the agent first fetches the zip from an
authenticated HTTP server this test runs on the node's address (pods reach the host
there) into the ``code`` emptyDir, then serves invokes on 8080 under the restricted
security context (non-root 10001, read-only root filesystem, no capabilities,
RuntimeDefault seccomp). The test invokes it at the pod's IP as the gateway does, and
reads the function log with ``kubectl logs``.
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
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from kubelambda_agent import protocol
from kubernetes import client, config, utils

from kubelambda import instance_tokens
from kubelambda.kubernetes import workloads
from kubelambda.models import LATEST, CodePackage, FunctionIdentity, FunctionVersion
from kubelambda_testbed import k8s_layout
from tests import polling

T = TypeVar("T")

TIMEOUT = 90.0
AGENT_PORT = 8080
FUNCTION = "hello"
ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
# The platform's key, from which the pods' tokens are derived.
KEY = secrets.token_bytes(32)
HANDLER = b"""\
import os


def handler(event, context):
    print("handling", context.aws_request_id)
    try:
        open("/var/task/app.py", "a").close()
        code = "writable"
    except OSError:
        code = "read-only"
    return {"hello": event["name"], "uid": os.getuid(), "code": code}
"""


def eventually(what: str, probe: Callable[[], T | None], timeout: float = TIMEOUT) -> T:
    return polling.eventually(what, probe, timeout=timeout, interval=0.5)


def kubectl(*args: str) -> str:
    return subprocess.run(["kubectl", *args], check=True, capture_output=True, text=True).stdout


def pod_log(namespace: str, name: str) -> str:
    """The pod's log, or "" while the kubelet cannot serve it yet (it refuses for a
    moment after a container starts)."""
    done = subprocess.run(
        ["kubectl", "logs", "-n", namespace, name], capture_output=True, text=True
    )
    return done.stdout if done.returncode == 0 else ""


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
    """Serves zips at ``/kubelambda/code/<sha256>.zip`` to requests bearing that package's
    code token, on the node's address, as the gateway serves them to pods."""

    def __init__(self) -> None:
        self.packages: dict[str, bytes] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                digest = self.path.removeprefix("/kubelambda/code/").removesuffix(".zip")
                body = server.packages.get(digest)
                token = instance_tokens.code_token(KEY, digest)
                if self.headers.get("Authorization") != f"Bearer {token}":
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

    @property
    def url(self) -> str:
        return f"http://{k8s_layout.NODE_IP}:{self.httpd.server_address[1]}"

    def add(self, body: bytes, *, digest: str | None = None) -> CodePackage:
        """Serve ``body`` under its digest (or under ``digest``, to serve a wrong one)."""
        package = CodePackage(digest or hashlib.sha256(body).hexdigest(), len(body))
        self.packages[package.sha256_hex] = body
        return package

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
    server = CodeServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A namespace for the pods, deleted with everything in it."""
    name = f"kl-agent-pod-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def run_function_pod(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    *,
    image: str,
    runtime: str,
    package: CodePackage,
    code_url: str,
) -> str:
    """Create the ServiceAccount, Secret and pod the controller makes for one instance of
    function ``name``; the invoke token the gateway would present."""
    version = FunctionVersion(
        namespace=namespace,
        function_name=FUNCTION,
        version=LATEST,
        runtime=runtime,
        handler="app.handler",
        role="arn:aws:iam::123456789012:role/r",
        code_sha256=package.code_sha256,
        code_size=package.size,
        revision_id="r",
        last_modified="t",
    )
    owner = workloads.Owner("kubelambda.io/v1alpha1", "Function", name, "unowned")
    settings = workloads.PodSettings(
        runtime_image=image, code_url=code_url, region="us-east-1", image_pull_policy="Never"
    )
    identity = FunctionIdentity()
    invoke_token = instance_tokens.invoke_token(KEY, version.target)
    made = [
        workloads.service_account(name, namespace=namespace, identity=identity, owner=owner),
        workloads.secret(
            name,
            version,
            owner=owner,
            invoke_token=invoke_token,
            code_token=instance_tokens.code_token(KEY, package.sha256_hex),
        ),
    ]
    deployment = workloads.deployment(
        name,
        version,
        owner=owner,
        replicas=1,
        concurrency=1,
        identity=identity,
        settings=settings,
        idle_timeout=300.0,
    )
    template = deployment["spec"]["template"]
    made.append(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, **template["metadata"]},
            "spec": template["spec"],
        }
    )
    for manifest in made:
        manifest["metadata"].pop("ownerReferences", None)
        manifest["metadata"]["namespace"] = namespace
    utils.create_from_dict(core.api_client, made[0])
    core.create_namespaced_secret(namespace, made[1])
    core.create_namespaced_pod(namespace, made[2])
    return invoke_token


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
    package = code_server.add(body)
    name = runtime.replace(".", "-")
    token = run_function_pod(
        core,
        namespace,
        name,
        image=runtime_image,
        runtime=runtime,
        package=package,
        code_url=code_server.url,
    )
    ip = eventually("the function pod to become Ready", lambda: pod_ready(core, namespace, name))
    request_id = str(uuid.uuid4())

    status, answer = invoke(ip, {"name": "pod"}, request_id=request_id, token=token)
    refused, _ = invoke(ip, {"name": "pod"}, request_id="x", token="not-" + token)

    assert status == 200, answer
    expected = {"hello": "pod", "uid": 10001}
    if runtime == "python3.11":
        expected["code"] = "read-only"
    assert json.loads(answer) == expected
    assert refused == 403
    log = eventually(
        "the REPORT line in the agent's log",
        lambda: (
            (text := pod_log(namespace, name))
            and f"REPORT RequestId: {request_id}" in text
            and text
        ),
        timeout=10,
    )
    fetched = f"fetch-code: 1 files from {len(body)} bytes (sha256 {package.sha256_hex})"
    assert log.startswith(fetched)
    assert instance_tokens.code_token(KEY, package.sha256_hex) not in log
    assert f"START RequestId: {request_id}" in log
    assert f"handling {request_id}" in log


def test_pod_with_a_wrong_digest_never_becomes_ready(
    api: client.ApiClient, namespace: str, code_server: CodeServer, runtime_image: str
) -> None:
    core = client.CoreV1Api(api)
    body = function_zip(*PACKAGES["python3.11"])
    wrong = code_server.add(body, digest=hashlib.sha256(b"another package").hexdigest())
    run_function_pod(
        core,
        namespace,
        "bad",
        image=runtime_image,
        runtime="python3.11",
        package=wrong,
        code_url=code_server.url,
    )

    def failed_fetch() -> str | None:
        # The failed attempt's log: the current one, or the one before a restart.
        for previous in ("false", "true"):
            result = subprocess.run(
                ["kubectl", "logs", "-n", namespace, "bad", f"--previous={previous}"],
                capture_output=True,
                text=True,
                check=False,
            )
            if "mismatch" in result.stdout or "mismatch" in result.stderr:
                return result.stdout + result.stderr
        return None

    log = eventually("the agent to refuse the package", failed_fetch)

    url = f"{code_server.url}/kubelambda/code/{wrong.sha256_hex}.zip"
    actual = hashlib.sha256(body).hexdigest()
    assert (
        f"fetch-code: SHA-256 mismatch for {url}: got {actual}, expected {wrong.sha256_hex}" in log
    )
    assert pod_ready(core, namespace, "bad") is None
