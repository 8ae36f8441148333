"""The Helm chart's files as tests read them: where the chart is, the PromQL its alerts and
dashboard query, and the series names the platform exports.

Used by tests/unit/chart (pure checks of the files) and tests/integration/chart (helm,
kubectl and promtool on the same files).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from controller.metrics import ControllerMetrics
from gateway.metrics import AsyncMetrics, GatewayMetrics

__all__ = [
    "ALERTS",
    "CHART",
    "DASHBOARD",
    "PROMETHEUS_SERIES",
    "alert_rules",
    "dashboard_queries",
    "exported_series",
    "metric_names",
]

CHART = Path(__file__).resolve().parents[1] / "charts" / "kubelambda"
ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARD = CHART / "files" / "dashboard.json"
# Series Prometheus makes itself rather than scrapes: whether a target answered.
PROMETHEUS_SERIES = frozenset({"up"})

# Exposition suffixes of each metric type (prometheus_client also writes *_created).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}
# A metric name in PromQL: a word not followed by "(" (a function) and not inside quotes.
_WORD = re.compile(r'"[^"]*"|\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()')
# Words of PromQL that are not series names.
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def exported_series() -> frozenset[str]:
    """Every series name the gateway, dispatcher and controller metrics can expose."""
    registry = CollectorRegistry()
    GatewayMetrics(registry)
    AsyncMetrics(registry)
    ControllerMetrics(registry)
    return frozenset(
        f"{family.name}{suffix}"
        for family in registry.collect()
        for suffix in _SUFFIXES[family.type]
    )


def metric_names(expression: str) -> set[str]:
    """The series names a PromQL expression selects: the words left once label matchers,
    grouping lists and range durations are taken out, less functions and keywords."""
    without_labels = re.sub(r"\{[^}]*\}", "", expression)
    without_groupings = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", without_labels
    )
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_groupings)
    names = set()
    for match in _WORD.finditer(without_ranges):
        word = match.group(1)
        if word and word not in _KEYWORDS:
            names.add(word)
    return names


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules of files/alerts.yaml, in order."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every panel target in files/dashboard.json."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", ()):
            yield panel["title"], target["expr"]
