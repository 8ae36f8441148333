"""Session fixtures for the real test infrastructure: Kafka, Prometheus, Kubernetes.

Loaded as a plugin by ``tests/conftest.py``, so integration and e2e tests share them.

Each fixture reuses what `python -m kubelambda_testbed up` started when the variables printed
by `python -m kubelambda_testbed env` are set (as `make test` does), and otherwise starts the part
itself through the same kubelambda_testbed modules, stopping it again at the end of the session.

A part that cannot start fails the tests that need it: always in CI (CI=true), and outside CI
too unless the developer sets KUBELAMBDA_SKIP_INFRA=1, which turns the failure into a skip
that names the cause. Nothing is skipped silently. Tests using these fixtures get the `infra`
marker, so `pytest -m "not infra"` selects the tests that need none of it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

import kubelambda_testbed
import kubelambda_testbed.kafka
import kubelambda_testbed.prometheus

SKIP_ENV = "KUBELAMBDA_SKIP_INFRA"
INFRA_FIXTURES = frozenset(
    {
        "kafka_bootstrap",
        "kafka_bootstrap_pods",
        "kafka_secure",
        "prometheus",
        "kubeconfig",
        "runtime_image",
        "platform_image",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INFRA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a single-node Kafka broker."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP"):
        yield bootstrap
        return
    with _started("Kafka", kubelambda_testbed.kafka) as environment:
        yield environment["KAFKA_BOOTSTRAP"]


@pytest.fixture(scope="session")
def kafka_bootstrap_pods(kafka_bootstrap: str) -> str:
    """host:port at which pods of the test cluster reach the same broker (its pods listener)."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_PODS"):
        return bootstrap
    environment = kubelambda_testbed.kafka.env(
        kubelambda_testbed.state_dir(os.environ), kubelambda_testbed.cache_dir(os.environ)
    )
    return environment["KAFKA_BOOTSTRAP_PODS"]


@pytest.fixture(scope="session")
def kafka_secure(kafka_bootstrap: str) -> kubelambda_testbed.kafka.SecureListener:
    """The same broker's SASL_SSL listener: bootstrap, CA file, and the user's name and
    password (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN)."""
    if os.environ.get("KAFKA_BOOTSTRAP_SECURE"):
        return kubelambda_testbed.kafka.SecureListener.from_environment(os.environ)
    environment = kubelambda_testbed.kafka.env(
        kubelambda_testbed.state_dir(os.environ), kubelambda_testbed.cache_dir(os.environ)
    )
    return kubelambda_testbed.kafka.SecureListener.from_environment(environment)


@pytest.fixture(scope="session")
def prometheus() -> Iterator[kubelambda_testbed.prometheus.Prometheus]:
    """A Prometheus scraping every second: `.url`, `.scrape(targets, job)`, `.query(promql)`."""
    state_dir = kubelambda_testbed.state_dir(os.environ)
    if url := os.environ.get("PROMETHEUS_URL"):
        promtool = Path(os.environ.get("PROMTOOL") or kubelambda_testbed.prometheus.PROMTOOL)
        yield kubelambda_testbed.prometheus.Prometheus(
            url=url, state_dir=state_dir, promtool=promtool
        )
        return
    with _started("Prometheus", kubelambda_testbed.prometheus) as environment:
        yield kubelambda_testbed.prometheus.Prometheus(
            url=environment["PROMETHEUS_URL"],
            state_dir=state_dir,
            promtool=Path(environment["PROMTOOL"]),
        )


@pytest.fixture(scope="session")
def kubeconfig() -> Iterator[Path]:
    """Path of a kubeconfig for the test cluster; kubectl and helm are on PATH."""
    # A developer's own KUBECONFIG may point at a real cluster: it is taken only together with
    # the state variable that `python -m kubelambda_testbed env` prints.
    if (path := os.environ.get("KUBECONFIG")) and os.environ.get(kubelambda_testbed.STATE_ENV):
        yield Path(path)
        return
    try:
        k8s = importlib.import_module("kubelambda_testbed.k8s")
    except ModuleNotFoundError as exc:
        _unavailable("Kubernetes", exc)
    with _started("Kubernetes", k8s) as environment:
        saved_path = os.environ["PATH"]
        os.environ["PATH"] = f"{environment['TESTINFRA_BIN_DIR']}{os.pathsep}{saved_path}"
        try:
            yield Path(environment["KUBECONFIG"])
        finally:
            os.environ["PATH"] = saved_path


@pytest.fixture(scope="session")
def runtime_image(kubeconfig: Path) -> str:
    """The function runtime image of this checkout's agent, loaded into the test node
    (built first when the cache lacks it, as `make images` does): its reference."""
    return _loaded_images()["KUBELAMBDA_RUNTIME_IMAGE"]


@pytest.fixture(scope="session")
def platform_image(kubeconfig: Path) -> str:
    """The gateway/controller/dispatcher image of this checkout, loaded into the test node
    (built first when the cache lacks it, as `make images` does): its reference."""
    return _loaded_images()["KUBELAMBDA_PLATFORM_IMAGE"]


def _loaded_images() -> dict[str, str]:
    """Load the node's images (building what the cache lacks); the cluster's variables,
    the images' references among them."""
    k8s = importlib.import_module("kubelambda_testbed.k8s")
    state_dir = kubelambda_testbed.state_dir(os.environ)
    cache_dir = kubelambda_testbed.cache_dir(os.environ)
    k8s.load_images(state_dir, cache_dir)
    environment: dict[str, str] = k8s.env(state_dir, cache_dir)
    return environment


@contextlib.contextmanager
def _started(part: str, module: ModuleType) -> Iterator[dict[str, str]]:
    """Start a part through its testbed module; stop it afterwards if it was not running."""
    state_dir, cache_dir = (
        kubelambda_testbed.state_dir(os.environ),
        kubelambda_testbed.cache_dir(os.environ),
    )
    was_up: bool = module.is_up(state_dir)
    try:
        environment: dict[str, str] = module.up(state_dir, cache_dir)
    except Exception as exc:  # whatever the cause, the outcome is the same: no infrastructure
        _unavailable(part, exc)
    try:
        yield environment
    finally:
        if not was_up:
            module.down(state_dir)


def _unavailable(part: str, exc: BaseException) -> NoReturn:
    if os.environ.get("CI") != "true" and os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{part} is unavailable ({SKIP_ENV}=1): {exc}")
    pytest.fail(
        f"{part} could not be started: {exc}\n"
        f"(outside CI, {SKIP_ENV}=1 turns this into a skip of the tests that need it)",
        pytrace=False,
    )
