"""Benchmark: asynchronous invocation through a whole `kubelambda up`, SQLite and Kafka.

Run: ``.venv/bin/python bench/async_events.py [--queue sqlite|kafka] [--seconds 10]
[--callers 64] [--out DIR]`` (Kafka: ``KAFKA_BOOTSTRAP`` from ``make -s cluster-env``).

It starts the embedded platform as a user would (a subprocess of the console script,
its queue in SQLite or on Kafka with acks=all), creates a function whose handler notes
how long each event took from the moment the client sent it, and measures:

- **accepted Event invokes per second**: ``--callers`` keep-alive connections (the
  gateway's own httptools pool as a client) send Event invokes for ``--seconds``; only a
  202 counts. The platform's process runs the dispatcher and the function's instances
  meanwhile, as in production; its CPU time per accepted event is reported too, the
  figure to read "per gateway core" from.
- **enqueue → handler latency at light load**: ``--light`` events one at a time,
  20 per second, from the client's send to the handler's first line (p50/p99).

Prints JSON and writes it with a PNG of the latency distribution next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import matplotlib
from botocore.config import Config

from gateway.kits.http_pool import ConnectionPool

matplotlib.use("Agg")
from matplotlib import pyplot  # after use(): the backend must be chosen first

# Run as a script by `make bench`: the checkout (for bench.*) and the e2e helpers that
# start `kubelambda up` as a user would.
REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "e2e")]
from conftest import make_zip, start_platform, stop_platform  # noqa: E402

from bench.invoke_overhead import cpu_seconds  # noqa: E402

HANDLER = """
import json, os, time

def handler(event, context):
    if "sent" in event:
        with open(os.environ["OUT"], "a") as out:
            out.write(json.dumps({"latency": time.time() - event["sent"]}) + "\\n")
    return None
"""
FUNCTION = "async-bench"


async def accept_rate(
    port: int, api_key: str, *, callers: int, seconds: float
) -> tuple[int, int, float]:
    """(accepted, refused, elapsed seconds) of Event invokes sent for ``seconds``."""
    pool = ConnectionPool(max_idle_per_endpoint=callers, idle_ttl=3600.0)
    headers = [("Authorization", f"Bearer {api_key}"), ("X-Amz-Invocation-Type", "Event")]
    path = f"/2015-03-31/functions/{FUNCTION}/invocations"
    counts = {"accepted": 0, "refused": 0}
    loop = asyncio.get_running_loop()
    started = loop.time()
    stop_at = started + seconds

    async def caller() -> None:
        while loop.time() < stop_at:
            response = await pool.request(
                "127.0.0.1",
                port,
                method="POST",
                path=path,
                headers=headers,
                body=b'{"bench": true}',
                read_timeout=30.0,
            )
            counts["accepted" if response.status == 202 else "refused"] += 1

    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = loop.time() - started
    await pool.aclose()
    return counts["accepted"], counts["refused"], elapsed


def light_latencies(client: Any, out: Path, *, count: int) -> list[float]:
    for _ in range(count):
        payload = json.dumps({"sent": time.time()}).encode()
        client.invoke(FunctionName=FUNCTION, InvocationType="Event", Payload=payload)
        time.sleep(0.05)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = out.read_text().splitlines() if out.exists() else []
        if len(lines) >= count:
            return [json.loads(line)["latency"] for line in lines[:count]]
        time.sleep(0.2)
    raise RuntimeError(f"only {len(lines)} of {count} light-load events ran in time")


def main(queue: str, *, seconds: float, callers: int, light: int, out_dir: Path) -> None:
    environ = {**os.environ, "KUBELAMBDA_LOG_LEVEL": "WARNING"}
    if queue == "kafka":
        environ["KUBELAMBDA_KAFKA_BOOTSTRAP"] = os.environ["KAFKA_BOOTSTRAP"]
        environ["KUBELAMBDA_KAFKA_TOPIC_PREFIX"] = f"bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="kubelambda-async-bench-") as scratch:
        root = Path(scratch)
        root.chmod(0o777)
        platform = start_platform(root / "home", environ=environ)
        try:
            client = boto3.client(
                "lambda",
                endpoint_url=platform.url,
                region_name=platform.env["AWS_DEFAULT_REGION"],
                aws_access_key_id=platform.env["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=platform.env["AWS_SECRET_ACCESS_KEY"],
                config=Config(retries={"max_attempts": 0}),
            )
            latency_file = root / "latency.jsonl"
            client.create_function(
                FunctionName=FUNCTION,
                Runtime="python3.11",
                Role="arn:aws:iam::000000000000:role/bench",
                Handler="app.handler",
                Code={"ZipFile": make_zip({"app.py": HANDLER})},
                Environment={"Variables": {"OUT": str(latency_file)}},
            )
            client.get_waiter("function_active_v2").wait(
                FunctionName=FUNCTION, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100}
            )
            latencies = light_latencies(client, latency_file, count=light)
            port = int(platform.url.rsplit(":", 1)[1])
            cpu_before = cpu_seconds(platform.process.pid)
            accepted, refused, elapsed = asyncio.run(
                accept_rate(
                    port, platform.env["KUBELAMBDA_API_KEY"], callers=callers, seconds=seconds
                )
            )
            cpu = cpu_seconds(platform.process.pid) - cpu_before
        finally:
            stop_platform(platform.process)
    ordered = sorted(latencies)
    report = {
        "benchmark": "async_events",
        "queue": queue,
        "cpus": os.cpu_count(),
        "callers": callers,
        "accepted_per_second": round(accepted / elapsed, 1),
        "refused": refused,
        "platform_cpu_ms_per_accepted_event": round(cpu * 1000 / max(accepted, 1), 3),
        "accepted_per_platform_cpu_second": round(accepted / cpu, 1) if cpu else None,
        "light_load_events": len(ordered),
        "enqueue_to_handler_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "enqueue_to_handler_p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"async_events_{queue}.json").write_text(json.dumps(report, indent=2))
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    axes.hist([value * 1000 for value in ordered], bins=40)
    axes.set_xlabel("enqueue → handler, ms")
    axes.set_ylabel("events")
    axes.set_title(
        f"async events, {queue} queue: {report['accepted_per_second']} accepted/s "
        f"({callers} callers)"
    )
    figure.tight_layout()
    figure.savefig(out_dir / f"async_events_{queue}.png", dpi=120)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", choices=("sqlite", "kafka"), default="sqlite")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--light", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    arguments = parser.parse_args()
    main(
        arguments.queue,
        seconds=arguments.seconds,
        callers=arguments.callers,
        light=arguments.light,
        out_dir=arguments.out,
    )
