"""Request ids: version 4 UUIDs in canonical text, never repeated."""

from __future__ import annotations

import uuid

from gateway.invoke.request_ids import RequestIds


def test_ids_are_canonical_version_4_uuids_and_all_differ() -> None:
    ids = RequestIds()
    drawn = [ids() for _ in range(2000)]  # several reads of the entropy
    assert len(set(drawn)) == len(drawn)
    for text in drawn:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_every_variant_digit_occurs() -> None:
    ids = RequestIds()
    assert {ids()[19] for _ in range(400)} == set("89ab")
