"""Benchmark: what the gateway's invoke path adds on top of calling an agent directly.

Run: ``.venv/bin/python bench/invoke_overhead.py [--seconds 1] [--rounds 6] [--out DIR]``
(results go to ``bench/results/`` by default).

It starts one real runtime agent (``python -m kubelambda_agent``, an echo handler,
enough runtimes for the highest concurrency) and one gateway process serving the
gateway's composition (body limit, bearer auth, the invoke path) with real uvicorn, then
drives warm invokes at concurrency 1, 16 and 64 two ways: straight to the agent's ``POST
/invoke``, and through the gateway's Invoke endpoint. The load generator keeps one keep-
alive connection per concurrent caller on ``asyncio.Protocol`` + httptools (the
gateway's own pool, used here as a client), not httpx, which is too slow to measure
with. It prints JSON (req/s, p50, p99 per path and concurrency, the gateway's added
p50/p99, and the gateway process's CPU time per request) and saves a PNG next to it.

All processes share the machine, so on a 2-core host the figures include the gateway
competing for CPU with the agent and the load generator, as in production on a small
node. The two paths are measured in alternating short slices, so load from anything
else on the machine falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.kits.http_pool import ConnectionPool

CONCURRENCIES = (1, 16, 64)
AGENT_RUNTIMES = max(CONCURRENCIES)
# The agent's invoke token, known to both the benchmark's agent and gateway processes
# (a fixed value is fine: the agent listens on loopback for the length of a benchmark).
INVOKE_TOKEN = "kubelambda-benchmark-invoke-token-0001"
FUNCTION = "bench"
# The gateway child authenticates the load generator's bearer key, as in production.
API_KEY = secrets.token_urlsafe(24)
_API_KEY = "BENCH_GATEWAY_API_KEY"
Route = tuple[str, list[tuple[str, str]]]
PAYLOAD = json.dumps({"key": "x" * 80}).encode()  # ~100 bytes, as in DESIGN.md §4
HANDLER = textwrap.dedent(
    """
    def handler(event, context):
        return event
    """
)


# --- the gateway process ---------------------------------------------------------------


def serve_gateway(agent_port: int, port_fd: int) -> None:
    """Serve the gateway as ``kubelambda up`` does (the launch package's invoke path and
    gateway app, ``serving.serve`` on uvloop) with one static endpoint: the agent started
    by the parent. The store holds only a catalog of that one function; no controller."""
    import uvloop

    async def serve() -> None:
        async with contextlib.AsyncExitStack() as stack:
            await _serve_gateway(stack, agent_port, port_fd)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())


async def _serve_gateway(stack: contextlib.AsyncExitStack, agent_port: int, port_fd: int) -> None:
    from prometheus_client import CollectorRegistry

    from gateway.metrics import AsyncMetrics
    from gateway.services.invoke_settings import InvokeSettings
    from kubelambda import credentials
    from kubelambda.launch import serving
    from kubelambda.launch.gateway import build_gateway, build_invoke_path
    from kubelambda.models import DEFAULT_NAMESPACE, FunctionVersion, Target
    from kubelambda.ports.catalog import Catalog
    from kubelambda.ports.endpoints import Endpoint
    from kubelambda.store import LocalCodeStore
    from kubelambda.store.queue import SqliteQueue
    from kubelambda.store.sqlite import SqliteStore

    target = Target(DEFAULT_NAMESPACE, FUNCTION, "$LATEST")
    endpoint = Endpoint(
        target, "agent-0", "127.0.0.1", agent_port, AGENT_RUNTIMES, token=INVOKE_TOKEN
    )

    class OneAgent:
        """The EndpointSource of a benchmark: one agent that is always there."""

        def endpoints(self, wanted: Target) -> list[Endpoint]:
            return [endpoint] if wanted == target else []

        def subscribe(self, listener: Callable[[Target], None]) -> Callable[[], None]:
            return lambda: None

    class NoAutoscaler:
        """The agent is started by the benchmark: nothing to scale."""

        def report(self, reporter: str, target: Target, *, in_flight: int, waiting: int) -> None:
            return None

        def poke(self, target: Target) -> None:
            return None

    class OneFunction:
        """The CatalogSource: the benchmark's function, always Active."""

        snapshot = Catalog(
            versions={
                target: FunctionVersion(
                    namespace=DEFAULT_NAMESPACE,
                    function_name=FUNCTION,
                    version="$LATEST",
                    runtime="python3.11",
                    handler="app.handler",
                    role="bench",
                    code_sha256="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
                    code_size=0,
                    revision_id="bench",
                    last_modified="",
                    timeout=30,
                )
            }
        )

        async def catalog(self) -> Catalog:
            return self.snapshot

        def subscribe(self, listener: Callable[[Catalog], None]) -> Callable[[], None]:
            return lambda: None

    home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    registry = CollectorRegistry()
    invoker = await build_invoke_path(
        stack,
        catalog=OneFunction(),
        endpoints=OneAgent(),
        signals=NoAutoscaler(),
        reporter="bench",
        registry=registry,
        region="us-east-1",
        invoke=InvokeSettings(max_waiting_requests=1000, max_wait_seconds=30.0),
    )
    keys = credentials.Credentials(
        access_key_id="bench", secret_access_key="bench", api_key=os.environ[_API_KEY]
    )
    app = build_gateway(
        store=await stack.enter_async_context(SqliteStore.open(home, region="us-east-1")),
        code=LocalCodeStore(home / "code"),
        invoker=invoker,
        queue=await stack.enter_async_context(SqliteQueue.open(home)),
        async_metrics=AsyncMetrics(registry),
        keyring=credentials.Keyring([keys]),
        registry=registry,
        region="us-east-1",
        runtimes=("python3.11",),
        body_budget=256 * 1024 * 1024,
    )
    listener = serving.bind("127.0.0.1", 0)
    port = listener.getsockname()[1]

    async def announce() -> None:
        # Listening since bind: early connections wait in the backlog.
        os.write(port_fd, f"{port}\n".encode())
        os.close(port_fd)

    await serving.serve(
        app,
        listener,
        url=f"http://127.0.0.1:{port}",
        url_file=None,
        stack=stack,
        announce=announce,
        header_timeout=10.0,
        body_idle_timeout=10.0,
    )


