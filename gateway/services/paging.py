"""Opaque ``Marker``/``NextMarker`` tokens for the management API's list operations.

The services ask the store for one item more than a page holds; if it comes, the last
item of the page becomes the next marker (its sort key, encoded so clients treat it as
opaque, as Lambda's markers are). Used by ``functions``, ``aliases`` and ``concurrency``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from kubelambda import errors

__all__ = ["DEFAULT_PAGE", "MAX_PAGE", "Page", "by_name", "decode", "limit", "page"]

T = TypeVar("T")
DEFAULT_PAGE = 50
MAX_PAGE = 10000
Page = tuple[list[T], str | None]


def decode(marker: str | None, shape: tuple[type, ...]) -> tuple[str | int, ...] | None:
    """The sort key a marker carries (its items of the types in ``shape``), or None for
    the first page."""
    if not marker:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(marker.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidParameterValue("Invalid marker") from exc
    if not (
        isinstance(key, list)
        and len(key) == len(shape)
        and all(type(item) is kind for item, kind in zip(key, shape, strict=True))
    ):
        raise errors.InvalidParameterValue("Invalid marker")
    return tuple(key)


def page(items: Sequence[T], limit: int, key: Callable[[T], list[object]]) -> Page[T]:
    """Cut ``items`` (fetched with ``limit + 1``) to a page and its next marker."""
    if len(items) <= limit:
        return list(items), None
    shown = list(items[:limit])
    token = base64.urlsafe_b64encode(json.dumps(key(shown[-1])).encode()).decode()
    return shown, token


def limit(max_items: int | None) -> int:
    """The page size a ``MaxItems`` parameter asks for."""
    if max_items is None:
        return DEFAULT_PAGE
    if not 1 <= max_items <= MAX_PAGE:
        raise errors.InvalidParameterValue(f"MaxItems must be between 1 and {MAX_PAGE}")
    return max_items


async def by_name(
    fetch: Callable[[str, int], Awaitable[Sequence[T]]],
    name: Callable[[T], str],
    *,
    marker: str | None,
    max_items: int | None,
) -> Page[T]:
    """A page of a listing ordered by one name (aliases, qualifiers): ``fetch(after,
    limit)`` returns the items named after ``after``, at most ``limit`` of them."""
    size = limit(max_items)
    after = decode(marker, (str,))
    items = await fetch(str(after[0]) if after else "", size + 1)
    return page(items, size, lambda item: [name(item)])
