"""Fixtures for the Kafka adapter's tests: settings with this test's own topics and groups,
and an event factory."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from kafka_helpers import delete_topics, unique

from kubelambda.kafka import KafkaSettings
from kubelambda.models import FunctionKey
from kubelambda.ports.queue import QueuedEvent


@pytest.fixture
async def settings(kafka_bootstrap: str) -> AsyncIterator[KafkaSettings]:
    """Settings with this test's own topics and groups; one partition, so offsets are
    predictable. Topics named with ``topic_prefix`` are deleted afterwards."""
    settings = KafkaSettings(
        bootstrap_servers=kafka_bootstrap,
        client_id=unique("test"),
        group_id=unique("dispatcher"),
        topic_log_group_id=unique("dlq-reader"),
        topic_prefix=unique("kl"),
        partitions=1,
    )
    yield settings
    await delete_topics(kafka_bootstrap, prefix=settings.topic_prefix)


@pytest.fixture
def make_event() -> Callable[..., QueuedEvent]:
    def make(
        *, not_before: float = 0.0, payload: bytes = b'{"n": 1}', function: str = "hello"
    ) -> QueuedEvent:
        return QueuedEvent(
            request_id=str(uuid.uuid4()),
            function=FunctionKey("default", function),
            qualifier=None,
            payload=payload,
            accepted_at=1_764_600_000.0,
            not_before=not_before,
        )

    return make
