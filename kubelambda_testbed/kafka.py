"""Apache Kafka for the integration tests: single-node KRaft on 127.0.0.1, from Maven Central jars.

Called by `python -m kubelambda_testbed`, by the `kafka_bootstrap` fixtures and, for its pods
listener, by `kubelambda_testbed.k8s`. `up` downloads the broker's jars with `mvn
dependency:copy-dependencies` on `kubelambda_testbed/kafka/pom.xml` into the cache (once per Kafka
version and pom), formats the storage, starts `java … kafka.Kafka server.properties` and returns
once a real client (aiokafka's admin client) sees the broker in the cluster metadata. It also
installs Debian's `kcat`, the command-line client the acceptance checks use.

Three listeners, all bound to 127.0.0.1: `KAFKA_BOOTSTRAP` for the host, `KAFKA_BOOTSTRAP_PODS`
for pods, and `KAFKA_BOOTSTRAP_SECURE` (SASL_SSL) for the tests of the platform's TLS and SASL
settings. The pods listener is advertised at the node address (10.244.0.1) that pods can reach;
a DNAT on the node's bridge (`node_network.publish_loopback_port`, the way pods reach the
apiserver) carries it to loopback; it is added here when the node is up, and by
`kubelambda_testbed.k8s` when the node comes up after the broker.

The secure listener presents a certificate for IP 127.0.0.1 signed by a CA made here
(`KAFKA_SECURE_CAFILE`), and knows one user (`KAFKA_SECURE_USERNAME`, `KAFKA_SECURE_PASSWORD`)
who logs in with SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN. The SCRAM credentials are added when
the storage is formatted and, for data formatted before (by an older testbed), with Kafka's
ConfigCommand through the plaintext listener when the broker has started on that data. `up`
returns once the user is accepted on the secure listener. Certificates and password live in
the broker's state dir.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import os
import secrets
import shutil
import string
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]
from aiokafka.helpers import create_ssl_context  # type: ignore[import-untyped]

from kubelambda_testbed import k8s_layout, k8s_pki, node_network, process

__all__ = [
    "SecureListener",
    "cluster_id",
    "down",
    "env",
    "install",
    "is_up",
    "publish_pods_listener",
    "up",
]

log = logging.getLogger(__name__)

HERE = Path(__file__).with_suffix("")
POM = HERE / "pom.xml"
SERVER_PROPERTIES = HERE / "server.properties"
LOG4J2_PROPERTIES = HERE / "log4j2.properties"
JAVA_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0
KCAT_PACKAGE = "kcat"
PORT_NAMES = ("broker", "controller", "pods", "secure")
SECURE_USERNAME = "kubelambda"
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
BROKER_CERTIFICATE = k8s_pki.Certificate(
    "broker", "kubelambda-testinfra-kafka", ip_sans=("127.0.0.1",), server=True, issuer="kafka-ca"
)
# The keystore sits beside the unencrypted key it is made from: its password protects nothing,
# and Kafka's PKCS12 keystores merely require one.
KEYSTORE_PASSWORD = "kubelambda-testinfra"


@dataclasses.dataclass(frozen=True)
class SecureListener:
    """The SASL_SSL listener as its clients see it: where it is, the CA its certificate
    chains to, and the one user's name and password (SCRAM-SHA-512, SCRAM-SHA-256 or
    PLAIN)."""

    bootstrap: str
    cafile: Path
    username: str
    password: str = dataclasses.field(repr=False)

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> SecureListener:
        """From the variables `env` prints (KeyError when one is missing)."""
        return cls(
            bootstrap=environment["KAFKA_BOOTSTRAP_SECURE"],
            cafile=Path(environment["KAFKA_SECURE_CAFILE"]),
            username=environment["KAFKA_SECURE_USERNAME"],
            password=environment["KAFKA_SECURE_PASSWORD"],
        )

    def client_options(self) -> dict[str, Any]:
        """aiokafka's keyword arguments for SCRAM-SHA-512 over TLS as this user."""
        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": create_ssl_context(cafile=str(self.cafile)),
            "sasl_mechanism": SCRAM_MECHANISMS[0],
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


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
        _ensure_keystore(home)
        _ensure_password(home)
        secure = _secure_listener(home, ports)
        config = home / "server.properties"
        text = _config_text(home, ports, secure)
        if daemon.is_running():
            if config.read_text() == text:
                log.info("event=already-running component=kafka pid=%s", daemon.pid())
                _publish(ports)
                return _environment(ports, secure)
            log.info("event=restart component=kafka reason=config-changed pid=%s", daemon.pid())
            daemon.stop(timeout=STOP_TIMEOUT_SECONDS)
        config.write_text(text)
        classpath = f"{libs}/*"
        if not (home / "data" / "meta.properties").exists():
            _format_storage(classpath, config, secure)
            _scram_user_added(home, secure)
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
            if not _has_scram_user(home, secure):
                _add_scram_user(classpath, bootstrap, secure)
                _scram_user_added(home, secure)
            # The credential reaches the listener through the metadata log, a moment later.
            process.wait_until(
                lambda: _broker_in_metadata(secure.bootstrap, **secure.client_options()),
                what=f"the secure listener accepting {secure.username}",
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
        return _environment(ports, secure)


def env(state_dir: Path, cache_dir: Path) -> dict[str, str]:
    """The environment of the running broker (KAFKA_BOOTSTRAP, KAFKA_BOOTSTRAP_PODS,
    KAFKA_BOOTSTRAP_SECURE and the secure listener's KAFKA_SECURE_CAFILE, _USERNAME,
    _PASSWORD); InfraError if it is not running."""
    home = _home(state_dir)
    if not _daemon(home).is_running():
        raise process.InfraError(f"kafka is not running (state in {home}); run `make cluster-up`")
    ports = _ports(home)
    return _environment(ports, _secure_listener(home, ports))


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


def _environment(ports: dict[str, int], secure: SecureListener) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP": _bootstrap(ports),
        "KAFKA_BOOTSTRAP_PODS": f"{k8s_layout.NODE_IP}:{ports['pods']}",
        "KAFKA_BOOTSTRAP_SECURE": secure.bootstrap,
        "KAFKA_SECURE_CAFILE": str(secure.cafile),
        "KAFKA_SECURE_USERNAME": secure.username,
        "KAFKA_SECURE_PASSWORD": secure.password,
    }


