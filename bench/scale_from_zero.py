"""Scale from zero as a user sees it: a new function's first invoke, request to first byte.

Run: ``.venv/bin/python bench/scale_from_zero.py [--trials 20] [--gap SECONDS ...]
[--instance-concurrency N] [--out DIR]`` (results go to ``bench/results/`` by default;
``python -m bench`` runs it).

It starts ``kubelambda up`` (``embedded_platform``) with its default spare agents. Each
trial is fully cold: it creates a new python3.11 function with a no-dependency handler
(boto3; with ``--instance-concurrency``, tagged so), waits until it is Active, waits
``gap`` seconds, invokes it once on an HTTP connection opened beforehand (bearer
``KUBELAMBDA_API_KEY``), timing request sent → first byte (``getresponse()`` returns
after the status line and headers), and deletes the function. Two modes by default:
``--gap 0``, one cold start right after another (the spare agents the last one used are
still being replaced), and ``--gap 1.5``, after the platform has topped its spares up.
Each mode starts with one untimed trial, so the first timed one follows a cold start like
the rest.

Where the time goes, per trial, from the client's wall clock, the platform's log (the
backend's ``instance spawned`` / ``instance ready ... start_ms=`` lines; asctime, ms
resolution, same host) and the instance's log (the agent's ``REPORT ... Init Duration``):

- ``to_spawn_ms``: request sent → instance spawned (gateway, activator, autoscaler poke,
  backend taking a spare agent or starting one);
- ``agent_ms``: spawned → runtime process started, or, for the runtime a spare agent
  pre-started (``kubelambda_agent.prestarted``), assigned (``start_ms`` - Init Duration);
- ``runtime_init_ms``: Init Duration (interpreter start, bootstrap, handler import, until
  the runtime asks for its first event; from its assignment for a pre-started runtime,
  whose interpreter and bootstrap started before), of which
  ``process_start_to_handler_import_ms`` ends at the ``time.time()`` the handler's module
  records at import and returns;
- ``first_response_ms``: ready → first byte (total - to_spawn - start_ms).

It prints JSON (per mode: p50/p95/max of the total, the p50 of each part, every trial)
and saves it as ``scale_from_zero.json`` with a PNG of the trials and of the p50 parts.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import io
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import embedded_platform
import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot, ticker  # after use(): the backend must be chosen first

# No dependency but the clock: the module's import time is what the breakdown needs.
HANDLER = (
    "import time\n"
    "IMPORTED_AT = time.time()\n"
    "\n"
    "def handler(event, context):\n"
    "    return {'imported_at': IMPORTED_AT}\n"
)
GAPS = (0.0, 1.5)
PARTS = (
    "to_spawn_ms",
    "agent_ms",
    "process_start_to_handler_import_ms",
    "handler_import_to_init_done_ms",
    "first_response_ms",
)
_STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) "
_INIT_DURATION = re.compile(r"^REPORT RequestId: .*\tInit Duration: ([\d.]+) ms", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Trial:
    """One cold start, in milliseconds; the parts add up to ``total_ms`` (see the module
    docstring), give or take the log timestamps' millisecond."""

    total_ms: float
    to_spawn_ms: float
    start_ms: float
    agent_ms: float
    runtime_init_ms: float
    process_start_to_handler_import_ms: float
    handler_import_to_init_done_ms: float
    first_response_ms: float


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="timed cold starts per mode")
    parser.add_argument(
        "--gap",
        type=float,
        action="append",
        help=f"seconds between Active and the invoke; repeatable (default: {GAPS})",
    )
    parser.add_argument(
        "--instance-concurrency",
        type=int,
        default=1,
        help="invocations one instance runs at once (the function's tag)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    gaps = tuple(args.gap) if args.gap else GAPS
    modes: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="kl-cold-bench-") as scratch,
        embedded_platform.running(Path(scratch)) as platform,
    ):
        client = platform.lambda_client()
        package = _package()
        for gap in gaps:
            tags = {embedded_platform.INSTANCE_CONCURRENCY_TAG: str(args.instance_concurrency)}
            _trial(platform, client, package, tags, gap=gap)  # untimed: see the docstring
            trials = [_trial(platform, client, package, tags, gap=gap) for _ in range(args.trials)]
            modes[f"gap_{gap:g}s"] = _summary(trials, gap=gap)
            print(f"scale_from_zero: gap {gap:g} s done", file=sys.stderr, flush=True)
    report = {
        "benchmark": "scale_from_zero",
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count()},
        "handler": "python3.11, no dependencies",
        "instance_concurrency": args.instance_concurrency,
        "trials_per_mode": args.trials,
        "modes": modes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale_from_zero.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(modes, args.out / "scale_from_zero.png")
    print(json.dumps(report, indent=2))
    return 0


