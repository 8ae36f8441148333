"""Apache Kafka for the integration tests: single-node KRaft on 127.0.0.1, from Maven Central jars.

Called by `python -m kubelambda_testbed`, by the `kafka_bootstrap` fixtures and, for its pods
listener, by `kubelambda_testbed.k8s`. `up` downloads the broker's jars with `mvn
dependency:copy-dependencies` on `kubelambda_testbed/kafka/pom.xml` into the cache (once per Kafka
version and pom), formats the storage, starts `java … kafka.Kafka server.properties` and returns
once a real client (aiokafka's admin client) sees the broker in the cluster metadata. It also
installs Debian's `kcat`, the command-line client the acceptance checks use.

Two listeners, both bound to 127.0.0.1: `KAFKA_BOOTSTRAP` for the host, and `KAFKA_BOOTSTRAP_PODS`
for pods, advertised at the node address (10.244.0.1) that pods can reach. A DNAT on the node's
bridge (`node_network.publish_loopback_port`, the way pods reach the apiserver) carries it to
loopback; it is added here when the node is up, and by `kubelambda_testbed.k8s` when the node
comes up after the broker.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import string
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from kubelambda_testbed import k8s_layout, node_network, process

__all__ = ["cluster_id", "down", "env", "install", "is_up", "publish_pods_listener", "up"]

log = logging.getLogger(__name__)

HERE = Path(__file__).with_suffix("")
POM = HERE / "pom.xml"
SERVER_PROPERTIES = HERE / "server.properties"
LOG4J2_PROPERTIES = HERE / "log4j2.properties"
JAVA_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
KCAT_PACKAGE = "kcat"
PORT_NAMES = ("broker", "controller", "pods")


def up(state_dir: Path, cache_dir: Path) -> dict[str, str]:
    """Start the broker unless it is running as configured; return its environment.

    A broker started from an older ``server.properties`` (one without a listener added
    since) is restarted on its data, keeping its ports.
    """
    libs = install(cache_dir)
    home = _home(state_dir)
    with process.locked(_lock(state_dir)):
        daemon = _daemon(home)
        ports = _ports(home)
        config = home / "server.properties"
        text = _config_text(home, ports)
        if daemon.is_running():
            if config.read_text() == text:
                log.info("event=already-running component=kafka pid=%s", daemon.pid())
                _publish(ports)
                return _environment(ports)
            log.info("event=restart component=kafka reason=config-changed pid=%s", daemon.pid())
            daemon.stop(timeout=STOP_TIMEOUT_SECONDS)
        config.write_text(text)
        classpath = f"{libs}/*"
        if not (home / "data" / "meta.properties").exists():
            _format_storage(classpath, config)
        started = time.monotonic()
        daemon.start(
            [
                _java(),
                *JAVA_OPTIONS,
                f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}",
                f"-Dkafka.logs.dir={home / 'logs'}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            cwd=home,
        )
        bootstrap = _bootstrap(ports)
        try:
            process.wait_until(
                lambda: process.port_open(ports["broker"]),
                what="the broker port",
                daemon=daemon,
                timeout=START_TIMEOUT_SECONDS,
            )
            process.wait_until(
                lambda: _broker_in_metadata(bootstrap),
                what="the broker in the cluster metadata",
                daemon=daemon,
                timeout=START_TIMEOUT_SECONDS,
            )
        except BaseException:
            # A broker that never became ready is not left running half-started, whatever
            # ended the wait (Ctrl-C and an unexpected client error included).
            daemon.stop(timeout=STOP_TIMEOUT_SECONDS)
            raise
        log.info(
            "event=ready component=kafka bootstrap=%s seconds=%.1f",
            bootstrap,
            time.monotonic() - started,
        )
        _publish(ports)
        return _environment(ports)


def env(state_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of the running broker (KAFKA_BOOTSTRAP, KAFKA_BOOTSTRAP_PODS);
    InfraError if it is not running."""
    home = _home(state_dir)
    if not _daemon(home).is_running():
        raise process.InfraError(f"kafka is not running (state in {home}); run `make cluster-up`")
    return _environment(_ports(home))


def publish_pods_listener(state_dir: Path) -> None:
    """Make the running broker's pods listener reachable from pods (the node has just come up);
    nothing to do when the broker is not running."""
    home = _home(state_dir)
    with process.locked(_lock(state_dir)):
        if _daemon(home).is_running():
            _publish(_ports(home))


def stop(state_dir: Path) -> None:
    """Stop the broker and keep its state, so ``up`` starts it again with its data (an
    outage, for the tests that need one)."""
    with process.locked(_lock(state_dir)):
        _daemon(_home(state_dir)).stop(timeout=STOP_TIMEOUT_SECONDS)


