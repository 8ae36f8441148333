"""The Queue and TopicLog ports on Apache Kafka (aiokafka): the only package besides the
kits that talks to Kafka. The launch package builds ``KafkaSettings`` and passes it in.

    settings.py   KafkaSettings: cluster, groups, topic names, partitions, timeouts, tiers
    wire.py       QueuedEvent and TopicMessage ⇄ Kafka records (pure)
    tiers.py      which topic an event goes to, by how long it still waits (pure)
    tracker.py    which offsets may be committed when deliveries complete out of order (pure)
"""
