"""``make bench``: run every benchmark in turn, one process each, results in bench/results/.

Each benchmark is a standalone script that saves its JSON and a PNG in the results
directory; this runner only sequences them (they would distort each other if run at once
on a small machine) and collects their JSON into ``bench/results/summary.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
# name → (script, arguments, the JSON file it leaves in RESULTS)
BENCHMARKS = {
    "agent_direct": ("agent_direct", [], "agent_direct"),
    "invoke_overhead": ("invoke_overhead", [], "invoke_overhead"),
    # Back to back and after a pause (spare agents topped up), both in one run.
    "scale_from_zero": ("scale_from_zero", [], "scale_from_zero"),
    "async_events": ("async_events", ["--queue", "sqlite"], "async_events_sqlite"),
    # kubelambda's own figures; run it by hand with --peer URL for the side-by-side ratios.
    "peer_compare": ("peer_compare", [], "peer_compare"),
}


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {}
    for name, (script, args, result) in BENCHMARKS.items():
        print(f"bench: {name}", file=sys.stderr, flush=True)
        command = [sys.executable, str(BENCH_DIR / f"{script}.py"), *args, "--out", str(RESULTS)]
        if subprocess.run(command, stdout=subprocess.DEVNULL, check=False).returncode != 0:
            print(f"bench: {name} failed", file=sys.stderr)
            return 1
        summary[name] = json.loads((RESULTS / f"{result}.json").read_text())
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
