"""The test broker's KRaft cluster id (kubelambda_testbed.kafka.cluster_id): always one the
storage tool accepts (issue 10, item 17a)."""

from __future__ import annotations

import base64
import itertools
import re

from kubelambda_testbed import kafka

# 0xF8 encodes to a leading "-" in URL-safe base64 (index 62).
STARTS_WITH_DASH = b"\xf8" + bytes(15)
PLAIN = bytes(range(16))


def test_a_draw_that_starts_with_a_dash_is_drawn_again() -> None:
    draws = iter([STARTS_WITH_DASH, STARTS_WITH_DASH, PLAIN])

    assert kafka.cluster_id(lambda: next(draws)) == "AAECAwQFBgcICQoLDA0ODw"


def test_ids_are_always_16_bytes_of_unpadded_url_safe_base64_not_starting_with_a_dash() -> None:
    # ~150 of 10,000 random ids would start with "-" if nothing redrew them.
    ids = [kafka.cluster_id() for _ in itertools.repeat(None, 10_000)]

    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", id_) for id_ in ids)
    assert all(len(base64.urlsafe_b64decode(id_ + "==")) == 16 for id_ in ids)
    assert len(set(ids)) == len(ids)