# --- processes --------------------------------------------------------------------------


def _read_line(fd: int, within: float) -> str:
    deadline = time.monotonic() + within
    data = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while not data.endswith(b"\n"):
            if time.monotonic() > deadline:
                raise TimeoutError("the child did not report ready in time")
            chunk = pipe.read(64)
            if not chunk:
                raise RuntimeError("the child exited before it was ready")
            data += chunk
    return data.decode().strip()


@contextlib.contextmanager
def _child(
    argv: list[str], env: dict[str, str], ready_variable: str | None
) -> Iterator[tuple[str, int]]:
    """Start a child that reports readiness on a pipe; yields that line and its pid."""
    read_fd, write_fd = os.pipe()
    if ready_variable:
        env = {**env, ready_variable: str(write_fd)}
    else:
        argv = [*argv, str(write_fd)]
    process = subprocess.Popen(argv, env=env, pass_fds=(write_fd,), start_new_session=True)
    os.close(write_fd)
    try:
        yield _read_line(read_fd, within=60.0), process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@contextlib.contextmanager
def running_agent(code: Path) -> Iterator[int]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KUBELAMBDA_AGENT_LISTEN": "127.0.0.1:0",
        "KUBELAMBDA_AGENT_CONCURRENCY": str(AGENT_RUNTIMES),
        "KUBELAMBDA_AGENT_RUNTIME": "python3.11",
        "KUBELAMBDA_AGENT_TIMEOUT_SECONDS": "30",
        "KUBELAMBDA_AGENT_INVOKE_TOKEN": INVOKE_TOKEN,
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": str(code),
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    }
    argv = [sys.executable, "-m", "kubelambda_agent"]
    with _child(argv, env, "KUBELAMBDA_AGENT_READY_FD") as (line, _):
        yield int(json.loads(line)["port"])


@contextlib.contextmanager
def running_gateway(agent_port: int) -> Iterator[tuple[int, int]]:
    """Yields the gateway's port and pid."""
    argv = [sys.executable, __file__, "serve-gateway", "--agent-port", str(agent_port)]
    with _child(argv, {**os.environ, _API_KEY: API_KEY}, None) as (line, pid):
        yield int(line), pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5), counted after the ")" that ends the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the load generator -----------------------------------------------------------------


