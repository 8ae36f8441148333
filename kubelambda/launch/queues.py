"""Opens the event queue a process uses: on Kafka when a bootstrap is set, else SQLite.

Called by ``embedded.run`` and by ``kubelambda dlq``. Yields the ``Queue`` and the
``TopicLog`` over the same storage (one SQLite file, or one Kafka cluster under the
installation's topic prefix), closed when the context exits.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from kubelambda.kafka.queue import KafkaQueue
from kubelambda.kafka.settings import KafkaSecurity, KafkaSettings
from kubelambda.kafka.topic_log import KafkaTopicLog
from kubelambda.launch.settings import PlatformSettings
from kubelambda.ports.queue import Queue, TopicLog
from kubelambda.store.queue import SqliteQueue

__all__ = ["EventQueues", "open_queue"]


@dataclass(frozen=True, slots=True)
class EventQueues:
    queue: Queue
    topics: TopicLog


@contextlib.asynccontextmanager
async def open_queue(
    settings: PlatformSettings, *, home_locked: bool = False
) -> AsyncIterator[EventQueues]:
    """``home_locked``: the caller holds the home's lock, so it is the only platform on
    this home and its SQLite queue's one consumer; leases left in the file are a killed
    run's, and are given back at once rather than when they expire."""
    if settings.kafka_bootstrap:
        kafka = kafka_settings(settings, settings.kafka_bootstrap)
        async with KafkaQueue(kafka) as queue:
            yield EventQueues(queue, KafkaTopicLog(kafka))
        return
    async with SqliteQueue.open(settings.home, reclaim_leases=home_locked) as local:
        yield EventQueues(local, local)


def kafka_settings(settings: PlatformSettings, bootstrap: str) -> KafkaSettings:
    """One installation's topics and consumer groups, all under its topic prefix, so
    several installations can share a cluster."""
    prefix = settings.kafka_topic_prefix
    return KafkaSettings(
        bootstrap_servers=bootstrap,
        client_id=prefix,
        group_id=f"{prefix}-dispatcher",
        topic_log_group_id=f"{prefix}-dlq-reader",
        topic_prefix=prefix,
        partitions=settings.kafka_partitions,
        replication_factor=settings.kafka_replication_factor,
        security=KafkaSecurity(
            protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=(
                settings.kafka_sasl_password.get_secret_value()
                if settings.kafka_sasl_password
                else None
            ),
            ssl_cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        ),
    )
