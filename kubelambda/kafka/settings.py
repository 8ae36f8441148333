"""Settings of the Kafka queue adapter, taken as a value.

The launch package builds ``KafkaSettings`` from the ``KUBELAMBDA_KAFKA_*`` variables and
passes it to ``KafkaQueue`` and ``KafkaTopicLog``; nothing here reads the environment.
Topic names derive from ``topic_prefix`` so that tests (and several installations on one
cluster) keep apart; dead-letter topics are named by ``kubelambda.names`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka.helpers import create_ssl_context

__all__ = ["DEFAULT_DELAY_TIERS", "KafkaSecurity", "KafkaSettings"]

# Seconds. Retries wait 60 and 120 s by default and backoff grows to 5 min: each of those
# is one tier, and any other delay is a short chain of hops down the tiers (90 s = 60 + 30).
DEFAULT_DELAY_TIERS = (1, 2, 5, 10, 30, 60, 120, 300)


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How every client of the adapter connects: plaintext, TLS, SASL, or SASL over TLS.
    ``ssl_cafile`` is the CA the broker's certificate must chain to (the system's CAs
    when unset)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        if self.protocol.startswith("SASL_"):
            options.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password,
            )
        return options


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the cluster is and how the adapter uses it.

    ``produce_timeout`` bounds a publish end to end (producer start, topic creation,
    acknowledgement): a caller is waiting for its 202. ``max_in_flight`` bounds the
    records waiting for an acknowledgement; past it a publish is throttled (429)
    instead of queueing without limit. ``max_message_bytes`` is set on every topic the
    adapter creates and on the producer: a 1 MiB payload plus its headers does not fit
    Kafka's default of 1 MiB per record. ``batch_bytes`` is the producer's batch size
    per partition: with aiokafka's default of 16 KiB, 512 concurrent publishes of small
    events had a p99 of 1.7 s (senders wait for a full batch to drain, a few records at a
    time); with 256 KiB, p99 was 84 ms at 15,000 publishes/s on the test broker.
    """

    bootstrap_servers: str
    client_id: str = "kubelambda"
    group_id: str = "kubelambda-dispatcher"
    topic_log_group_id: str = "kubelambda-dlq-reader"
    topic_prefix: str = "kubelambda"
    partitions: int = 6
    replication_factor: int = 1
    produce_timeout: float = 5.0
    read_timeout: float = 10.0
    max_in_flight: int = 10_000
    max_message_bytes: int = 2 * 1024 * 1024
    batch_bytes: int = 256 * 1024
    delay_tiers: tuple[int, ...] = DEFAULT_DELAY_TIERS
    security: KafkaSecurity = KafkaSecurity()

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise ValueError("bootstrap_servers is empty")
        if self.partitions < 1 or self.replication_factor < 1:
            raise ValueError("partitions and replication_factor must be at least 1")
        if self.produce_timeout <= 0 or self.read_timeout <= 0:
            raise ValueError("produce_timeout and read_timeout must be positive")
        if self.max_in_flight < 1 or self.batch_bytes < 1:
            raise ValueError("max_in_flight and batch_bytes must be at least 1")
        tiers = self.delay_tiers
        if not tiers or tiers[0] < 1 or list(tiers) != sorted(set(tiers)):
            raise ValueError(f"delay_tiers must be distinct positive seconds, ascending: {tiers}")

    @property
    def events_topic(self) -> str:
        """Events due now: the dispatcher's consumer group reads it."""
        return f"{self.topic_prefix}-events"

    @property
    def timer_group_id(self) -> str:
        """The consumer group that forwards delay-topic records when they fall due."""
        return f"{self.group_id}.timers"

    def delay_topic(self, tier: int) -> str:
        """The topic whose records wait ``tier`` seconds: ``<prefix>-delay-<tier>s``."""
        return f"{self.topic_prefix}-delay-{tier}s"

    def delay_topics(self) -> dict[str, int]:
        """Every delay topic with its tier in seconds."""
        return {self.delay_topic(tier): tier for tier in self.delay_tiers}
