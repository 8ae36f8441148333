"""Prometheus for the integration tests: Debian's binary, our own config, on 127.0.0.1.

Called by `python -m kubelambda_testbed` and by the `prometheus` fixture. `up` installs Debian's
`prometheus` package when the binary is missing (the package's own service is not used: there is
no systemd here, and the tests need their own config), then runs `/usr/bin/prometheus` with a
1 s scrape interval and the lifecycle API on. `scrape(...)` points a job at targets by rewriting
the config and POSTing /-/reload (`scrape_with(...)` takes a whole scrape config instead, e.g.
Kubernetes service discovery); `load_rules(...)` adds or removes a rule file, whose alerts
Prometheus then evaluates every second; `query(...)` runs an instant PromQL query. `promtool`
(for rule checks) is exported as PROMTOOL.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from kubelambda_testbed import process

__all__ = [
    "PROMETHEUS",
    "PROMTOOL",
    "Prometheus",
    "down",
    "env",
    "install",
    "is_up",
    "load_rules",
    "scrape",
    "scrape_with",
    "up",
]

log = logging.getLogger(__name__)

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
PACKAGE = "prometheus"
INTERVAL = "1s"
START_TIMEOUT_SECONDS = 60.0
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Prometheus:
    """A running test Prometheus, as the `prometheus` fixture hands it to tests."""

    url: str
    state_dir: Path
    promtool: Path = PROMTOOL

    def scrape(self, targets: list[str], job: str) -> None:
        scrape(self.state_dir, targets, job)

    def scrape_with(self, job: str, config: dict[str, Any] | None) -> None:
        scrape_with(self.state_dir, job, config)

    def load_rules(self, name: str, rules: str | None) -> None:
        load_rules(self.state_dir, name, rules)

    def query(self, promql: str) -> list[dict[str, Any]]:
        return query(self.url, promql)


def up(state_dir: Path, cache_dir: Path) -> dict[str, str]:
    """Start Prometheus unless it is running; return PROMETHEUS_URL and PROMTOOL."""
    install()
    home = _home(state_dir)
    with process.locked(_lock(state_dir)):
        daemon = _daemon(home)
        if daemon.is_running():
            log.info("event=already-running component=prometheus pid=%s", daemon.pid())
            return env(state_dir, cache_dir)
        port = process.persistent_ports(home / "ports.json", ["web"])["web"]
        config = _write_config(home, _jobs(home))
        started = time.monotonic()
        daemon.start(
            [
                str(PROMETHEUS),
                f"--config.file={config}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
            ],
            cwd=home,
        )
        url = _url(port)
        try:
            process.wait_until(
                lambda: _ready(url), what="/-/ready", daemon=daemon, timeout=START_TIMEOUT_SECONDS
            )
        except process.InfraError:
            # A server that never became ready is not left running half-started.
            daemon.stop()
            raise
        log.info(
            "event=ready component=prometheus url=%s seconds=%.1f", url, time.monotonic() - started
        )
        return _env(url)


def env(state_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of the running Prometheus; InfraError if it is not running."""
    return _env(_running_url(_home(state_dir)))


def down(state_dir: Path) -> None:
    """Stop Prometheus and remove its state (config, data, logs, port)."""
    home = _home(state_dir)
    if not home.exists():
        return
    with process.locked(_lock(state_dir)):
        _daemon(home).stop()
        shutil.rmtree(home)


def is_up(state_dir: Path) -> bool:
    return _daemon(_home(state_dir)).is_running()


def install() -> None:
    """Install Debian's prometheus package (which brings promtool) if the binary is missing."""
    if not PROMETHEUS.exists():
        process.ensure_debian_packages([PACKAGE])


def scrape(state_dir: Path, targets: list[str], job: str) -> None:
    """Make `job` scrape exactly `targets` (host:port, /metrics); an empty list removes the job.

    Returns after Prometheus has loaded the new config: /-/reload answers only then, and with
    an error status if the config was rejected.
    """
    scrape_with(
        state_dir, job, {"static_configs": [{"targets": list(targets)}]} if targets else None
    )
    log.info("event=scrape component=prometheus job=%s targets=%s", job, ",".join(targets))


