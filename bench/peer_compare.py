"""Side-by-side warm invoke throughput: kubelambda's embedded platform against a peer URL.

Run: ``.venv/bin/python bench/peer_compare.py [--peer http://127.0.0.1:8081/function/echo]
[--seconds 5] [--rounds 2] [--lead-in 2] [--out DIR]`` (results go to ``bench/results/``
by default).

It starts ``kubelambda up`` (the whole embedded platform: gateway, controller, local
instances) in a fresh home with two echo functions, ``def handler(e, c): return e``: one
with Lambda's default instance concurrency 1 and one tagged
``kubelambda.io/instance-concurrency=16``. Then, function by function, it drives the
function and the peer with the same load generator, wrk (``apt-get install wrk``; one
thread, a 100-byte JSON POST, one keep-alive connection per caller), in alternating
slices of ``--seconds``, so load from anything else on the machine falls on all of them
alike; every round visits each number of callers (1, 16, 64). Each function first gets
a warm-up slice at every concurrency: the figures are of warm instances, not of scaling
up.

The ratio to the peer is paired: each round's kubelambda slice over the peer slice next to
it, the median over rounds, and every other round the peer goes first. The host's speed
drifts by tens of percent within minutes (other tenants, thermal limits); a ratio of the
medians of slices minutes apart carries that drift, a pair of adjacent slices mostly not,
and alternating which goes first cancels what drifts within a pair. The load ratio is
paired the same way: each round's slice at 64 callers over its slice at 16, per target
(does throughput hold as callers grow), from slices a few seconds apart rather than the
minutes between two blocks of one concurrency.

Each measured slice follows an unmeasured lead-in of ``--lead-in`` seconds (2 by default)
at the same URL and callers: the slice before it drove the other target, whose processes
then held the caches, and the first seconds after it are at times slower (in one slice
of three or four, at 16 and 64 callers alike: the first second up to 28% below the
later ones, most often back within two seconds, once only after five). Without it that
recovery falls at random into either slice of a pair and widens the ratios' spread; the
figures are of the warm steady state.

It prints JSON (per target and callers: req/s, p50, p99, non-2xx answers, as the median
over rounds, and the slices in which nothing was answered, for which wrk counts no error;
kubelambda's CPU time per request split into gateway, agents and runtimes; and the paired
ratio of each kubelambda configuration to the peer, and each target's load ratio, with
each round's) and saves a PNG beside it.
Without ``--peer`` it reports kubelambda's own figures. The peer is whatever URL answers
a POST with the body echoed (the issue's reference: OpenFaaS gateway → of-watchdog in
http mode → a raw-ASGI uvicorn echo, built outside this repository).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import embedded_platform
import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot  # after use(): the backend must be chosen first

CALLERS = (1, 16, 64)
PAYLOAD = (
    '{"id":12345,"name":"benchmark","payload":"abcdefghijklmnopqrstuvwxyzabcdefghijklmn","ok":1}'
)
# The platform's processes by what they do; CPU per request is reported for each.
ROLES = ("gateway", "agents", "runtimes")
# name → instance concurrency (the tag); 1 is Lambda's default.
FUNCTIONS = {"echo": 1, "echo-c16": 16}
# wrk's Lua hooks: the request, and one JSON line of the slice's figures at the end.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%(payload)s'
wrk.headers["Content-Type"] = "application/json"
%(auth)s
done = function(summary, latency, requests)
  local failed = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format('WRK {"requests": %%d, "seconds": %%f, "failed": %%d, ' ..
    '"p50_ms": %%f, "p99_ms": %%f}\\n', summary.requests, summary.duration / 1e6, failed,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


@dataclass(frozen=True, slots=True)
class Slice:
    """One wrk run against one URL."""

    rps: float
    p50_ms: float
    p99_ms: float
    failed: int
    cpu_us_per_request: dict[str, float]


@dataclass(frozen=True, slots=True)
class Platform:
    """The running ``kubelambda up``: its process, invoke URLs and bearer key."""

    process: subprocess.Popen[str]
    urls: dict[str, str]
    api_key: str


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", help="a URL that echoes a POSTed body (e.g. OpenFaaS)")
    # Whole seconds: wrk takes no fraction of one.
    parser.add_argument("--seconds", type=int, default=5, help="length of each slice")
    parser.add_argument("--rounds", type=int, default=2, help="slices per target and callers")
    parser.add_argument(
        "--lead-in",
        type=int,
        default=2,
        help="unmeasured seconds of the same load before each slice (0: none)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.seconds < 1 or args.rounds < 1 or args.lead_in < 0:
        parser.error("--seconds and --rounds must be at least 1, --lead-in at least 0")
    if shutil.which("wrk") is None:
        print("peer_compare: needs wrk on PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="kl-peer-bench-") as scratch,
        _platform(Path(scratch)) as platform,
    ):
        results, round_ratios, load_ratios = _measure(
            platform,
            Path(scratch),
            peer=args.peer,
            seconds=args.seconds,
            rounds=args.rounds,
            lead_in=args.lead_in,
        )
    report = {
        "benchmark": "peer_compare",
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "load_generator": "wrk -t1"},
        "peer": args.peer,
        "seconds_per_slice": args.seconds,
        "lead_in_seconds": args.lead_in,
        "rounds": args.rounds,
        "results": results,
        "ratios": {
            name: {callers: _median_ratio(rounds) for callers, rounds in by_callers.items()}
            for name, by_callers in round_ratios.items()
        },
        "round_ratios": round_ratios,
        f"load_ratios_{CALLERS[-1]}_over_{CALLERS[-2]}": {
            target: _median_ratio(rounds) for target, rounds in load_ratios.items()
        },
        "round_load_ratios": load_ratios,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer_compare.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, args.out / "peer_compare.png")
    print(json.dumps(report, indent=2))
    return 0


@contextlib.contextmanager
def _platform(scratch: Path) -> Iterator[Platform]:
    """``kubelambda up`` on a free port in a fresh home, with the echo functions Active."""
    try:
        with embedded_platform.running(scratch) as up:
            _create_functions(up.lambda_client())
            urls = {name: up.invoke_url(name) for name in FUNCTIONS}
            yield Platform(up.process, urls, up.api_key)
    finally:
        log = scratch / embedded_platform.LOG_NAME
        throttled = log.read_text().count("activator throttled") if log.exists() else 0
        if throttled:
            print(f"peer_compare: the gateway throttled {throttled} times", file=sys.stderr)


def _create_functions(client: Any) -> None:
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as archive:
        archive.writestr("echo.py", "def handler(event, context):\n    return event\n")
    for name, concurrency in FUNCTIONS.items():
        client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role="arn:aws:iam::123456789012:role/bench",
            Handler="echo.handler",
            Code={"ZipFile": package.getvalue()},
            Tags={embedded_platform.INSTANCE_CONCURRENCY_TAG: str(concurrency)}
            if concurrency != 1
            else {},
        )
        client.get_waiter("function_active_v2").wait(FunctionName=name)


def _measure(
    platform: Platform,
    scratch: Path,
    *,
    peer: str | None,
    seconds: int,
    rounds: int,
    lead_in: int,
) -> tuple[
    dict[str, dict[str, dict[str, float]]],
    dict[str, dict[str, list[float | None]]],
    dict[str, list[float | None]],
]:
    """One phase per function (each alone on the host's budget, as a user would run
    it), its slices alternating with the peer's. Returns the summaries per target and
    callers, with a peer each round's ratio per function and callers, and each round's
    load ratio per target (``_load_ratios``)."""
    kubelambda_script = _script(
        scratch, f'wrk.headers["Authorization"] = "Bearer {platform.api_key}"'
    )
    peer_script = _script(scratch, "")
    results: dict[str, dict[str, dict[str, float]]] = {}
    round_ratios: dict[str, dict[str, list[float | None]]] = {}
    load_ratios: dict[str, list[float | None]] = {}
    for name, url in platform.urls.items():
        targets: dict[str, tuple[str, Path, Platform | None]] = {
            f"kubelambda:{name}": (url, kubelambda_script, platform)
        }
        if peer:
            targets[f"peer:{name}"] = (peer, peer_script, None)
        for callers in CALLERS:
            for target_url, script, _ in targets.values():
                # Warm-up at this concurrency: the autoscaler settles, caches fill.
                _wrk(target_url, script, callers=callers, seconds=min(seconds, 3), owner=None)
        # A round visits every concurrency, so the slices compared across concurrencies
        # are as close in time as those compared across targets.
        runs: dict[str, dict[int, list[Slice]]] = {
            target: {callers: [] for callers in CALLERS} for target in targets
        }
        for round_index in range(rounds):
            order = list(targets.items())
            for callers in CALLERS:
                for target, (target_url, script, owner) in (
                    order if round_index % 2 == 0 else reversed(order)
                ):
                    if lead_in > 0:
                        _wrk(target_url, script, callers=callers, seconds=lead_in, owner=None)
                    runs[target][callers].append(
                        _wrk(target_url, script, callers=callers, seconds=seconds, owner=owner)
                    )
            print(f"peer_compare: {name} round {round_index + 1} done", file=sys.stderr, flush=True)
        for target, by_callers in runs.items():
            results[target] = {str(c): _summary(slices) for c, slices in by_callers.items()}
            load_ratios[target] = _load_ratios(by_callers)
        if peer:
            round_ratios[name] = {
                str(callers): _paired_ratios(
                    runs[f"kubelambda:{name}"][callers], runs[f"peer:{name}"][callers]
                )
                for callers in CALLERS
            }
    return results, round_ratios, load_ratios


def _script(scratch: Path, auth: str) -> Path:
    path = scratch / f"wrk-{len(auth)}.lua"
    path.write_text(WRK_SCRIPT % {"payload": PAYLOAD, "auth": auth})
    return path


def _wrk(url: str, script: Path, *, callers: int, seconds: int, owner: Platform | None) -> Slice:
    """One slice; with ``owner``, also the platform's CPU time per request by role."""
    before = _processes(owner.process.pid) if owner else {}
    done = subprocess.run(
        ["wrk", "-t1", f"-c{callers}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    after = _processes(owner.process.pid) if owner else {}
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    figures = json.loads(line.removeprefix("WRK "))
    if not figures["requests"]:
        print(
            f"peer_compare: {url} answered nothing in {seconds} s with {callers} callers",
            file=sys.stderr,
        )
    requests = max(1, figures["requests"])
    cpu = {
        role: round(cpu_seconds / requests * 1e6, 1)
        for role, cpu_seconds in _cpu_growth(before, after).items()
    }
    return Slice(
        rps=figures["requests"] / figures["seconds"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        failed=figures["failed"],
        cpu_us_per_request=cpu,
    )


@dataclass(frozen=True, slots=True)
class _Process:
    """One of the platform's processes at one moment, its CPU times in seconds."""

    parent: int
    role: str
    own: float
    reaped: float  # of the children it has waited for (cutime, cstime)


def _processes(root: int) -> dict[int, _Process]:
    """The platform process and its descendants, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[str, list[str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = raw.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        stats[int(entry)] = (command, fields)
    processes: dict[int, _Process] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, ()))
        if pid not in stats:
            continue
        command, fields = stats[pid]
        processes[pid] = _Process(
            parent=int(fields[1]),
            role=_role(pid, command, root),
            own=(int(fields[11]) + int(fields[12])) / tick,
            reaped=(int(fields[13]) + int(fields[14])) / tick,
        )
    return processes


def _cpu_growth(before: dict[int, _Process], after: dict[int, _Process]) -> dict[str, float]:
    """CPU seconds by role from one snapshot to the next. What a process has reaped ran as
    its children, so it counts in their role (an agent's children are runtimes, the agent
    zygote's are agents): an instance stopped in between (a scale-down after a busier
    slice) moves its time into its parent's reaped time and stays in its role. Summing
    only the live processes would drop it and could turn a role's share negative. (An
    agent stopped with its runtimes leaves their time with the agents.)"""
    roles_of_children: dict[int, collections.Counter[str]] = {}
    for snapshot in (before, after):
        for process in snapshot.values():
            roles_of_children.setdefault(process.parent, collections.Counter())[process.role] += 1

    def totals(snapshot: dict[int, _Process]) -> dict[str, float]:
        by_role = dict.fromkeys(ROLES, 0.0)
        for pid, process in snapshot.items():
            by_role[process.role] += process.own
            children = roles_of_children.get(pid)
            by_role[children.most_common(1)[0][0] if children else process.role] += process.reaped
        return by_role

    earlier, later = totals(before), totals(after)
    return {role: later[role] - earlier[role] for role in (ROLES if after else ())}


def _role(pid: int, command: str, root: int) -> str:
    if pid == root:
        return "gateway"
    if "python_bootstrap" in command:
        return "runtimes"
    if "agent_shim" in command or "kubelambda_agent" in command:
        return "agents"
    return "runtimes"  # a custom runtime's own process


def _summary(runs: list[Slice]) -> dict[str, float]:
    summary = {
        "rps": round(statistics.median(r.rps for r in runs), 1),
        "p50_ms": round(statistics.median(r.p50_ms for r in runs), 2),
        "p99_ms": round(statistics.median(r.p99_ms for r in runs), 2),
        "failed": sum(r.failed for r in runs),
        "unanswered_slices": sum(not r.rps for r in runs),
        "rps_min": round(min(r.rps for r in runs), 1),
        "rps_max": round(max(r.rps for r in runs), 1),
    }
    roles = runs[0].cpu_us_per_request
    for role in roles:
        summary[f"cpu_us_per_request_{role}"] = round(
            statistics.median(r.cpu_us_per_request[role] for r in runs), 1
        )
    return summary


def _paired_ratios(ours: list[Slice], peer: list[Slice]) -> list[float | None]:
    """kubelambda's req/s over the peer's, round by round (the slices of a round ran next
    to each other). None for a round in which the peer answered nothing: there is no
    ratio to a peer that was down."""
    return [
        round(mine.rps / theirs.rps, 3) if theirs.rps else None
        for mine, theirs in zip(ours, peer, strict=True)
    ]


def _load_ratios(by_callers: dict[int, list[Slice]]) -> list[float | None]:
    """A target's req/s at the most callers over its req/s at the second most, round by
    round: whether more callers still bring more throughput. None for a round whose
    lower slice answered nothing."""
    lower, higher = CALLERS[-2], CALLERS[-1]
    return [
        round(more.rps / fewer.rps, 3) if fewer.rps else None
        for fewer, more in zip(by_callers[lower], by_callers[higher], strict=True)
    ]


def _measured(rounds: list[float | None]) -> list[float]:
    """The rounds' ratios, without the rounds that have none (a slice answered nothing)."""
    return [ratio for ratio in rounds if ratio is not None]


def _median_ratio(rounds: list[float | None]) -> float | None:
    measured = _measured(rounds)
    return round(statistics.median(measured), 2) if measured else None


def _plot(report: dict[str, object], path: Path) -> None:
    results = report["results"]
    assert isinstance(results, dict)
    names = list(results)
    round_ratios = report["round_ratios"]
    assert isinstance(round_ratios, dict)
    load_ratios = report["round_load_ratios"]
    assert isinstance(load_ratios, dict)
    panels = 4 if round_ratios else 3
    figure, axes = pyplot.subplots(1, panels, figsize=(5.5 * panels, 4.2))
    rps_axis, p99_axis = axes[0], axes[1]
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        xs = [i + index * width for i in range(len(CALLERS))]
        by_callers = results[name]
        rps_axis.bar(xs, [by_callers[str(c)]["rps"] for c in CALLERS], width, label=name)
        p99_axis.bar(xs, [by_callers[str(c)]["p99_ms"] for c in CALLERS], width, label=name)
    for axis, title in ((rps_axis, "warm invokes per second"), (p99_axis, "p99 latency (ms)")):
        axis.set_xticks([i + width * (len(names) - 1) / 2 for i in range(len(CALLERS))])
        axis.set_xticklabels([f"{c} callers" for c in CALLERS])
        axis.set_title(title)
        axis.grid(axis="y", alpha=0.3)
    rps_axis.legend(fontsize=8)
    if round_ratios:
        _plot_ratios(axes[2], round_ratios)
    _plot_load_ratios(axes[-1], load_ratios)
    figure.suptitle(
        f"kubelambda vs {report['peer'] or 'no peer'} (wrk -t1, {report['rounds']} rounds)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _plot_ratios(axis: Any, round_ratios: dict[str, dict[str, list[float | None]]]) -> None:
    """Each function's median paired ratio per callers, its rounds' range as a bar."""
    width = 0.8 / len(round_ratios)
    for index, (name, by_callers) in enumerate(round_ratios.items()):
        xs, medians, below, above = [], [], [], []
        for position, callers in enumerate(CALLERS):
            measured = _measured(by_callers.get(str(callers), []))
            if not measured:
                continue
            median = statistics.median(measured)
            xs.append(position + index * width)
            medians.append(median)
            below.append(median - min(measured))
            above.append(max(measured) - median)
        axis.bar(xs, medians, width, yerr=[below, above], capsize=3, label=name)
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks([i + width * (len(round_ratios) - 1) / 2 for i in range(len(CALLERS))])
    axis.set_xticklabels([f"{c} callers" for c in CALLERS])
    axis.set_title("kubelambda / peer, paired by round")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8)


def _plot_load_ratios(axis: Any, load_ratios: dict[str, list[float | None]]) -> None:
    """Each target's median load ratio, its rounds' range as a bar, in the target's
    colour of the other panels (a target without a ratio leaves a gap, not a shift)."""
    for position, rounds in enumerate(load_ratios.values()):
        measured = _measured(rounds)
        if not measured:
            continue
        median = statistics.median(measured)
        axis.bar(
            position,
            median,
            0.6,
            yerr=[[median - min(measured)], [max(measured) - median]],
            capsize=3,
            color=f"C{position}",
        )
    axis.axhline(1.0, color="black", linewidth=0.8)
    axis.set_xticks(range(len(load_ratios)))
    axis.set_xticklabels(list(load_ratios), fontsize=7, rotation=15)
    axis.set_title(f"req/s at {CALLERS[-1]} over {CALLERS[-2]} callers, paired by round")
    axis.grid(axis="y", alpha=0.3)


if __name__ == "__main__":
    sys.exit(main())
