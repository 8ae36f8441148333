"""The scale-signal batch survives the wire, and a malformed one is refused by name."""

from __future__ import annotations

import json

import pytest

from kubelambda.models import Target
from kubelambda.signals import wire

HELLO = Target("team-a", "hello", "$LATEST")
OTHER = Target("default", "other", "3")


def test_a_batch_round_trips() -> None:
    batch = wire.Batch(
        "gateway-a",
        {HELLO: wire.Counts(1, 2, 3, 5), OTHER: wire.Counts(0, 0, 0, 0)},
        frozenset({HELLO}),
    )
    assert wire.decode(wire.encode(batch)) == batch


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "malformed"),
        (b'{"reporter": "", "counts": [], "pokes": []}', "reporter"),
        (b'{"reporter": "g", "counts": [{"namespace": "a"}], "pokes": []}', "malformed"),
        (
            b'{"reporter": "g", "pokes": [], "counts": [{"namespace": "a", "function": "f",'
            b' "version": "1", "inFlight": -1, "waiting": 0, "peakInFlight": 0,'
            b' "peakDemand": 0}]}',
            "inFlight",
        ),
        (
            b'{"reporter": "g", "counts": [], "pokes": [{"namespace": "a", "function": "",'
            b' "version": "1"}]}',
            "target",
        ),
    ],
)
def test_a_malformed_batch_is_refused(body: bytes, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        wire.decode(body)


def test_the_token_depends_on_the_key() -> None:
    assert wire.token(b"a" * 32) != wire.token(b"b" * 32)
    assert json.dumps(wire.token(b"a" * 32))  # a plain string, fit for a header
