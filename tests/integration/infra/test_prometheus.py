"""Smoke tests of the test Prometheus: it scrapes a real endpoint, and promtool checks rules.

The scraped target is a prometheus_client HTTP server on 127.0.0.1 started here, the same
library the gateway exposes its metrics with.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import prometheus_client
import pytest

from kubelambda_testbed.process import InfraError
from kubelambda_testbed.prometheus import Prometheus

pytestmark = pytest.mark.infra

DEADLINE_SECONDS = 30.0
VALID_RULES = """\
groups:
  - name: smoke
    rules:
      - alert: SmokeValueHigh
        expr: kubelambda_testinfra_smoke_value > 100
        for: 1m
        labels: {severity: warning}
        annotations: {summary: "the smoke value is high"}
"""
BROKEN_RULES = {
    "bad PromQL": VALID_RULES.replace("> 100", "> > 100"),
    "not a rule file": "groups: [this is not a rule group]\n",
    "unknown field": VALID_RULES.replace("for: 1m", "forr: 1m"),
}


@pytest.fixture
def metrics_target() -> Iterator[tuple[str, str]]:
    """A real /metrics endpoint on 127.0.0.1 with one gauge; yields (host:port, job label)."""
    registry = prometheus_client.CollectorRegistry()
    gauge = prometheus_client.Gauge(
        "kubelambda_testinfra_smoke_value", "A value for the scrape test.", registry=registry
    )
    gauge.set(42.5)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server, thread = prometheus_client.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", f"smoke-{uuid.uuid4().hex[:12]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_scraped_value_is_returned_by_a_query(
    prometheus: Prometheus, metrics_target: tuple[str, str]
) -> None:
    target, job = metrics_target
    prometheus.scrape([target], job=job)
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        result = prometheus.query(f'kubelambda_testinfra_smoke_value{{job="{job}"}}')
        while not result and time.monotonic() < deadline:
            time.sleep(0.5)
            result = prometheus.query(f'kubelambda_testinfra_smoke_value{{job="{job}"}}')
    finally:
        prometheus.scrape([], job=job)

    assert [float(sample["value"][1]) for sample in result] == [42.5]


def test_promtool_accepts_valid_rules(prometheus: Prometheus, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(VALID_RULES)

    result = subprocess.run(
        [prometheus.promtool, "check", "rules", rules], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("text", BROKEN_RULES.values(), ids=BROKEN_RULES.keys())
def test_promtool_rejects_broken_rules(prometheus: Prometheus, tmp_path: Path, text: str) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(text)

    result = subprocess.run(
        [prometheus.promtool, "check", "rules", rules], capture_output=True, text=True, check=False
    )

    assert result.returncode != 0, result.stdout


def test_a_loaded_rule_fires_on_scraped_values(
    prometheus: Prometheus, metrics_target: tuple[str, str]
) -> None:
    target, job = metrics_target
    rules = VALID_RULES.replace("SmokeValueHigh", f"SmokeValue_{job.replace('-', '_')}")
    rules = rules.replace(
        "kubelambda_testinfra_smoke_value > 100",
        f'kubelambda_testinfra_smoke_value{{job="{job}"}} > 40',
    )
    rules = rules.replace("for: 1m", "for: 0s")
    prometheus.scrape([target], job=job)
    prometheus.load_rules(job, rules)
    try:
        query = f'ALERTS{{alertname="SmokeValue_{job.replace("-", "_")}", alertstate="firing"}}'
        deadline = time.monotonic() + DEADLINE_SECONDS
        firing = prometheus.query(query)
        while not firing and time.monotonic() < deadline:
            time.sleep(0.5)
            firing = prometheus.query(query)
    finally:
        prometheus.load_rules(job, None)
        prometheus.scrape([], job=job)

    assert [sample["metric"]["severity"] for sample in firing] == ["warning"]


def test_rules_promtool_refuses_are_not_loaded(prometheus: Prometheus) -> None:
    with pytest.raises(InfraError, match="promtool refused"):
        prometheus.load_rules("broken", BROKEN_RULES["bad PromQL"])
    assert prometheus.query("up") != []  # still serving its last good config
