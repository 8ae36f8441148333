"""The Helm chart's files against the platform they package: the CRDs are the platform's
own, alerts and dashboard query only series the platform exports, every alert has promtool
tests both ways, and values.yaml, values.schema.json and the README document the same keys."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelambda.kubernetes import crds
from tests import chart_files

PLATFORM_CRDS = Path(crds.__file__).parent / "crds"
ALERT_TESTS = Path(__file__).parents[2] / "integration" / "chart" / "alert_tests"
ALERT_NAMES = [rule["alert"] for rule in chart_files.alert_rules()]
DASHBOARD_QUERIES = list(chart_files.dashboard_queries())


def test_chart_ships_exactly_the_platform_crd_files() -> None:
    shipped = sorted(path.name for path in (chart_files.CHART / "crds").iterdir())
    assert shipped == sorted(crds.CRD_FILES)


@pytest.mark.parametrize("name", crds.CRD_FILES)
def test_chart_crd_is_a_copy_of_the_platform_crd(name: str) -> None:
    # kubelambda/kubernetes/crds is the source of truth: copy it over the chart's file.
    assert (chart_files.CHART / "crds" / name).read_bytes() == (PLATFORM_CRDS / name).read_bytes()


def test_metric_names_are_the_series_an_expression_selects() -> None:
    expression = (
        'sum by (namespace, le) (rate(a_bucket{job="j", le!="x"}[5m])) / on (namespace) b'
        ' > 0.5 or absent(up{job="kubelambda-gateway"}) unless histogram_quantile(0.9, c)'
    )
    assert chart_files.metric_names(expression) == {"a_bucket", "b", "up", "c"}


def test_the_platform_exports_suffixed_series() -> None:
    exported = chart_files.exported_series()
    assert {
        "kubelambda_invocations_total",
        "kubelambda_invocation_duration_seconds_bucket",
        "kubelambda_concurrent_executions",
        "kubelambda_instances_ready",
        "kubelambda_async_oldest_event_age_seconds",
    } <= exported
    assert "kubelambda_invocations" not in exported


@pytest.mark.parametrize("rule", chart_files.alert_rules(), ids=ALERT_NAMES)
def test_alert_selects_only_series_the_platform_exports(rule: dict[str, Any]) -> None:
    known = chart_files.exported_series() | chart_files.PROMETHEUS_SERIES
    names = chart_files.metric_names(rule["expr"])
    assert names, rule["expr"]
    assert names <= known, f"{rule['alert']} selects unknown series {sorted(names - known)}"


@pytest.mark.parametrize(
    "expression", [query for _, query in DASHBOARD_QUERIES], ids=[t for t, _ in DASHBOARD_QUERIES]
)
def test_dashboard_query_selects_only_series_the_platform_exports(expression: str) -> None:
    known = chart_files.exported_series() | chart_files.PROMETHEUS_SERIES
    names = chart_files.metric_names(expression)
    assert names, expression
    assert names <= known, f"unknown series {sorted(names - known)} in {expression}"


def test_dashboard_shows_what_an_sre_watches() -> None:
    shown = set().union(*(chart_files.metric_names(query) for _, query in DASHBOARD_QUERIES))
    assert {
        "kubelambda_invocations_total",
        "kubelambda_invocation_errors_total",
        "kubelambda_invocation_duration_seconds_bucket",
        "kubelambda_init_duration_seconds_count",
        "kubelambda_concurrent_executions",
        "kubelambda_async_event_age_seconds_bucket",
        "kubelambda_async_oldest_event_age_seconds",
        "kubelambda_async_events_dead_lettered_total",
    } <= shown


def _alert_cases() -> dict[str, list[bool]]:
    """Per alert, whether each of its promtool cases expects it to fire."""
    cases: dict[str, list[bool]] = {}
    for path in sorted(ALERT_TESTS.glob("*.yaml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test["alert_rule_test"]:
                cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    return cases


@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_has_promtool_cases_that_fire_and_that_do_not(alert: str) -> None:
    outcomes = _alert_cases().get(alert, [])
    assert True in outcomes, f"no promtool case in {ALERT_TESTS} expects {alert} to fire"
    assert False in outcomes, f"no promtool case in {ALERT_TESTS} expects {alert} to stay quiet"


def test_promtool_cases_test_only_alerts_that_exist() -> None:
    assert set(_alert_cases()) <= set(ALERT_NAMES)


def _leaf_keys_without_doc(lines: list[str]) -> list[str]:
    """Keys of values.yaml holding a value (not a nested block) with no `# --` comment in
    the comment block right above them."""
    undocumented = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w-]*):(.*)$", line)
        if not match or not match.group(3).strip():
            continue
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#") and "# --" not in lines[above]:
            above -= 1
        if above < 0 or "# --" not in lines[above]:
            undocumented.append(f"line {number + 1}: {line.strip()}")
    return undocumented


def test_every_value_has_a_doc_comment() -> None:
    lines = (chart_files.CHART / "values.yaml").read_text().splitlines()
    # Entries of a documented map or list (resources' requests, say) count as documented.
    block_starts = [
        n
        for n, line in enumerate(lines)
        if re.match(r"^\s*[A-Za-z][\w-]*:\s*$", line) and "# --" in lines[n - 1]
    ]
    inside_documented_block = set()
    for start in block_starts:
        indent = len(lines[start]) - len(lines[start].lstrip())
        for n in range(start + 1, len(lines)):
            if lines[n].strip() and len(lines[n]) - len(lines[n].lstrip()) <= indent:
                break
            inside_documented_block.add(f"line {n + 1}: {lines[n].strip()}")
    assert [
        key for key in _leaf_keys_without_doc(lines) if key not in inside_documented_block
    ] == []


def _schema_keys(node: dict[str, Any], definitions: dict[str, Any], prefix: str) -> set[str]:
    if "$ref" in node:
        node = definitions[node["$ref"].rsplit("/", 1)[1]]
    keys = set()
    for name, child in node.get("properties", {}).items():
        keys.add(f"{prefix}{name}")
        keys |= _schema_keys(child, definitions, f"{prefix}{name}.")
    return keys


def _value_keys(values: dict[str, Any], prefix: str) -> set[str]:
    keys = set()
    for name, value in values.items():
        keys.add(f"{prefix}{name}")
        if isinstance(value, dict):
            keys |= _value_keys(value, f"{prefix}{name}.")
    return keys


def test_schema_describes_every_value_and_nothing_else() -> None:
    schema = json.loads((chart_files.CHART / "values.schema.json").read_text())
    values = yaml.safe_load((chart_files.CHART / "values.yaml").read_text())
    # Compared down to maps whose entries are Kubernetes' or the user's own (annotations,
    # selectors, resource quantities); "global" is Helm's.
    opaque = {"podAnnotations", "nodeSelector", "affinity", "annotations", "labels", "resources"}

    def compared(keys: set[str]) -> set[str]:
        return {key for key in keys if not opaque & set(key.split(".")[:-1])}

    schema_keys = _schema_keys(schema, schema["definitions"], "") - {"global"}
    assert compared(_value_keys(values, "")) == compared(schema_keys)


def test_schema_closes_every_object_it_names_keys_of() -> None:
    schema = json.loads((chart_files.CHART / "values.schema.json").read_text())

    def open_objects(node: dict[str, Any], path: str) -> list[str]:
        found = []
        if "properties" in node and node.get("additionalProperties") is not False:
            found.append(path or "/")
        for name, child in node.get("properties", {}).items():
            found += open_objects(child, f"{path}/{name}")
        return found

    everything = [schema, *schema["definitions"].values()]
    assert [path for node in everything for path in open_objects(node, "")] == []


def test_readme_lists_every_value_with_its_default() -> None:
    values = yaml.safe_load((chart_files.CHART / "values.yaml").read_text())
    readme = (chart_files.CHART / "README.md").read_text()

    def documented(node: dict[str, Any], prefix: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, value in node.items():
            if isinstance(value, dict) and value and name != "resources":
                found |= documented(value, f"{prefix}{name}.")
            else:
                found[f"{prefix}{name}"] = value
        return found

    missing = [
        key
        for key, value in documented(values, "").items()
        if f"| `{key}` | `{json.dumps(value, separators=(', ', ': '))}` |" not in readme
    ]
    assert missing == [], "add or correct these rows of the values table in the chart README"