def down(state_dir: Path) -> None:
    """Stop the broker, withdraw its pods listener from the node, remove its state (data,
    config, logs, ports)."""
    home = _home(state_dir)
    if not home.exists():
        return
    with process.locked(_lock(state_dir)):
        _daemon(home).stop(timeout=STOP_TIMEOUT_SECONDS)
        if (home / "ports.json").exists():
            try:
                node_network.unpublish_loopback_port(_ports(home)["pods"])
            except (subprocess.CalledProcessError, OSError) as exc:
                raise process.InfraError(f"cannot withdraw Kafka's pods listener: {exc}") from exc
        shutil.rmtree(home)


def is_up(state_dir: Path) -> bool:
    return _daemon(_home(state_dir)).is_running()


def install(cache_dir: Path) -> Path:
    """The directory of the broker's jars, downloaded by Maven on first use; installs kcat."""
    try:
        process.ensure_debian_packages([KCAT_PACKAGE])
    except process.InfraError as exc:
        # kcat is only the acceptance checks' client; its own test reports it missing.
        log.warning("event=kcat-unavailable component=kafka error=%s", exc)
    libs = cache_dir / f"kafka-{_kafka_version()}-{_pom_digest()}" / "libs"
    if (libs / ".complete").exists():
        return libs
    if shutil.which("mvn") is None:
        raise process.InfraError("mvn is not installed; it downloads Kafka from Maven Central")
    partial = libs.with_name("libs.partial")
    shutil.rmtree(partial, ignore_errors=True)
    log.info("event=download component=kafka version=%s into=%s", _kafka_version(), libs)
    started = time.monotonic()
    # Plain `mvn`, so the repository (mirror, proxy) comes from the machine's Maven settings.
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise process.InfraError(f"mvn could not fetch Kafka:\n{result.stdout}{result.stderr}")
    (partial / ".complete").touch()
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    log.info("event=downloaded component=kafka seconds=%.1f", time.monotonic() - started)
    return libs


def _home(state_dir: Path) -> Path:
    return state_dir / "kafka"


def _lock(state_dir: Path) -> Path:
    # Beside the home, not in it: `down` removes the home while holding the lock.
    return state_dir / "kafka.lock"


def _daemon(home: Path) -> process.Daemon:
    return process.Daemon(
        name="kafka",
        pid_file=home / "kafka.pid",
        log_file=home / "kafka.log",
        marker=str(home / "server.properties"),
    )


def _ports(home: Path) -> dict[str, int]:
    return process.persistent_ports(home / "ports.json", PORT_NAMES)


def _bootstrap(ports: dict[str, int]) -> str:
    return f"127.0.0.1:{ports['broker']}"


def _environment(ports: dict[str, int]) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": _bootstrap(ports),
        "KAFKA_BOOTSTRAP_PODS": f"{k8s_layout.NODE_IP}:{ports['pods']}",
    }


def _publish(ports: dict[str, int]) -> None:
    try:
        node_network.publish_loopback_port(ports["pods"])
    except (subprocess.CalledProcessError, OSError) as exc:
        raise process.InfraError(f"cannot publish Kafka's pods listener: {exc}") from exc


def _kafka_version() -> str:
    namespace = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(POM).getroot().findtext("m:properties/m:kafka.version", namespaces=namespace)
    if not version:
        raise process.InfraError(f"{POM} names no kafka.version")
    return version


def _pom_digest() -> str:
    # The cache key includes the pom, so a changed dependency list never reuses stale jars.
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:12]


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise process.InfraError(f"no java at {java or 'PATH'}; Kafka needs Java 17")
    return java


def _config_text(home: Path, ports: dict[str, int]) -> str:
    return string.Template(SERVER_PROPERTIES.read_text()).substitute(
        broker_port=ports["broker"],
        controller_port=ports["controller"],
        pods_port=ports["pods"],
        node_ip=k8s_layout.NODE_IP,
        data_dir=home / "data",
    )


def cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes in unpadded URL-safe base64, as `random-uuid`
    prints. Like Kafka's own ``Uuid.randomUuid``, a draw that starts with ``-`` (one in 64)
    is drawn again: the storage tool would take it for an option and refuse to format."""
    while (drawn := base64.urlsafe_b64encode(draw()).decode().rstrip("=")).startswith("-"):
        pass
    return drawn


def _format_storage(classpath: str, config: Path) -> None:
    cluster = cluster_id()
    result = subprocess.run(
        [
            _java(),
            f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            cluster,
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise process.InfraError(
            f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}"
        )
    log.info("event=formatted component=kafka cluster_id=%s", cluster)


def _broker_in_metadata(bootstrap: str) -> bool:
    return asyncio.run(_describe_cluster(bootstrap))


async def _describe_cluster(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (KafkaError, OSError) as exc:
        log.debug("event=not-ready component=kafka error=%r", exc)
        return False
    finally:
        await admin.close()
    return bool(cluster.get("brokers"))
