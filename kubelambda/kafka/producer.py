"""The one producer of a process: sends records and returns only once Kafka has them.

``KafkaQueue.publish`` (the gateway's 202), ``KafkaQueue.complete`` (the dispatcher's
follow-ups) and the delay forwarders all send through ``Publisher.send``, which:

- starts the producer on first use, so a process comes up while Kafka is down and
  answers its callers with errors until Kafka is back;
- creates topics it has not used yet (``TopicCreator``);
- sends with an idempotent producer and acks=all, and waits for every acknowledgement;
- bounds all of that by ``produce_timeout``: a failure or a timeout raises
  ``ServiceError``, never returns normally. A record whose acknowledgement timed out may
  still be written later (the producer keeps retrying it): the caller got an error and may
  retry, so such an event can run twice, never zero times;
- throttles (``TooManyRequests``) past ``max_in_flight`` records awaiting an
  acknowledgement. aiokafka bounds its buffer per partition only, by waiting, so the
  bound that turns into a 429 is kept here;
- replaces a producer the broker no longer takes records from (``_PRODUCER_LOST``), so
  an outage ends in errors for its duration, not in errors until the process restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId

from kubelambda import errors
from kubelambda.kafka.settings import KafkaSettings
from kubelambda.kafka.topics import TopicCreator
from kubelambda.kafka.wire import OutgoingRecord

__all__ = ["QUEUE_FULL_REASON", "Publisher"]

log = logging.getLogger(__name__)

QUEUE_FULL_REASON = "AsyncQueueBufferFull"

# The broker refuses every later record of a producer whose sequence numbers no longer
# follow on from what it holds (a batch numbered before an outage never reached it), or
# whose id it fenced or forgot; aiokafka does not recover from these by itself, while a
# new producer, with a new id, is accepted at once.
_PRODUCER_LOST = (OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId)


class Publisher:
    def __init__(self, settings: KafkaSettings, topics: TopicCreator) -> None:
        self._settings = settings
        self._topics = topics
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._in_flight = 0
        self._stopping: set[asyncio.Task[None]] = set()

    async def send(self, records: Sequence[OutgoingRecord]) -> None:
        """Return once every record is acknowledged by all in-sync replicas.

        Raises ``TooManyRequests`` when too many records already await acknowledgement, and
        ``ServiceError`` when Kafka fails or does not answer within ``produce_timeout``.
        """
        if not records:
            return
        if self._in_flight + len(records) > self._settings.max_in_flight:
            raise errors.TooManyRequests(
                "The asynchronous invocation queue is full.",
                reason=QUEUE_FULL_REASON,
                retry_after=self._settings.produce_timeout,
            )
        self._in_flight += len(records)
        try:
            async with asyncio.timeout(self._settings.produce_timeout):
                await self._send(records)
        except TimeoutError as exc:
            raise errors.ServiceError(
                f"Kafka did not acknowledge within {self._settings.produce_timeout:g} s"
            ) from exc
        except KafkaError as exc:
            raise errors.ServiceError(f"Kafka refused the event: {exc}") from exc
        finally:
            self._in_flight -= len(records)

    async def aclose(self) -> None:
        """Flush and stop the producer (records already sent are waited for)."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._stopping:
            await asyncio.wait(self._stopping)

    async def _send(self, records: Sequence[OutgoingRecord]) -> None:
        producer = await self._started()
        await self._topics.ensure({record.topic for record in records})
        acknowledgements = [
            await producer.send(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            )
            for record in records
        ]
        # Every outcome is retrieved, so no failed future is left unobserved.
        outcomes = await asyncio.gather(*acknowledgements, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, _PRODUCER_LOST):
                self._replace(producer, outcome)
            if isinstance(outcome, BaseException):
                raise outcome

    def _replace(self, producer: AIOKafkaProducer, error: BaseException) -> None:
        """The next send starts a new producer; ``producer`` stops meanwhile, failing what
        it still holds (its senders get errors). Once, for all that met the same error."""
        if self._producer is None or self._producer is not producer:
            return  # replaced already, by a sender that met the same error
        self._producer = None
        log.warning("event=producer_replaced error=%s", error)
        task = asyncio.create_task(producer.stop())
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _started(self) -> AIOKafkaProducer:
        async with self._start_lock:
            if self._producer is None:
                settings = self._settings
                producer = AIOKafkaProducer(
                    bootstrap_servers=settings.bootstrap_servers,
                    client_id=settings.client_id,
                    acks="all",
                    enable_idempotence=True,
                    request_timeout_ms=int(settings.produce_timeout * 1000),
                    max_request_size=settings.max_message_bytes,
                    max_batch_size=settings.batch_bytes,
                    **settings.security.client_options(),
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                log.info("event=producer_started bootstrap=%s", settings.bootstrap_servers)
                self._producer = producer
        return self._producer
