"""Azure Scheduler list queries ($filter, $top, $skip) as jobcontrol structured filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from jobcontrol.gateway.errors import bad_request
from jobcontrol.v1 import resources_pb2 as r

__all__ = ["HISTORY", "JOBS", "ListQuery", "decode_filter", "decode_list_query"]

_STATES = ("enabled", "disabled", "completed", "faulted")
# what `$filter` may compare, per list: field -> the words it may equal
JOBS: Mapping[str, tuple[str, ...]] = {"state": _STATES}
HISTORY: Mapping[str, tuple[str, ...]] = {
    "status": ("completed", "failed", "postponed"),
    "state": _STATES,
}
# `field eq word` or `field eq 'word'`: the only form the Scheduler API documents
_COMPARISON = re.compile(
    r"^\s*(?P<field>[A-Za-z]+)\s+eq\s+(?:'(?P<quoted>[A-Za-z]+)'|(?P<word>[A-Za-z]+))\s*$",
    re.IGNORECASE,
)
TOP_DEFAULT, TOP_MAX = 100, 100


@dataclass(frozen=True)
class ListQuery:
    """A list request's filter (None: everything), page size and skip."""

    filter: r.Filter | None
    top: int
    skip: int


def decode_filter(raw: str, fields: Mapping[str, tuple[str, ...]]) -> r.Filter:
    """`state eq enabled` as a Filter message (the value is data, never filter text);
    anything else is 400 INVALID_QUERY."""
    match = _COMPARISON.match(raw)
    if not match or match["field"].lower() not in fields:
        raise bad_request("INVALID_QUERY", f"Unsupported $filter: {raw!r}.", parameter="$filter")
    field = match["field"].lower()
    value = (match["quoted"] or match["word"]).lower()
    if value not in fields[field]:
        allowed = ", ".join(fields[field])
        raise bad_request(
            "INVALID_QUERY",
            f"Unsupported $filter value {value!r} for {field} (allowed: {allowed}).",
            parameter="$filter",
        )
    comparison = r.Comparison(field=field, operator=r.Comparison.EQUAL, text=value.upper())
    return r.Filter(comparison=comparison)


def _count(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    # int() would also take " 5", "+5" and "5_0": the API's numbers are plain digits
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise bad_request(
            "INVALID_QUERY",
            f"{name} must be an integer from {low} to {high}, not {raw!r}.",
            parameter=name,
        )
    return int(raw)


def decode_list_query(query: Mapping[str, str], fields: Mapping[str, tuple[str, ...]]) -> ListQuery:
    """`$filter` (one `field eq word`), `$top` (1-100, default 100) and `$skip` (>= 0)."""
    raw = query.get("$filter")
    return ListQuery(
        filter=None if raw is None else decode_filter(raw, fields),
        top=_count(query, "$top", TOP_DEFAULT, 1, TOP_MAX),
        skip=_count(query, "$skip", 0, 0, 2**31 - 1),
    )