def scrape_with(state_dir: Path, job: str, config: dict[str, Any] | None) -> None:
    """Make `job` scrape as `config` says (a scrape config without its job_name); `None`
    removes the job. Returns once Prometheus has loaded it, like `scrape`."""
    home = _home(state_dir)
    with process.locked(_lock(state_dir)):
        jobs = _jobs(home)
        if config:
            jobs[job] = config
        else:
            jobs.pop(job, None)
        (home / "jobs.json").write_text(json.dumps(jobs, indent=2) + "\n")
        _reload(home, jobs)


def load_rules(state_dir: Path, name: str, rules: str | None) -> None:
    """Evaluate the rule file `rules` (YAML, checked by promtool first) under `name`;
    `None` removes it. Returns once Prometheus has loaded it."""
    home = _home(state_dir)
    path = _rules_dir(home) / f"{name}.yml"
    with process.locked(_lock(state_dir)):
        if rules is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(rules)
            checked = subprocess.run(
                [str(PROMTOOL), "check", "rules", str(path)], capture_output=True, text=True
            )
            if checked.returncode != 0:
                path.unlink()
                raise process.InfraError(f"promtool refused the rules {name}: {checked.stdout}")
        _reload(home, _jobs(home))
    log.info("event=rules component=prometheus name=%s loaded=%s", name, rules is not None)


def _reload(home: Path, jobs: dict[str, dict[str, Any]]) -> None:
    _write_config(home, jobs)
    response = httpx.post(f"{_running_url(home)}/-/reload", timeout=HTTP_TIMEOUT_SECONDS)
    if response.status_code != httpx.codes.OK:
        raise process.InfraError(f"prometheus rejected its new config: {response.text}")


def query(url: str, promql: str) -> list[dict[str, Any]]:
    """Run an instant query; return the result list (vector samples, each metric and value)."""
    response = httpx.get(
        f"{url}/api/v1/query", params={"query": promql}, timeout=HTTP_TIMEOUT_SECONDS
    )
    body = response.json()
    if response.status_code != httpx.codes.OK or body.get("status") != "success":
        raise process.InfraError(f"query {promql!r} failed: {response.status_code} {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _home(state_dir: Path) -> Path:
    return state_dir / "prometheus"


def _lock(state_dir: Path) -> Path:
    # Beside the home, not in it: `down` removes the home while holding the lock.
    return state_dir / "prometheus.lock"


def _daemon(home: Path) -> process.Daemon:
    return process.Daemon(
        name="prometheus",
        pid_file=home / "prometheus.pid",
        log_file=home / "prometheus.log",
        marker=str(home / "prometheus.yml"),
    )


def _running_url(home: Path) -> str:
    if not _daemon(home).is_running():
        raise process.InfraError(
            f"prometheus is not running (state in {home}); run `make cluster-up`"
        )
    return _url(process.persistent_ports(home / "ports.json", ["web"])["web"])


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _env(url: str) -> dict[str, str]:
    return {"PROMETHEUS_URL": url, "PROMTOOL": str(PROMTOOL)}


def _jobs(home: Path) -> dict[str, dict[str, Any]]:
    try:
        jobs: dict[str, Any] = json.loads((home / "jobs.json").read_text())
    except FileNotFoundError:
        return {}
    # Jobs saved before whole configs were kept are lists of static targets.
    return {
        job: {"static_configs": [{"targets": config}]} if isinstance(config, list) else config
        for job, config in jobs.items()
    }


def _rules_dir(home: Path) -> Path:
    return home / "rules"


def _write_config(home: Path, jobs: dict[str, dict[str, Any]]) -> Path:
    # JSON is YAML, so the config needs no YAML library. Prometheus scrapes itself as well,
    # which keeps the config valid (and the server observable) when no test job is set.
    scrape_configs = [{"job_name": "prometheus", "static_configs": [{"targets": [_self(home)]}]}]
    scrape_configs += [{"job_name": job, **config} for job, config in sorted(jobs.items())]
    config = {
        "global": {
            "scrape_interval": INTERVAL,
            "scrape_timeout": INTERVAL,
            "evaluation_interval": INTERVAL,
        },
        "rule_files": [str(_rules_dir(home) / "*.yml")],
        "scrape_configs": scrape_configs,
    }
    path = home / "prometheus.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def _self(home: Path) -> str:
    return f"127.0.0.1:{process.persistent_ports(home / 'ports.json', ['web'])['web']}"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == httpx.codes.OK
    except httpx.HTTPError:
        return False
