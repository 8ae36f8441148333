"""The Queue and TopicLog ports on Apache Kafka (aiokafka): the only package besides the
kits that talks to Kafka. The launch package builds ``KafkaSettings`` and passes it in.

    settings.py   KafkaSettings: cluster, groups, topic names, partitions, timeouts, tiers
    wire.py       QueuedEvent and TopicMessage ⇄ Kafka records (pure)
    tiers.py      which topic an event goes to, by how long it still waits (pure)
    tracker.py    which offsets may be committed when deliveries complete out of order (pure)
    topics.py     topics created on first use (admin client)
    producer.py   Publisher: idempotent, acks=all, bounded sends; errors → ServiceError / 429
    clients.py    consumers as this adapter configures them; the rebalance listener
    timers.py     DelayForwarder: delay topics as durable timers without head-of-line blocking
    events.py     EventConsumer: deliveries, completions, commits, rebalances
    queue.py      KafkaQueue: the Queue port (publish, consume, complete)
    topic_log.py  KafkaTopicLog: the TopicLog port (pending, acknowledge)
"""

from kubelambda.kafka.queue import KafkaQueue
from kubelambda.kafka.settings import KafkaSettings
from kubelambda.kafka.topic_log import KafkaTopicLog

__all__ = ["KafkaQueue", "KafkaSettings", "KafkaTopicLog"]
