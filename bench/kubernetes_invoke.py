"""Kubernetes mode on the real node: cold start from zero pods, and warm invokes to pods.

Starts ``kubelambda up --kubernetes`` (as a user does, against ``$KUBECONFIG`` and the
runtime image in ``$KUBELAMBDA_RUNTIME_IMAGE``; both printed by
``python -m kubelambda_testbed env``) in a fresh namespace. Each cold trial creates a
function (python3.11, no dependencies), waits until it is Active with no pod, and times
one invoke from the request to the first byte of the answer: the Deployment scaled from
zero, the pod scheduled, its sandbox and init container (the package fetched), the
agent started (its package fetched first) and found ready, the invocation. Warm: one
function invoked back to back by 1, 16 and 64 callers for ``--seconds`` each, after as
long a round that starts the pods they need.

    eval "$(.venv/bin/python -m kubelambda_testbed env)"
    .venv/bin/python bench/kubernetes_invoke.py [--trials 10] [--seconds 10] [--out DIR]
    .venv/bin/python bench/kubernetes_invoke.py --release kubelambda --functions-namespace team-a

With ``--release`` it drives a Helm-installed platform instead (through its gateway
Service, found by ``kubelambda env --kubernetes``), in the namespace its key manages.

Prints JSON (p50/p95/max per measure) and saves it and a PNG in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import httpx
import matplotlib
from botocore.config import Config

from gateway.kits.http_pool import ConnectionPool

matplotlib.use("Agg")
from matplotlib import pyplot  # after use(): the backend must be chosen first

KUBELAMBDA = str(Path(sys.executable).with_name("kubelambda"))
NODE_ADDRESS = "10.244.0.1"
HANDLER = "def handler(event, context):\n    return event\n"
ROLE = "arn:aws:iam::000000000000:role/bench"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return buffer.getvalue()


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max": round(ordered[-1], 1),
        "n": len(ordered),
    }


def _kubectl_json(*args: str) -> Any:
    completed = subprocess.run(
        ["kubectl", *args, "-o", "json"], check=True, capture_output=True, text=True
    )
    return json.loads(completed.stdout)


def _pods(namespace: str, function_object: str) -> list[Any]:
    selector = f"kubelambda.io/function={function_object}"
    return list(_kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"])


class Platform:
    """The gateway the benchmark drives: a ``kubelambda up --kubernetes`` it starts, or a
    Helm release already installed (``--release``)."""

    def __init__(self, exports: str, process: subprocess.Popen[bytes] | None = None) -> None:
        self.process = process
        self.env = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in exports.splitlines()
        )
        self.url = self.env["AWS_ENDPOINT_URL_LAMBDA"]
        self.lambda_client = boto3.client(
            "lambda",
            endpoint_url=self.url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 0}, read_timeout=120),
        )

    @classmethod
    def started(cls, home: Path, namespace: str) -> Platform:
        env = {**os.environ, "KUBELAMBDA_HOME": str(home), "KUBELAMBDA_PORT": "0"}
        home.mkdir(parents=True, exist_ok=True)
        log = (home.parent / "platform.log").open("wb")
        process = subprocess.Popen(
            [KUBELAMBDA, "up", "--kubernetes", "--host", NODE_ADDRESS, "--namespace", namespace],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while not (home / "gateway.url").exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kubelambda up --kubernetes did not start")
            time.sleep(0.1)
        exports = subprocess.run(
            [KUBELAMBDA, "env"], env=env, check=True, capture_output=True, text=True
        ).stdout
        return cls(exports, process)

    @classmethod
    def of_release(cls, release_namespace: str) -> Platform:
        exports = subprocess.run(
            [KUBELAMBDA, "env", "--kubernetes", "-n", release_namespace],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return cls(exports)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def create(self, name: str) -> None:
        self.lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": _zip()},
        )
        self.lambda_client.get_waiter("function_active_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
        )

    def invocations(self, name: str) -> str:
        return f"{self.url}/2015-03-31/functions/{name}/invocations"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.env['KUBELAMBDA_API_KEY']}"}


def cold_trial(platform: Platform, namespace: str, index: int) -> float:
    name = f"cold-{index}"
    platform.create(name)
    # As after an idle timeout: the version's Deployment exists, at zero replicas.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = _kubectl_json("get", "deployments", "-n", namespace)["items"]
        if any(d["metadata"]["name"] == f"{name}-latest" for d in found):
            break
        time.sleep(0.2)
    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        with client.stream(
            "POST", platform.invocations(name), headers=platform.headers(), content=b'{"n":1}'
        ) as response:
            first_byte_ms = (time.perf_counter() - started) * 1000
            body = response.read()
    if response.status_code != 200 or json.loads(body) != {"n": 1}:
        raise RuntimeError(f"cold invoke failed: {response.status_code} {body[:200]!r}")
    platform.lambda_client.delete_function(FunctionName=name)
    deadline = time.monotonic() + 120
    while _pods(namespace, name) and time.monotonic() < deadline:
        time.sleep(0.5)
    return first_byte_ms


async def warm_run(
    platform: Platform, name: str, *, callers: int, seconds: float
) -> dict[str, Any]:
    """``callers`` each on a keep-alive connection of the gateway's own pool (used here as
    a client: httpx tops out near 550 requests/s on these machines, below the gateway)."""
    latencies: list[float] = []
    parts = urllib.parse.urlsplit(platform.url)
    host, port = parts.hostname or "", parts.port or 80
    path = f"/2015-03-31/functions/{name}/invocations"
    headers = [("Authorization", f"Bearer {platform.env['KUBELAMBDA_API_KEY']}")]
    pool = ConnectionPool(max_idle_per_endpoint=callers, idle_ttl=3600.0)
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds

    async def caller() -> None:
        while (sent := loop.time()) < stop_at:
            response = await pool.request(
                host, port, method="POST", path=path, headers=headers, body=b'{"n":1}',
                read_timeout=60.0,
            )  # fmt: skip
            if response.status != 200:
                raise RuntimeError(f"warm invoke failed: {response.status}")
            latencies.append((loop.time() - sent) * 1000)

    begun = loop.time()
    try:
        await asyncio.gather(*(caller() for _ in range(callers)))
    finally:
        await pool.aclose()
    elapsed = loop.time() - begun
    return {
        "callers": callers,
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "latency_ms": _percentiles(latencies),
        "samples": latencies,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument(
        "--release",
        metavar="NAMESPACE",
        help="drive the Helm release in NAMESPACE instead of starting kubelambda up "
        "(functions go to the namespace its admin key manages: --functions-namespace)",
    )
    parser.add_argument("--functions-namespace", help="with --release: its functions' namespace")
    args = parser.parse_args()
    if not os.environ.get("KUBECONFIG") or not os.environ.get("KUBELAMBDA_RUNTIME_IMAGE"):
        print('run eval "$(.venv/bin/python -m kubelambda_testbed env)" first', file=sys.stderr)
        return 2
    if bool(args.release) != bool(args.functions_namespace):
        print("--release and --functions-namespace go together", file=sys.stderr)
        return 2
    namespace = args.functions_namespace or f"bench-{uuid.uuid4().hex[:6]}"
    if not args.release:
        subprocess.run(
            ["kubectl", "create", "namespace", namespace], check=True, capture_output=True
        )
    with tempfile.TemporaryDirectory() as scratch:
        platform = (
            Platform.of_release(args.release)
            if args.release
            else Platform.started(Path(scratch) / "home", namespace)
        )
        try:
            cold = [cold_trial(platform, namespace, i) for i in range(args.trials)]
            platform.create("warm")
            warm = []
            for callers in (1, 16, 64):
                # The first round starts the pods the callers need; the second is measured.
                asyncio.run(warm_run(platform, "warm", callers=callers, seconds=args.seconds))
                warm.append(
                    asyncio.run(warm_run(platform, "warm", callers=callers, seconds=args.seconds))
                )
        finally:
            platform.stop()
            if not args.release:
                subprocess.run(
                    ["kubectl", "delete", "namespace", namespace, "--wait=false"],
                    capture_output=True,
                )
    result = {
        "cold_start_first_byte_ms": _percentiles(cold),
        "cold_start_trials_ms": [round(value, 1) for value in cold],
        "warm": [{k: v for k, v in run.items() if k != "samples"} for run in warm],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "kubernetes_invoke_helm" if args.release else "kubernetes_invoke"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    left.plot(range(1, len(cold) + 1), cold, marker="o")
    left.set_title("cold start: invoke at 0 pods → first byte")
    left.set_xlabel("trial")
    left.set_ylabel("ms")
    for run in warm:
        right.hist(run["samples"], bins=50, alpha=0.6, label=f"{run['callers']} caller(s)")
    right.set_title("warm invoke latency through the gateway")
    right.set_xlabel("ms")
    right.legend()
    figure.tight_layout()
    figure.savefig(args.out / f"{name}.png", dpi=100)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