def _trial(
    platform: embedded_platform.Platform,
    client: Any,
    package: bytes,
    tags: dict[str, str],
    *,
    gap: float,
) -> Trial:
    name = f"cold-{uuid.uuid4().hex[:10]}"
    client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role="arn:aws:iam::123456789012:role/bench",
        Handler="app.handler",
        Code={"ZipFile": package},
        Tags=tags,
    )
    try:
        _wait_active(client, name)
        time.sleep(gap)
        connection = http.client.HTTPConnection(platform.base_url.removeprefix("http://"))
        connection.connect()
        sent_at = time.time()
        started = time.perf_counter()
        connection.request(
            "POST",
            f"/2015-03-31/functions/{name}/invocations",
            body=b"{}",
            headers={
                "Authorization": f"Bearer {platform.api_key}",
                "Content-Type": "application/json",
            },
        )
        response = connection.getresponse()
        total_ms = (time.perf_counter() - started) * 1000
        body = response.read()
        connection.close()
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            raise RuntimeError(f"invoke of {name} answered {response.status}: {body[:300]!r}")
        imported_at = float(json.loads(body)["imported_at"])
        return _breakdown(
            platform, name, total_ms=total_ms, sent_at=sent_at, imported_at=imported_at
        )
    finally:
        client.delete_function(FunctionName=name)


def _wait_active(client: Any, name: str) -> None:
    """Poll, not boto3's waiter: its one-second delay would be a gap of its own."""
    deadline = time.monotonic() + 30
    while client.get_function_configuration(FunctionName=name)["State"] != "Active":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not become Active in 30 s")
        time.sleep(0.01)


def _breakdown(
    platform: embedded_platform.Platform,
    name: str,
    *,
    total_ms: float,
    sent_at: float,
    imported_at: float,
) -> Trial:
    log = platform.log_path.read_text()
    spawned = re.search(
        _STAMP + rf"INFO \S+ instance spawned .*function={name} .*instance=(\w+) ",
        log,
        re.MULTILINE,
    )
    if spawned is None:
        raise RuntimeError(f"no 'instance spawned' line for {name} in {platform.log_path}")
    spawned_at = _log_time(spawned[1])
    instance = spawned[2]
    ready = re.search(rf"instance ready .*instance={instance} .*start_ms=([\d.]+)", log)
    if ready is None:
        raise RuntimeError(f"no 'instance ready' line for instance {instance}")
    start_ms = float(ready[1])
    init_ms = _init_duration(platform.home / "logs" / name / "$LATEST" / f"{instance}.log")
    to_spawn_ms = (spawned_at - sent_at) * 1000
    agent_ms = start_ms - init_ms
    runtime_started_at = spawned_at + agent_ms / 1000
    to_import_ms = (imported_at - runtime_started_at) * 1000
    return Trial(
        total_ms=total_ms,
        to_spawn_ms=to_spawn_ms,
        start_ms=start_ms,
        agent_ms=agent_ms,
        runtime_init_ms=init_ms,
        process_start_to_handler_import_ms=to_import_ms,
        handler_import_to_init_done_ms=init_ms - to_import_ms,
        first_response_ms=total_ms - to_spawn_ms - start_ms,
    )


def _log_time(stamp: str) -> float:
    """A logging asctime (local time, as this process's: the platform is its child)."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _init_duration(path: Path) -> float:
    """The REPORT line's Init Duration: the agent writes it just after the response, so
    it may not be there yet when the first byte is."""
    deadline = time.monotonic() + 5
    while True:
        found = _INIT_DURATION.search(path.read_text()) if path.exists() else None
        if found is not None:
            return float(found[1])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no REPORT line with an Init Duration in {path}")
        time.sleep(0.01)


def _package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return buffer.getvalue()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _summary(trials: list[Trial], *, gap: float) -> dict[str, Any]:
    totals = [t.total_ms for t in trials]
    return {
        "gap_seconds": gap,
        "total_ms": {
            "p50": round(statistics.median(totals), 1),
            "p95": round(_percentile(totals, 95), 1),
            "max": round(max(totals), 1),
        },
        "p50_ms": {
            part: round(statistics.median(getattr(t, part) for t in trials), 1)
            for part in ("start_ms", "runtime_init_ms", *PARTS)
        },
        "trials": [{k: round(v, 1) + 0.0 for k, v in asdict(t).items()} for t in trials],
    }


def _plot(modes: dict[str, dict[str, Any]], path: Path) -> None:
    figure, (trials_axis, parts_axis) = pyplot.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]}
    )
    for mode, summary in modes.items():
        totals = [t["total_ms"] for t in summary["trials"]]
        trials_axis.plot(range(1, len(totals) + 1), totals, "o-", label=mode)
    trials_axis.set_xlabel("trial")
    trials_axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    trials_axis.set_ylabel("request → first byte (ms)")
    trials_axis.set_title("each cold start")
    trials_axis.grid(alpha=0.3)
    trials_axis.legend(fontsize=8)
    names = list(modes)
    bottoms = [0.0] * len(names)
    for part in PARTS:
        heights = [max(0.0, modes[mode]["p50_ms"][part]) for mode in names]
        parts_axis.bar(names, heights, bottom=bottoms, label=part.removesuffix("_ms"))
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    parts_axis.set_ylabel("ms (p50 of each part)")
    parts_axis.set_title("where the time goes")
    parts_axis.grid(axis="y", alpha=0.3)
    parts_axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.suptitle("scale from zero: a new python3.11 function's first invoke")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
