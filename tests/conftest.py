"""Settings common to every test (unit, integration, e2e); pytest loads it first.

asyncio mode, markers, timeouts and warnings-as-errors live in pyproject.toml. What is added
here is the report header naming the test infrastructure a run talks to, so a failure report
says which broker, Prometheus and cluster were used (or that none were set).
"""

from __future__ import annotations

import os

# The real infrastructure's fixtures (Kafka, Prometheus, Kubernetes), for every suite.
pytest_plugins = ["tests.infra_fixtures"]

INFRA_VARIABLES = (
    "KAFKA_BOOTSTRAP",
    "KAFKA_BOOTSTRAP_PODS",
    "KAFKA_BOOTSTRAP_SECURE",
    "PROMETHEUS_URL",
    "KUBECONFIG",
    "KUBELAMBDA_TESTINFRA_STATE",
)


def pytest_report_header() -> list[str]:
    return [f"testbed: {name}={os.environ.get(name, '(unset)')}" for name in INFRA_VARIABLES]