@dataclass
class Sample:
    """What one path saw over all its measured slices at one concurrency."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    sent: int = 0
    failures: int = 0
    gateway_cpu_seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "requests": len(ordered),
            "failures": self.failures,
            "rps": round(len(ordered) / self.seconds, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 3),
            "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 3),
        }


async def drive(
    pool: ConnectionPool,
    port: int,
    route: Route,
    *,
    concurrency: int,
    seconds: float,
    sample: Sample | None,
) -> None:
    """``concurrency`` callers, each on its own keep-alive connection, invoking in a loop
    for ``seconds``; recorded into ``sample`` unless it is a warm-up (``None``)."""
    path, headers = route
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds

    async def caller() -> None:
        while (sent := loop.time()) < stop_at:
            call_headers = [*headers, ("Kubelambda-Request-Id", str(uuid.uuid4()))]
            response = await pool.request(
                "127.0.0.1",
                port,
                method="POST",
                path=path,
                headers=call_headers,
                body=PAYLOAD,
                read_timeout=30.0,
            )
            if sample is not None:
                sample.latencies.append(loop.time() - sent)
                sample.sent += 1
                sample.failures += response.status != 200

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    if sample is not None:
        sample.seconds += seconds


async def measure(
    agent_port: int, gateway: tuple[int, int], *, seconds: float, rounds: int
) -> list[dict[str, Any]]:
    """Per concurrency: a warm-up, then ``rounds`` alternating slices of direct and
    gateway load, so background load on a shared machine hits both paths alike."""
    gateway_port, gateway_pid = gateway
    arn = f"arn:aws:lambda:us-east-1:000000000000:function:{FUNCTION}"
    paths = {
        "direct": (
            agent_port,
            (
                "/invoke",
                [
                    ("Kubelambda-Invoked-Function-Arn", arn),
                    ("Kubelambda-Invoke-Token", INVOKE_TOKEN),
                ],
            ),
        ),
        "gateway": (
            gateway_port,
            (
                f"/2015-03-31/functions/{FUNCTION}/invocations",
                [("Authorization", f"Bearer {API_KEY}")],
            ),
        ),
    }
    pool = ConnectionPool(max_idle_per_endpoint=max(CONCURRENCIES), idle_ttl=3600.0)
    rows = []
    for concurrency in CONCURRENCIES:
        samples = {name: Sample() for name in paths}
        for port, route in paths.values():
            await drive(pool, port, route, concurrency=concurrency, seconds=1.0, sample=None)
        for _ in range(rounds):
            for name, (port, route) in paths.items():
                cpu_before = cpu_seconds(gateway_pid)
                await drive(
                    pool,
                    port,
                    route,
                    concurrency=concurrency,
                    seconds=seconds,
                    sample=samples[name],
                )
                samples[name].gateway_cpu_seconds += cpu_seconds(gateway_pid) - cpu_before
        row: dict[str, Any] = {"concurrency": concurrency}
        for name, sample in samples.items():
            row[name] = sample.summary()
        gateway_sample = samples["gateway"]
        row["gateway"]["gateway_cpu_us_per_request"] = round(
            gateway_sample.gateway_cpu_seconds / gateway_sample.sent * 1e6, 1
        )
        row["overhead_p50_ms"] = round(row["gateway"]["p50_ms"] - row["direct"]["p50_ms"], 3)
        row["overhead_p99_ms"] = round(row["gateway"]["p99_ms"] - row["direct"]["p99_ms"], 3)
        rows.append(row)
    await pool.aclose()
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(row["concurrency"]) for row in rows]
    figure, (rps_axis, latency_axis) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    positions = range(len(rows))
    for offset, name in ((-width / 2, "direct"), (width / 2, "gateway")):
        xs = [p + offset for p in positions]
        rps_axis.bar(xs, [row[name]["rps"] for row in rows], width, label=name)
        latency_axis.bar(xs, [row[name]["p50_ms"] for row in rows], width, label=f"{name} p50")
        latency_axis.scatter(
            xs, [row[name]["p99_ms"] for row in rows], marker="_", s=300, color="black"
        )
    for axis, title, unit in (
        (rps_axis, "Throughput", "requests/s"),
        (latency_axis, "Latency (bar p50, tick p99)", "ms"),
    ):
        axis.set_xticks(list(positions), labels)
        axis.set_xlabel("concurrent callers")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.legend()
    figure.suptitle("Warm invoke: straight to the agent vs through the gateway's invoke path")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve-gateway", help="(internal) the gateway child process")
    serve.add_argument("--agent-port", type=int, required=True)
    serve.add_argument("port_fd", type=int)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one slice")
    parser.add_argument("--rounds", type=int, default=6, help="slices per path and concurrency")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.command == "serve-gateway":
        serve_gateway(args.agent_port, args.port_fd)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    # Other work on the machine skews every figure: record how busy it was.
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as code:
        (Path(code) / "app.py").write_text(HANDLER)
        with running_agent(Path(code)) as agent_port, running_gateway(agent_port) as gateway:
            rows = asyncio.run(
                measure(agent_port, gateway, seconds=args.seconds, rounds=args.rounds)
            )
    result = {
        "benchmark": "invoke_overhead",
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "results": rows,
    }
    print(json.dumps(result, indent=2))
    (args.out / "invoke_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out / "invoke_overhead.png")


if __name__ == "__main__":
    main()
