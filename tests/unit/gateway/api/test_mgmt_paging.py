"""Markers of the list operations: opaque, round-tripping, and checked on the way in."""

from __future__ import annotations

import pytest

from gateway.services import paging
from kubelambda import errors


def test_a_short_list_has_no_next_marker():
    assert paging.page([1, 2], 2, lambda n: [n]) == ([1, 2], None)


def test_a_long_list_is_cut_and_its_marker_names_the_last_item():
    items, marker = paging.page([("a", 0), ("b", 1), ("c", 2)], 2, lambda item: list(item))
    assert items == [("a", 0), ("b", 1)]
    assert paging.decode(marker, (str, int)) == ("b", 1)


@pytest.mark.parametrize("marker", [None, ""])
def test_no_marker_means_the_first_page(marker):
    assert paging.decode(marker, (str,)) is None


@pytest.mark.parametrize("marker", ["%%%", "bm90IGpzb24=", "WzFd", "WyJhIiwgMV0="])
def test_garbled_or_mistyped_markers_are_refused(marker):
    # not base64; not JSON; [1] for a (str,) key; ["a", 1] for a (str,) key
    with pytest.raises(errors.InvalidParameterValue):
        paging.decode(marker, (str,))


@pytest.mark.parametrize(("max_items", "limit"), [(None, 50), (1, 1), (10000, 10000)])
def test_page_size(max_items, limit):
    assert paging.limit(max_items) == limit


@pytest.mark.parametrize("max_items", [0, 10001])
def test_page_size_out_of_range_is_refused(max_items):
    with pytest.raises(errors.InvalidParameterValue):
        paging.limit(max_items)
