"""The platform's Kafka security settings against the test broker's SASL_SSL listener.

Each test builds ``PlatformSettings`` from the ``KUBELAMBDA_KAFKA_*`` variables the Helm chart
sets and opens the queue as the gateway and the dispatcher do (``launch.queues.open_queue``):
every client behind it (producer, admin, consumers) then connects over TLS, checked against
the testbed's CA, and logs in as the broker's one user. A wrong password or a certificate from
another CA makes the operation fail at once with ``ServiceError``, with aiokafka's log naming
the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka_helpers import WAIT_SECONDS, delete_topics, take, unique

from kubelambda import errors
from kubelambda.launch.queues import EventQueues, open_queue
from kubelambda.launch.settings import PlatformSettings
from kubelambda.ports.queue import QueuedEvent, TopicMessage
from kubelambda_testbed import k8s_pki
from kubelambda_testbed.kafka import SecureListener

pytestmark = pytest.mark.infra

MakeEvent = Callable[..., QueuedEvent]
MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
# A publish gives up after the produce timeout (5 s); a refused login or handshake must not
# even take that long: the broker answers it at once.
REFUSAL_SECONDS = 5.0


@pytest.fixture
async def prefix(kafka_bootstrap: str) -> AsyncIterator[str]:
    """This test's topic prefix; its topics are deleted afterwards (through the plaintext
    listener of the same broker)."""
    prefix = unique("klsec")
    yield prefix
    await delete_topics(kafka_bootstrap, prefix=prefix)


def platform_settings(
    secure: SecureListener,
    *,
    home: Path,
    prefix: str,
    mechanism: str = "SCRAM-SHA-512",
    password: str | None = None,
    cafile: Path | None = None,
) -> PlatformSettings:
    return PlatformSettings.from_environ(
        {
            "KUBELAMBDA_HOME": str(home),
            "KUBELAMBDA_KAFKA_BOOTSTRAP": secure.bootstrap,
            "KUBELAMBDA_KAFKA_TOPIC_PREFIX": prefix,
            "KUBELAMBDA_KAFKA_PARTITIONS": "1",
            "KUBELAMBDA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KUBELAMBDA_KAFKA_SASL_MECHANISM": mechanism,
            "KUBELAMBDA_KAFKA_SASL_USERNAME": secure.username,
            "KUBELAMBDA_KAFKA_SASL_PASSWORD": password or secure.password,
            "KUBELAMBDA_KAFKA_SSL_CAFILE": str(cafile or secure.cafile),
        }
    )


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_an_event_published_over_sasl_ssl_reaches_the_dispatcher_side_consumer(
    kafka_secure: SecureListener,
    tmp_path: Path,
    prefix: str,
    mechanism: str,
    make_event: MakeEvent,
) -> None:
    settings = platform_settings(kafka_secure, home=tmp_path, prefix=prefix, mechanism=mechanism)
    event = make_event()
    dead_letter = TopicMessage(value=b'{"n": 1}', headers={"RequestID": event.request_id})
    async with open_queue(settings) as queues:
        await queues.queue.publish(event)
        deliveries = queues.queue.consume()
        try:
            [delivery] = await take(deliveries, 1)
            await queues.queue.complete(delivery, messages=[(f"{prefix}-dlq", dead_letter)])
        finally:
            await deliveries.aclose()

    assert delivery.event == event


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_the_topic_log_lists_and_acknowledges_records_over_sasl_ssl(
    kafka_secure: SecureListener,
    kafka_bootstrap: str,
    tmp_path: Path,
    prefix: str,
    mechanism: str,
) -> None:
    topic = f"{prefix}-dlq"
    messages = [TopicMessage(value=f'{{"n": {n}}}'.encode(), headers={}) for n in range(2)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for message in messages:
            await producer.send_and_wait(topic, value=message.value)
    finally:
        await producer.stop()
    settings = platform_settings(kafka_secure, home=tmp_path, prefix=prefix, mechanism=mechanism)

    async with open_queue(settings) as queues:
        pending = await queues.topics.pending(topic)
        await queues.topics.acknowledge(pending)
        remaining = await queues.topics.pending(topic)

    assert [record.message for record in pending] == messages
    assert remaining == []


async def publish(queues: EventQueues, event: QueuedEvent) -> None:
    await queues.queue.publish(event)


async def consume(queues: EventQueues, event: QueuedEvent) -> None:
    async with contextlib.aclosing(queues.queue.consume()) as deliveries:
        await anext(deliveries)


async def read_topic_log(queues: EventQueues, event: QueuedEvent) -> None:
    await queues.topics.pending("kubelambda-dlq")


def impostor_ca(directory: Path) -> Path:
    """A CA with the testbed CA's very name, but its own key: its certificate is not the one
    the broker's chains to."""
    k8s_pki.ensure_certificates(
        directory,
        (k8s_pki.Certificate("impostor", "impostor", server=True, issuer="kafka-ca"),),
    )
    return directory / "kafka-ca.crt"


@pytest.mark.parametrize(
    "operation", [publish, consume, read_topic_log], ids=["publish", "consume", "topic-log"]
)
@pytest.mark.parametrize(
    ("mistake", "cause"),
    [
        ("password", "SaslAuthenticationFailed"),
        ("ca", "CERTIFICATE_VERIFY_FAILED"),
    ],
    ids=["wrong-password", "another-ca"],
)
async def test_a_refused_login_or_handshake_fails_at_once_with_service_error(
    kafka_secure: SecureListener,
    tmp_path: Path,
    prefix: str,
    make_event: MakeEvent,
    caplog: pytest.LogCaptureFixture,
    operation: Callable[[EventQueues, QueuedEvent], Awaitable[None]],
    mistake: str,
    cause: str,
) -> None:
    settings = platform_settings(
        kafka_secure,
        home=tmp_path,
        prefix=prefix,
        password="not-the-password" if mistake == "password" else None,
        cafile=impostor_ca(tmp_path / "impostor") if mistake == "ca" else None,
    )
    caplog.set_level(logging.ERROR, logger="aiokafka")
    started = time.monotonic()
    async with open_queue(settings) as queues:
        with pytest.raises(errors.ServiceError):
            async with asyncio.timeout(WAIT_SECONDS):
                await operation(queues, make_event())
    elapsed = time.monotonic() - started

    assert elapsed < REFUSAL_SECONDS
    # The operator's log says why, right before the platform's own error.
    assert any(cause in record.getMessage() for record in caplog.records)
