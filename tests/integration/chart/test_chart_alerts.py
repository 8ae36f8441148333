"""The chart's alerts and dashboard with the real promtool: the alert rules check clean,
every alert's unit tests (alert_tests/, one file per alert: it fires, and it stays quiet)
pass, and every dashboard query is valid PromQL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from kubelambda_testbed.prometheus import Prometheus
from tests import chart_files

ALERT_TESTS = sorted((Path(__file__).parent / "alert_tests").glob("*.yaml"))
# Grafana's variables, as a dashboard user would have them set.
DASHBOARD_VARIABLES = {
    "$__rate_interval": "5m",
    "$namespace": ".*",
    "$function": ".*",
    "$platform_namespace": ".*",
}


def promtool(prometheus: Prometheus, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus.promtool, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_alert_rules_pass_promtool_check(prometheus: Prometheus) -> None:
    checked = promtool(prometheus, "check", "rules", chart_files.ALERTS)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(chart_files.alert_rules())} rules found" in checked.stdout


@pytest.mark.parametrize("path", ALERT_TESTS, ids=[path.stem for path in ALERT_TESTS])
def test_alert_unit_tests_pass(prometheus: Prometheus, path: Path) -> None:
    tested = promtool(prometheus, "test", "rules", path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_dashboard_queries_are_valid_promql(prometheus: Prometheus, tmp_path: Path) -> None:
    # promtool parses PromQL only inside rules: each query becomes a recording rule.
    pattern = re.compile("|".join(re.escape(name) for name in DASHBOARD_VARIABLES))
    rules = [
        {
            "record": f"kubelambda_dashboard:query_{number}",
            "expr": pattern.sub(lambda found: DASHBOARD_VARIABLES[found.group()], query),
        }
        for number, (_, query) in enumerate(chart_files.dashboard_queries())
    ]
    rule_file = tmp_path / "dashboard-queries.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    checked = promtool(prometheus, "check", "rules", rule_file)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