def _pki_dir(home: Path) -> Path:
    return home / "pki"


def _ensure_keystore(home: Path) -> None:
    """The CA and the broker's certificate, and the PKCS12 keystore the listener reads."""
    pki = _pki_dir(home)
    k8s_pki.ensure_certificates(pki, (BROKER_CERTIFICATE,))
    keystore = pki / "broker.p12"
    if keystore.exists():
        return
    name, issuer = BROKER_CERTIFICATE.name, BROKER_CERTIFICATE.issuer
    partial = keystore.with_suffix(".partial")
    subprocess.run(
        [
            "openssl", "pkcs12", "-export", "-name", name,
            "-inkey", str(pki / f"{name}.key"), "-in", str(pki / f"{name}.crt"),
            "-certfile", str(pki / f"{issuer}.crt"),
            "-passout", f"pass:{KEYSTORE_PASSWORD}", "-out", str(partial),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    partial.rename(keystore)


def _password_file(home: Path) -> Path:
    return home / "secure-password"


def _ensure_password(home: Path) -> None:
    """Draw the secure listener's user password on first use; it is kept with the data."""
    password_file = _password_file(home)
    if not password_file.exists():
        password_file.touch(mode=0o600)
        # Hex: nothing to quote in the JAAS line or in the storage tool's SCRAM argument.
        password_file.write_text(secrets.token_hex(16))


def _secure_listener(home: Path, ports: dict[str, int]) -> SecureListener:
    try:
        password = _password_file(home).read_text().strip()
    except FileNotFoundError:
        raise process.InfraError(
            "the running broker predates its secure listener; "
            "`python -m kubelambda_testbed up --only kafka` restarts it with one"
        ) from None
    return SecureListener(
        bootstrap=f"127.0.0.1:{ports['secure']}",
        cafile=_pki_dir(home) / f"{BROKER_CERTIFICATE.issuer}.crt",
        username=SECURE_USERNAME,
        password=password,
    )


def _scram_arguments(secure: SecureListener) -> list[str]:
    """The storage tool's arguments that add the user's SCRAM credentials."""
    return [
        argument
        for mechanism in SCRAM_MECHANISMS
        for argument in (
            "--add-scram",
            f"{mechanism}=[name={secure.username},password={secure.password}]",
        )
    ]


def _add_scram_user(classpath: str, bootstrap: str, secure: SecureListener) -> None:
    """Add (or reset) the user's SCRAM credentials on a running broker, as kafka-configs.sh
    does; the storage of a broker formatted by an older testbed lacks them."""
    # One mechanism per request: the broker refuses to alter a user's credentials twice in one.
    for mechanism in SCRAM_MECHANISMS:
        result = subprocess.run(
            [
                _java(),
                f"-Dlog4j2.configurationFile={LOG4J2_PROPERTIES}",
                "-cp", classpath,
                "org.apache.kafka.tools.ConfigCommand",
                "--bootstrap-server", bootstrap,
                "--alter", "--entity-type", "users", "--entity-name", secure.username,
                "--add-config", f"{mechanism}=[password={secure.password}]",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise process.InfraError(
                f"adding {secure.username}'s {mechanism} credential failed:\n"
                f"{result.stdout}{result.stderr}"
            )
    log.info("event=scram-user-added component=kafka user=%s", secure.username)


def _scram_marker(home: Path) -> Path:
    # Records (as a digest) the password the storage holds SCRAM credentials for, so the
    # tool's two JVM runs happen only for storage formatted without them or with another.
    return home / "scram-user.sha256"


def _has_scram_user(home: Path, secure: SecureListener) -> bool:
    marker = _scram_marker(home)
    return marker.exists() and marker.read_text() == _digest(secure.password)


def _scram_user_added(home: Path, secure: SecureListener) -> None:
    _scram_marker(home).write_text(_digest(secure.password))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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


def _config_text(home: Path, ports: dict[str, int], secure: SecureListener) -> str:
    return string.Template(SERVER_PROPERTIES.read_text()).substitute(
        broker_port=ports["broker"],
        controller_port=ports["controller"],
        pods_port=ports["pods"],
        secure_port=ports["secure"],
        node_ip=k8s_layout.NODE_IP,
        data_dir=home / "data",
        keystore=_pki_dir(home) / "broker.p12",
        keystore_password=KEYSTORE_PASSWORD,
        username=secure.username,
        password=secure.password,
    )


def cluster_id(draw: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes in unpadded URL-safe base64, as `random-uuid`
    prints. Like Kafka's own ``Uuid.randomUuid``, a draw that starts with ``-`` (one in 64)
    is drawn again: the storage tool would take it for an option and refuse to format."""
    while (drawn := base64.urlsafe_b64encode(draw()).decode().rstrip("=")).startswith("-"):
        pass
    return drawn


def _format_storage(classpath: str, config: Path, secure: SecureListener) -> None:
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
            *_scram_arguments(secure),
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


def _broker_in_metadata(bootstrap: str, **client_options: Any) -> bool:
    return asyncio.run(_describe_cluster(bootstrap, client_options))


async def _describe_cluster(bootstrap: str, client_options: dict[str, Any]) -> bool:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=5000, **client_options
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (KafkaError, OSError) as exc:
        log.debug("event=not-ready component=kafka error=%r", exc)
        return False
    finally:
        await admin.close()
    return bool(cluster.get("brokers"))
