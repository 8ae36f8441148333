"""The record format of queued events and topic messages (kubelambda.kafka.wire)."""

from __future__ import annotations

import json

import pytest

from kubelambda.kafka import wire
from kubelambda.models import FunctionKey
from kubelambda.ports.queue import QueuedEvent, TopicMessage

EVENT = QueuedEvent(
    request_id="5f0c1a9e-1b7e-4a53-9c8e-0f6d3c2b1a00",
    function=FunctionKey("team-a", "hello"),
    qualifier="live",
    payload=b'{"n": 1}\x00\xff',
    accepted_at=1_764_600_000.125,
    attempt=2,
    not_before=1_764_600_060.5,
    postponements=3,
)


def test_event_round_trips_every_field() -> None:
    record = wire.encode_event(EVENT, topic="kubelambda-events")

    assert wire.decode_event(record.value, record.headers) == EVENT


def test_event_record_is_keyed_by_function_with_the_raw_payload_as_value() -> None:
    record = wire.encode_event(EVENT, topic="kubelambda-events")

    assert (record.topic, record.key, record.value) == (
        "kubelambda-events",
        b"team-a/hello",
        EVENT.payload,
    )
    [(name, header)] = record.headers
    assert name == wire.EVENT_HEADER
    assert json.loads(header)["v"] == wire.FORMAT_VERSION


def test_unqualified_event_with_empty_payload_round_trips() -> None:
    event = QueuedEvent("r", FunctionKey("default", "f"), None, b"", accepted_at=1.0)
    record = wire.encode_event(event, topic="t")

    assert wire.decode_event(record.value, record.headers) == event


def test_a_field_added_later_takes_its_default_when_missing() -> None:
    record = wire.encode_event(EVENT, topic="t")
    meta = json.loads(record.headers[0][1])
    del meta["postponements"]

    decoded = wire.decode_event(record.value, [(wire.EVENT_HEADER, json.dumps(meta).encode())])

    assert decoded.postponements == 0


def test_unknown_fields_are_ignored() -> None:
    record = wire.encode_event(EVENT, topic="t")
    meta = json.loads(record.headers[0][1]) | {"added_later": True}

    decoded = wire.decode_event(record.value, [(wire.EVENT_HEADER, json.dumps(meta).encode())])

    assert decoded == EVENT


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([], "no kubelambda-event header"),
        ([(wire.EVENT_HEADER, b"{not json")], "not JSON"),
        ([(wire.EVENT_HEADER, b'{"v":2}')], "unknown event format"),
        ([(wire.EVENT_HEADER, b"[1]")], "unknown event format"),
        ([(wire.EVENT_HEADER, b'{"v":1,"request_id":"r"}')], "malformed"),
        (
            [
                (
                    wire.EVENT_HEADER,
                    b'{"v":1,"request_id":"r","namespace":"n","function":"f","qualifier":null,'
                    b'"accepted_at":"soon","attempt":1,"not_before":0}',
                )
            ],
            "malformed",
        ),
    ],
)
def test_unreadable_records_raise_wire_error(
    headers: list[tuple[str, bytes]], message: str
) -> None:
    with pytest.raises(wire.WireError, match=message):
        wire.decode_event(b"", headers)


def test_topic_message_round_trips() -> None:
    message = TopicMessage(
        value=b'{"x": 1}',
        headers={"RequestID": "r-1", "ErrorCode": "200", "ErrorMessage": "boom ünïcode"},
        key="default/hello",
    )
    record = wire.encode_message("kubelambda-dlq.hello", message)

    assert record.topic == "kubelambda-dlq.hello"
    assert wire.decode_message(record.key, record.value, record.headers) == message


def test_topic_message_without_key_has_no_record_key() -> None:
    record = wire.encode_message("t", TopicMessage(value=b"v"))

    assert (record.key, record.headers) == (None, ())
