"""Test infrastructure for kubelambda: Kafka, Prometheus and Kubernetes, all on 127.0.0.1.

Test harness, not product. `python -m kubelambda_testbed up|env|down` (behind `make cluster-up`,
`make cluster-env`, `make cluster-down` and `make test`) and the session fixtures in
`tests/integration/conftest.py` drive the modules here; each infrastructure module
(`kafka`, `prometheus`, `k8s`) offers the same four functions: `up`, `env`, `down`, `is_up`.

Two directories, both overridable from the environment:
- the cache (`KUBELAMBDA_TESTINFRA_CACHE`, default `~/.cache/kubelambda-testinfra`) keeps what
  was built or downloaded, in subdirectories keyed by version, across runs;
- the state (`KUBELAMBDA_TESTINFRA_STATE`, default `/tmp/kubelambda-testinfra`) keeps what
  running daemons need: configs, data, pid files, logs and the ports they listen on.

Both directories and the variables keep the harness's former name (testinfra), so what a
machine built or started before the rename is still found.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["CACHE_ENV", "STATE_ENV", "cache_dir", "state_dir"]

STATE_ENV = "KUBELAMBDA_TESTINFRA_STATE"
CACHE_ENV = "KUBELAMBDA_TESTINFRA_CACHE"


def state_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get(STATE_ENV) or "/tmp/kubelambda-testinfra")


def cache_dir(environ: Mapping[str, str]) -> Path:
    default = Path(environ.get("HOME") or Path.home()) / ".cache" / "kubelambda-testinfra"
    return Path(environ.get(CACHE_ENV) or default)
