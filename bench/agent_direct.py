"""Benchmark of the runtime agent alone, driven straight over its invoke endpoint.

Run ``python bench/agent_direct.py [--spawns 20] [--seconds 5] [--out DIR]``; it prints one
JSON document and saves it with a PNG in DIR. The measuring is standard library only; the
plot uses matplotlib.
It measures, for a no-dependency python echo handler:

- ``spawn``: spawn-to-ready (the READY_FD line) and spawn-to-first-answer, p50/p90 over N
  spawns of a fresh agent at concurrency 1;
- ``rss``: idle resident memory of the agent process alone and with its runtime;
- ``invoke``: warm invoke latency (p50/p99) and throughput at concurrency 1 and 16, one
  keep-alive connection per concurrent client, each agent sized to the concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HANDLER = "def handler(event, context):\n    return event\n"
EVENT = json.dumps({"payload": "x" * 64}).encode()
ARN = "arn:aws:lambda:us-east-1:123456789012:function:bench:$LATEST"
# The agent runs nothing for a request without its instance's token (invoke_token).
TOKEN = secrets.token_urlsafe(32)


@contextmanager
def running_agent(task_root: Path, concurrency: int) -> Iterator[tuple[int, int, float]]:
    """Start an agent; yield (pid, port, seconds from spawn to the ready line)."""
    read_fd, write_fd = os.pipe()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KUBELAMBDA_AGENT_LISTEN": "127.0.0.1:0",
        "KUBELAMBDA_AGENT_RUNTIME": "python3.11",
        "KUBELAMBDA_AGENT_CONCURRENCY": str(concurrency),
        "KUBELAMBDA_AGENT_READY_FD": str(write_fd),
        "KUBELAMBDA_AGENT_INVOKE_TOKEN": TOKEN,
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": "app.handler",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    }
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubelambda_agent"],
        env=env,
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        line = b""
        while not line.endswith(b"\n"):
            if not select.select([read_fd], [], [], 30)[0]:
                raise RuntimeError("agent did not become ready in 30 s")
            chunk = os.read(read_fd, 256)
            if not chunk:
                raise RuntimeError("agent closed the ready fd without a line")
            line += chunk
        ready_after = time.perf_counter() - began
        yield proc.pid, json.loads(line)["port"], ready_after
    finally:
        os.close(read_fd)
        proc.terminate()
        proc.wait(timeout=30)


class Connection:
    """One keep-alive HTTP/1.1 connection speaking the invoke-endpoint protocol."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.count = 0

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def invoke(self) -> int:
        self.count += 1
        self.writer.write(
            b"POST /invoke HTTP/1.1\r\nHost: agent\r\nKubelambda-Request-Id: bench-%d-%d\r\n"
            b"Kubelambda-Invoked-Function-Arn: %s\r\nKubelambda-Invoke-Token: %s\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (id(self), self.count, ARN.encode(), TOKEN.encode(), len(EVENT), EVENT)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def first_answer_after_spawn(task_root: Path) -> tuple[float, float]:
    began = time.perf_counter()
    with running_agent(task_root, 1) as (_, port, ready_after):
        conn = await Connection.open(port)
        status = await conn.invoke()
        answered_after = time.perf_counter() - began
        conn.close()
    if status != 200:
        raise RuntimeError(f"first invoke answered {status}")
    return ready_after, answered_after


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


async def warm_latency(task_root: Path, concurrency: int, seconds: float) -> dict[str, float]:
    with running_agent(task_root, concurrency) as (_, port, _):
        conns = [await Connection.open(port) for _ in range(concurrency)]
        for conn in conns:  # warm every runtime and connection once
            await conn.invoke()
        latencies: list[float] = []
        refused = 0
        deadline = time.perf_counter() + seconds

        async def client(conn: Connection) -> None:
            nonlocal refused
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                status = await conn.invoke()
                if status == 200:
                    latencies.append(time.perf_counter() - began)
                else:
                    refused += 1

        began = time.perf_counter()
        await asyncio.gather(*(client(conn) for conn in conns))
        elapsed = time.perf_counter() - began
        for conn in conns:
            conn.close()
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "refused": refused,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        task_root = Path(tmp)
        (task_root / "app.py").write_text(HANDLER)

        spawns = [await first_answer_after_spawn(task_root) for _ in range(args.spawns)]
        ready = [r * 1000 for r, _ in spawns]
        answered = [a * 1000 for _, a in spawns]

        with running_agent(task_root, 1) as (pid, _, _):
            await asyncio.sleep(1.0)  # let start-up garbage settle
            agent_kb = rss_kb(pid)
            runtime_kb = sum(rss_kb(child) for child in children(pid))

        invoke = [await warm_latency(task_root, c, args.seconds) for c in (1, 16)]

    result = {
        "spawn": {
            "spawns": args.spawns,
            "ready_p50_ms": round(statistics.median(ready), 1),
            "ready_p90_ms": round(percentile(ready, 0.9), 1),
            "first_answer_p50_ms": round(statistics.median(answered), 1),
            "first_answer_p90_ms": round(percentile(answered, 0.9), 1),
        },
        "rss": {
            "agent_mb": round(agent_kb / 1024, 1),
            "agent_with_runtime_mb": round((agent_kb + runtime_kb) / 1024, 1),
        },
        "invoke": invoke,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "agent_direct.json").write_text(json.dumps(result, indent=2) + "\n")
    save_plot(ready, answered, args.out / "agent_direct.png")
    print(json.dumps(result, indent=2))


def save_plot(ready_ms: list[float], answered_ms: list[float], path: Path) -> None:
    """Spawn-to-ready and spawn-to-first-answer per spawn (matplotlib only here: the
    measurement itself stays standard library)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4))
    spawns = range(1, len(ready_ms) + 1)
    axes.plot(spawns, ready_ms, "o-", label="spawn → ready")
    axes.plot(spawns, answered_ms, "s--", label="spawn → first answer")
    axes.set_xlabel("spawn")
    axes.set_ylabel("ms")
    axes.set_title("Runtime agent cold start (python echo handler)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


if __name__ == "__main__":
    asyncio.run(main())
