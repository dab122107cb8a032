"""Opaque page tokens bound to the query that issued them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from jobcontrol.service.core.errors import Reason, bad_field

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# our tokens are a few dozen characters; a longer one is not ours (and is not decoded)
MAX_TOKEN_LENGTH = 1024


def page_size(value: int) -> int:
    """0 means the default; larger than the maximum is coerced down (AIP-158)."""
    if value < 0:
        raise bad_field("page_size", "must not be negative")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(query: tuple[object, ...]) -> str:
    return hashlib.blake2s(repr(query).encode(), digest_size=8).hexdigest()


def skip_count(value: int) -> int:
    """AIP-158 `skip`: not negative."""
    if value < 0:
        raise bad_field("skip", "must not be negative")
    return value


def encode(query: tuple[object, ...], after: list[Any]) -> str:
    """A token resuming `query` after the row whose sort key is `after`."""
    raw = json.dumps({"q": _fingerprint(query), "a": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(
    query: tuple[object, ...], token: str, kinds: tuple[type, ...] = (str,)
) -> list[Any] | None:
    """The sort key to resume after (one value of each of `kinds`), or None for the first
    page. Anything else is INVALID_PAGE_TOKEN, never a storage error."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH:
        raise bad_field("page_token", "not a page token", Reason.INVALID_PAGE_TOKEN)
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        after = data["a"]
        fingerprint = data["q"]
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        # RecursionError: deeply nested JSON, which json.loads refuses that way
        raise bad_field("page_token", "not a page token", Reason.INVALID_PAGE_TOKEN) from exc
    if fingerprint != _fingerprint(query):
        raise bad_field("page_token", "was issued for another query", Reason.INVALID_PAGE_TOKEN)
    shaped = (
        isinstance(after, list)
        and len(after) == len(kinds)
        and all(type(v) is k for v, k in zip(after, kinds, strict=True))
    )
    if not shaped:
        raise bad_field("page_token", "not a page token", Reason.INVALID_PAGE_TOKEN)
    return list(after)


def cut(
    rows: list[T], size: int, query: tuple[object, ...], key: Callable[[T], list[Any]]
) -> tuple[list[T], str]:
    """A page of `rows` (fetched with one extra row) and the token of the next page, which
    resumes after the last row's sort `key`."""
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    return rows, encode(query, key(rows[-1]))
