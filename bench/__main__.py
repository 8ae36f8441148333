"""``make bench``: run every benchmark in turn, one process each, results in bench/results/.

Each benchmark is a standalone script that prints one JSON document and saves a PNG;
this runner only sequences them (they would distort each other if run at once on a
small machine) and collects their JSON into ``bench/results/summary.json``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
BENCHMARKS = {
    "agent_direct": ["--out", str(RESULTS)],
    "invoke_overhead": ["--out", str(RESULTS)],
    "scale_from_zero": ["--trials", "20", "--out", str(RESULTS)],
}


def main() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    summary: dict[str, object] = {}
    for name, args in BENCHMARKS.items():
        print(f"bench: {name}", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, str(BENCH_DIR / f"{name}.py"), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        summary[name] = json.loads(done.stdout)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
