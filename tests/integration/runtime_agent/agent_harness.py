"""Fixtures that run the real runtime agent as a subprocess and talk to it over HTTP.

(A module of its own, re-exported by ``conftest.py``, so tests can import the helper types
under a name no other test folder uses.)

``start_agent`` writes a function's files into a temporary task root, starts
``python -m kubelambda_agent`` with the ``KUBELAMBDA_AGENT_READY_FD`` handshake (as the
launcher does), and returns a handle with the announced port, the agent's stdout (the
function log) and an ``invoke`` helper speaking the invoke-endpoint protocol.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.process_limits import lower_open_files_to
from tests.process_table import command_line

READY_TIMEOUT_SECONDS = 20.0
# The agent under test is this checkout's, whatever else an installed package points at.
AGENT_SOURCE = Path(__file__).resolve().parents[3] / "runtime-images" / "agent"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST"
# The header the gateway presents the instance's secret in (``protocol.INVOKE_TOKEN``).
INVOKE_TOKEN_HEADER = "Kubelambda-Invoke-Token"


@dataclass
class InvokeResult:
    status: int
    headers: httpx.Headers
    body: bytes

    @property
    def json(self) -> object:
        return json.loads(self.body)

    @property
    def function_error(self) -> str | None:
        value: str | None = self.headers.get("Kubelambda-Function-Error")
        return value

    @property
    def log_tail(self) -> str:
        return base64.b64decode(self.headers["Kubelambda-Log-Result"]).decode()


@dataclass
class Agent:
    """A running agent; ``unix_address`` is set (and ``port`` 0) when it listens on a Unix
    socket (``KUBELAMBDA_AGENT_LISTEN=unix``)."""

    process: subprocess.Popen[bytes]
    port: int
    stdout_path: Path
    token: str
    unix_address: str | None = None
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        if self.unix_address is not None:
            transport = httpx.HTTPTransport(uds=self.unix_address)
            self.client = httpx.Client(base_url="http://agent", transport=transport, timeout=30)
        else:
            self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def invoke(
        self,
        event: object = None,
        *,
        request_id: str | None = None,
        tail: bool = False,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> InvokeResult:
        sent = {
            "Kubelambda-Request-Id": request_id or str(uuid.uuid4()),
            "Kubelambda-Invoked-Function-Arn": FUNCTION_ARN,
            INVOKE_TOKEN_HEADER: self.token,
        }
        if tail:
            sent["Kubelambda-Log-Type"] = "Tail"
        sent.update(headers or {})
        body = raw if raw is not None else json.dumps(event if event is not None else {}).encode()
        response = self.client.post("/invoke", content=body, headers=sent)
        return InvokeResult(response.status_code, response.headers, response.content)

    def ready(self) -> httpx.Response:
        """The readiness report the gateway sees (with the token: runtimes and idle)."""
        return self.client.get("/ready", headers={INVOKE_TOKEN_HEADER: self.token})

    def wait_idle(self, idle: int = 1, timeout: float = 20.0) -> None:
        """Wait until ``idle`` runtimes are ready again (after a restart, say)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.ready()
            if response.status_code == 200 and response.json()["idle"] >= idle:
                return
            time.sleep(0.02)
        raise AssertionError(f"agent never had {idle} idle runtimes: {self.ready().text}")

    def wait_idle_exactly(self, idle: int, timeout: float = 20.0) -> None:
        """Wait until exactly ``idle`` runtimes are idle (the rest busy)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready().json()["idle"] == idle:
                return
            time.sleep(0.01)
        raise AssertionError(f"agent never had exactly {idle} idle runtimes")

    def log(self) -> str:
        return self.stdout_path.read_text()

    def send_control(self, line: bytes) -> None:
        """Write ``line`` on the agent's control pipe (its stdin; ``control=True``)."""
        assert self.process.stdin is not None, "started without control=True"
        self.process.stdin.write(line)
        self.process.stdin.flush()

    def terminate(self, timeout: float = 20.0) -> int:
        self.client.close()
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


StartAgent = Callable[..., Agent]


