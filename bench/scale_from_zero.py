"""Scale-from-zero latency in embedded mode: poke → instance ready → first invoke answered.

Each trial creates a fresh function (a no-dependency python handler) in a real SQLite
store, waits for the package settler to make it Active, pokes a running autoscaler as
the gateway's activator does when a request finds no instance, and times the ready
endpoint (the backend's change notification) and the first invocation's answer from the
agent. The function is then deleted, which scales it to zero, and the next trial waits
until its processes are gone.

    .venv/bin/python bench/scale_from_zero.py [--trials 20] [--spare-agents 1] [--out DIR]

Prints JSON with p50/p95/max per measure, and saves it and a PNG of the trials in DIR.
``--spare-agents 0`` measures fully cold starts (no agent started ahead of need).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import statistics
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import matplotlib

from controller.autoscaler.loop import Autoscaler
from controller.backends.local import LocalProcessBackend
from controller.packages.settler import PackageSettler
from kubelambda.models import (
    DEFAULT_NAMESPACE,
    CodePackage,
    FunctionSettings,
    FunctionVersion,
    State,
)
from kubelambda.ports.catalog import Catalog
from kubelambda.store import LocalCodeStore, SqliteStore

matplotlib.use("Agg")
from matplotlib import pyplot, ticker  # after use(): the backend must be chosen first

HANDLER = "def handler(event, context):\n    return {'hello': event.get('name', 'world')}\n"


@dataclass(frozen=True)
class Trial:
    poke_to_ready_ms: float
    first_invoke_ms: float
    poke_to_answer_ms: float


async def run_trial(
    store: SqliteStore,
    autoscaler: Autoscaler,
    backend: LocalProcessBackend,
    client: httpx.AsyncClient,
    package: CodePackage,
) -> Trial:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    latest = FunctionVersion(
        namespace=DEFAULT_NAMESPACE,
        function_name=name,
        version="$LATEST",
        runtime="python3.11",
        handler="app.handler",
        role="arn:aws:iam::000000000000:role/bench",
        code_sha256=package.code_sha256,
        code_size=package.size,
        revision_id="",
        last_modified="",
        state=State.PENDING,
    )
    target = latest.target
    active = asyncio.Event()

    def settled(catalog: Catalog) -> None:
        version = catalog.versions.get(target)
        if version is not None and version.state is State.ACTIVE:
            active.set()

    unsubscribe = store.subscribe(settled)
    await store.create_function(latest, FunctionSettings(DEFAULT_NAMESPACE, name), publish=False)
    await active.wait()
    unsubscribe()
    ready = asyncio.Event()
    unsubscribe = backend.subscribe(lambda t: ready.set() if backend.endpoints(target) else None)
    await asyncio.sleep(0.05)  # let the new catalog reach the autoscaler, as it would

    poked = time.perf_counter()
    autoscaler.report("bench", target, in_flight=0, waiting=1)
    autoscaler.poke(target)
    await ready.wait()
    ready_at = time.perf_counter()
    unsubscribe()
    endpoint = backend.endpoints(target)[0]
    answer = await client.post(
        f"http://{endpoint.host}:{endpoint.port}/invoke",
        json={"name": "bench"},
        headers={
            "Kubelambda-Request-Id": str(uuid.uuid4()),
            "Kubelambda-Invoked-Function-Arn": f"arn:aws:lambda:us-east-1:000000000000:"
            f"function:{name}",
        },
    )
    answered = time.perf_counter()
    answer.raise_for_status()
    autoscaler.report("bench", target, in_flight=0, waiting=0)
    gone = asyncio.Event()
    unsubscribe = backend.subscribe(lambda t: None if backend.endpoints(target) else gone.set())
    await store.delete_function(latest.key)
    await gone.wait()
    unsubscribe()
    return Trial(
        poke_to_ready_ms=(ready_at - poked) * 1000,
        first_invoke_ms=(answered - ready_at) * 1000,
        poke_to_answer_ms=(answered - poked) * 1000,
    )


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summarise(trials: list[Trial]) -> dict[str, dict[str, float]]:
    summary = {}
    for measure in ("poke_to_ready_ms", "first_invoke_ms", "poke_to_answer_ms"):
        values = [getattr(t, measure) for t in trials]
        summary[measure] = {
            "p50": round(statistics.median(values), 1),
            "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1),
        }
    return summary


def plot(trials: list[Trial], path: Path, spare_agents: int) -> None:
    figure, axes = pyplot.subplots(figsize=(8, 4.5))
    numbers = range(1, len(trials) + 1)
    axes.plot(numbers, [t.poke_to_ready_ms for t in trials], "o-", label="poke → ready")
    axes.plot(numbers, [t.poke_to_answer_ms for t in trials], "s-", label="poke → first answer")
    axes.plot(numbers, [t.first_invoke_ms for t in trials], "^-", label="first invoke")
    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axes.set_ylabel("milliseconds")
    axes.set_title(f"scale from zero, python3.11 handler, {spare_agents} spare agent(s)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


async def measure(trials: int, *, spare_agents: int, pause: float) -> list[Trial]:
    with tempfile.TemporaryDirectory(prefix="kubelambda-bench-") as scratch:
        home = Path(scratch)
        code = LocalCodeStore(home / "code")
        package = await code.put(_zip({"app.py": HANDLER}))
        backend = LocalProcessBackend(
            home / "instances", code=code, region="us-east-1", spare_agents=spare_agents
        )
        results = []
        try:
            async with (
                SqliteStore.open(home / "state", region="us-east-1") as store,
                Autoscaler(store, backend) as autoscaler,
                httpx.AsyncClient(timeout=30.0) as client,
            ):
                settler = PackageSettler(store, code, backend, grace_seconds=3600.0)
                await settler.start()
                try:
                    for _ in range(trials):
                        # Scale-from-zero events are not back to back: leave the platform
                        # time to settle (and to top up its spare agent) between trials.
                        await asyncio.sleep(pause)
                        results.append(await run_trial(store, autoscaler, backend, client, package))
                finally:
                    await settler.aclose()
        finally:
            await backend.aclose()
    return results


def main(trials: int, out: Path, *, spare_agents: int, pause: float) -> None:
    results = asyncio.run(measure(trials, spare_agents=spare_agents, pause=pause))
    out.mkdir(parents=True, exist_ok=True)
    stem = f"scale_from_zero_spares{spare_agents}"
    plot(results, out / f"{stem}.png", spare_agents)
    report = {"trials": len(results), "spare_agents": spare_agents, **summarise(results)}
    (out / f"{stem}.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--spare-agents", type=int, default=1, help="0: every start is cold")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between trials")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    main(
        arguments.trials,
        arguments.out,
        spare_agents=arguments.spare_agents,
        pause=arguments.pause,
    )
