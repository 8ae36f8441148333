"""Topics created on first use: the events topic, the delay tiers, dead-letter and
destination topics. Called by ``Publisher`` before it sends to a topic it has not used,
and by ``KafkaQueue`` before its consumers subscribe.

Creation is idempotent (a topic that already exists is fine, whoever made it, and keeps
its own configuration). Topics get the settings' partitions and replication factor,
``min.insync.replicas`` of 2 when there are replicas enough (acks=all then means two
copies), and room for a 1 MiB payload with its headers. Delay topics are stamped by the
broker (``LogAppendTime``): their timestamps then rise with the offset in a partition,
which the timer design relies on (see ``kubelambda.kafka.timers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from kubelambda.kafka.settings import KafkaSettings

__all__ = ["TopicCreator"]

log = logging.getLogger(__name__)


class TopicCreator:
    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._delay_topics = frozenset(settings.delay_topics())
        self._known: set[str] = set()
        self._lock = asyncio.Lock()
        self._admin: AIOKafkaAdminClient | None = None

    async def ensure(self, topics: Iterable[str]) -> None:
        """Create whichever of ``topics`` this process has not made sure of yet.

        Raises the client's ``KafkaError`` when the cluster cannot be reached or refuses.
        """
        if not (missing := set(topics) - self._known):
            return
        async with self._lock:
            if not (missing := missing - self._known):
                return
            admin = await self._started()
            response = await admin.create_topics([self._new_topic(name) for name in missing])
            for name, code, message in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise for_code(code)(f"creating topic {name}: {message}")
                if code == 0:
                    log.info("event=topic_created topic=%s", name)
            self._known |= missing

    async def aclose(self) -> None:
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def _started(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=f"{self._settings.client_id}-admin",
                request_timeout_ms=int(self._settings.produce_timeout * 1000),
                **self._settings.security.client_options(),
            )
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
            self._admin = admin
        return self._admin

    def _new_topic(self, name: str) -> NewTopic:
        settings = self._settings
        configs = {
            "max.message.bytes": str(settings.max_message_bytes),
            "min.insync.replicas": str(min(2, settings.replication_factor)),
        }
        if name in self._delay_topics:
            configs["message.timestamp.type"] = "LogAppendTime"
        return NewTopic(
            name,
            settings.partitions,
            settings.replication_factor,
            topic_configs=configs,
        )
