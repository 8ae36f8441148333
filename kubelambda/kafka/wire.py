"""How queued events and topic messages look as Kafka records. Pure: no client here.

An event record is keyed by its function (``<namespace>/<name>``), so a function's events
share a partition and keep their order; its value is the raw payload, untouched (no
base64: a 1 MiB payload stays 1 MiB); one header, ``kubelambda-event``, holds everything
else as a compact JSON object with a format version::

    {"v":1,"request_id":"…","namespace":"default","function":"hello","qualifier":null,
     "accepted_at":1764600000.125,"attempt":1,"not_before":0.0,"postponements":0}

A reader accepts the versions it knows, ignores fields it does not and gives a field added
later its default when it is missing, so adding a field needs no new version; changing the
meaning of one does. The same record travels unchanged through the delay topics: only the
topic changes on the way.

A ``TopicMessage`` (dead letter, destination record) maps one to one: its key, its value
and its headers (UTF-8 values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubelambda.models import FunctionKey
from kubelambda.ports.queue import QueuedEvent, TopicMessage

__all__ = [
    "EVENT_HEADER",
    "FORMAT_VERSION",
    "OutgoingRecord",
    "WireError",
    "decode_event",
    "decode_message",
    "encode_event",
    "encode_message",
]

EVENT_HEADER = "kubelambda-event"
FORMAT_VERSION = 1

Headers = tuple[tuple[str, bytes], ...]


class WireError(ValueError):
    """A record that is not a queued event this version can read."""


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record ready for the producer."""

    topic: str
    value: bytes
    key: bytes | None
    headers: Headers = ()


def encode_event(event: QueuedEvent, *, topic: str) -> OutgoingRecord:
    meta = {
        "v": FORMAT_VERSION,
        "request_id": event.request_id,
        "namespace": event.function.namespace,
        "function": event.function.name,
        "qualifier": event.qualifier,
        "accepted_at": event.accepted_at,
        "attempt": event.attempt,
        "not_before": event.not_before,
        "postponements": event.postponements,
    }
    header = json.dumps(meta, separators=(",", ":")).encode()
    return OutgoingRecord(
        topic=topic,
        value=event.payload,
        key=str(event.function).encode(),
        headers=((EVENT_HEADER, header),),
    )


def decode_event(value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> QueuedEvent:
    """The event a record carries; ``WireError`` when it carries none this version reads."""
    raw = dict(headers).get(EVENT_HEADER)
    if raw is None:
        raise WireError(f"no {EVENT_HEADER} header")
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        raise WireError(f"{EVENT_HEADER} is not JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("v") != FORMAT_VERSION:
        raise WireError(f"unknown event format: {raw[:80]!r}")
    try:
        qualifier = meta["qualifier"]
        return QueuedEvent(
            request_id=str(meta["request_id"]),
            function=FunctionKey(str(meta["namespace"]), str(meta["function"])),
            qualifier=None if qualifier is None else str(qualifier),
            payload=value or b"",
            accepted_at=float(meta["accepted_at"]),
            attempt=int(meta["attempt"]),
            not_before=float(meta["not_before"]),
            postponements=int(meta.get("postponements", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed {EVENT_HEADER} header: {exc}") from exc


def encode_message(topic: str, message: TopicMessage) -> OutgoingRecord:
    return OutgoingRecord(
        topic=topic,
        value=message.value,
        key=None if message.key is None else message.key.encode(),
        headers=tuple((name, value.encode()) for name, value in message.headers.items()),
    )


def decode_message(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes]]
) -> TopicMessage:
    decoded: Mapping[str, str] = {name: raw.decode(errors="replace") for name, raw in headers}
    return TopicMessage(
        value=value or b"",
        headers=decoded,
        key=None if key is None else key.decode(errors="replace"),
    )