def _read_ready_line(fd: int, process: subprocess.Popen[bytes]) -> dict[str, int | str]:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    data = b""
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise AssertionError(f"agent did not announce readiness (exit={process.poll()})")
        readable, _, _ = select.select([fd], [], [], remaining)
        if readable:
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"ready fd closed without a line; got {data!r}")
            data += chunk
    parsed: dict[str, int | str] = json.loads(data)
    return parsed


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    started: list[Agent] = []

    def start(
        files: Mapping[str, str],
        *,
        handler: str = "app.handler",
        runtime: str = "python3.11",
        concurrency: int = 1,
        timeout: float = 3.0,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        token: str | None = None,
        control: bool = False,
        environment_concurrency: int = 1,
        open_files_soft_limit: int | None = None,
    ) -> Agent:
        task_root = tmp_path / f"task{len(started)}"
        task_root.mkdir()
        for name, text in files.items():
            path = task_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
            if name == "bootstrap":
                path.chmod(0o755)
        read_fd, write_fd = os.pipe()
        token = token or secrets.token_urlsafe(32)
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(AGENT_SOURCE),
            "KUBELAMBDA_AGENT_LISTEN": "127.0.0.1:0",
            "KUBELAMBDA_AGENT_RUNTIME": runtime,
            "KUBELAMBDA_AGENT_CONCURRENCY": str(concurrency),
            "KUBELAMBDA_AGENT_TIMEOUT_SECONDS": str(timeout),
            "KUBELAMBDA_AGENT_READY_FD": str(write_fd),
            "KUBELAMBDA_AGENT_PYTHON": python or sys.executable,
            "KUBELAMBDA_AGENT_INVOKE_TOKEN": token,
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": handler,
            "AWS_LAMBDA_FUNCTION_NAME": "echo",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/echo",
            "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]abc",
            **(
                {
                    "KUBELAMBDA_AGENT_CONTROL_FD": "0",
                    "KUBELAMBDA_AGENT_ENVIRONMENT_CONCURRENCY": str(environment_concurrency),
                }
                if control
                else {}
            ),
            **(env or {}),
        }
        stdout_path = tmp_path / f"agent{len(started)}.log"
        with stdout_path.open("wb") as stdout:
            process = subprocess.Popen(
                [sys.executable, "-m", "kubelambda_agent"],
                env=environ,
                stdin=subprocess.PIPE if control else None,
                stdout=stdout,
                pass_fds=(write_fd,),
                preexec_fn=lower_open_files_to(open_files_soft_limit),
            )
        os.close(write_fd)
        try:
            announced = _read_ready_line(read_fd, process)
        except AssertionError:
            process.kill()
            process.wait()
            raise
        finally:
            os.close(read_fd)
        agent = Agent(
            process=process,
            port=int(announced.get("port", 0)),
            stdout_path=stdout_path,
            token=token,
            unix_address=str(announced["unix"]) if "unix" in announced else None,
        )
        started.append(agent)
        return agent

    yield start
    for agent in started:
        # SIGTERM first, so the agent stops its runtimes (SIGKILL would orphan them).
        try:
            agent.terminate(timeout=10)
        except subprocess.TimeoutExpired:
            agent.process.kill()
            agent.process.wait()


ECHO_FUNCTION = {
    "app.py": """
        import json
        import logging
        import os
        import sys
        import time

        logger = logging.getLogger()
        logger.setLevel(logging.INFO)


        def handler(event, context):
            action = event.get("action")
            if action == "print":
                print(event["text"])
                return None
            if action == "log":
                logger.info(event["text"])
                return None
            if action == "fail":
                raise ValueError(event.get("text", "boom"))
            if action == "sleep":
                time.sleep(event["seconds"])
                return {"slept": event["seconds"], "pid": os.getpid()}
            if action == "exit":
                os._exit(event.get("code", 3))
            if action == "big":
                return "x" * event["size"]
            if action == "env":
                return dict(os.environ)
            if action == "context":
                client_context = context.client_context
                return {
                    "aws_request_id": context.aws_request_id,
                    "invoked_function_arn": context.invoked_function_arn,
                    "function_name": context.function_name,
                    "function_version": context.function_version,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "log_group_name": context.log_group_name,
                    "log_stream_name": context.log_stream_name,
                    "remaining": context.get_remaining_time_in_millis(),
                    "custom": client_context.custom if client_context else None,
                    "identity": (
                        context.identity.cognito_identity_id if context.identity else None
                    ),
                    "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                    "cwd": os.getcwd(),
                    "python": list(sys.version_info[:2]),
                }
            if action == "pid":
                return os.getpid()
            return event
    """
}


@pytest.fixture
def echo_function() -> dict[str, str]:
    return dict(ECHO_FUNCTION)


def async_client(agent: Agent) -> httpx.AsyncClient:
    """A client of ``agent``'s invoke endpoint presenting its token, for concurrent calls."""
    return httpx.AsyncClient(
        base_url=agent.url, timeout=30, headers={INVOKE_TOKEN_HEADER: agent.token}
    )


async def invoke_async(client: httpx.AsyncClient, request_id: str, event: object) -> httpx.Response:
    """One invocation through ``client`` (``async_client``)."""
    return await client.post(
        "/invoke",
        content=json.dumps(event).encode(),
        headers={
            "Kubelambda-Request-Id": request_id,
            "Kubelambda-Invoked-Function-Arn": FUNCTION_ARN,
        },
    )


def bootstrap_children(pid: int) -> set[int]:
    """The child processes of ``pid`` running the python bootstrap (runtimes, and the
    agent's runtime zygote)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(child) for child in (task / "children").read_text().split())
    return {child for child in children if b"python_bootstrap" in command_line(child)}
