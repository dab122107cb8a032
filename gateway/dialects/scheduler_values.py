"""Scheduler JSON values as pure functions: times, durations, enum words, checked members."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from jobcontrol.gateway.errors import GatewayError, bad_request

__all__ = [
    "MAX_DEPTH", "bad_member", "decode_depth", "decode_duration", "decode_int", "decode_list",
    "decode_members", "decode_str", "decode_time", "decode_word", "encode_duration",
    "encode_time", "encode_word",
]  # fmt: skip

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
# how deep a JSON body's objects and arrays may nest (a job needs 5; the parser's own
# limit, 1024, is deeper than Python's recursion limit for messages about the value)
MAX_DEPTH = 32
# google.protobuf.Duration's range (10,000 years): beyond it the message cannot be sent
MAX_DURATION_SECONDS = 315_576_000_000


def bad_member(path: str, why: str) -> GatewayError:
    """400 INVALID_BODY about the member at `path`."""
    return bad_request("INVALID_BODY", f"{path}: {why}", field=path)


def decode_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """`value` if its objects and arrays nest at most `limit` deep, else 400 INVALID_BODY
    (walked without recursion, so any depth the parser took is safe here)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise bad_request("INVALID_BODY", f"The body nests more than {limit} levels deep.")
        stack.extend((child, depth + 1) for child in children)
    return value


def decode_word(table: dict[str, Any], value: Any, path: str) -> Any:
    """The enum value of a JSON word, in any case."""
    if not isinstance(value, str):
        raise bad_member(path, "must be a string")
    for key, mapped in table.items():
        if key.lower() == value.lower():
            return mapped
    raise bad_member(path, f"unknown value {value!r} (allowed: {', '.join(table)})")


def encode_word(table: dict[str, Any], value: int) -> str | None:
    """The JSON word of an enum value (None for one the table does not have)."""
    return next((key for key, mapped in table.items() if mapped == value), None)


def decode_members(value: Any, keys: set[str] | dict[str, str], path: str) -> dict[str, Any]:
    """An object whose members are all among `keys`."""
    if not isinstance(value, dict):
        raise bad_member(path, "must be an object")
    unknown = set(value) - set(keys)
    if unknown:
        raise bad_member(path, f"unknown fields {', '.join(sorted(unknown))}")
    return value


def decode_int(value: Any, path: str) -> int:
    """A JSON integer within int32."""
    # JSON true/false are ints to Python, never to the Scheduler API
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_member(path, "must be an integer")
    if not -(2**31) <= value < 2**31:
        raise bad_member(path, "out of range")
    return value


def decode_str(value: Any, path: str) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise bad_member(path, "must be a string")
    return value


def decode_list(value: Any, path: str) -> list[Any]:
    """A JSON array."""
    if not isinstance(value, list):
        raise bad_member(path, "must be an array")
    return value


def decode_time(value: Any, path: str) -> timestamp_pb2.Timestamp:
    """An ISO 8601 time (no zone: UTC)."""
    text = decode_str(value, path)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_member(path, f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    try:
        # 9999-12-31T23:59:59-23:59 parses, but is after the last moment a time can hold
        stamp.FromDatetime(moment.astimezone(UTC))
    except (ValueError, OverflowError):
        raise bad_member(path, f"out of range (years 0001 to 9999 in UTC): {text!r}") from None
    return stamp


def decode_duration(value: Any, path: str) -> duration_pb2.Duration:
    """`00:00:30` (a .NET TimeSpan, `d.hh:mm:ss.fffffff`) or `PT30S` (ISO 8601)."""
    text = decode_str(value, path)
    parts = _duration_parts(text)
    if parts is None:
        raise bad_member(path, f"not a duration: {text!r} (e.g. 00:00:30)")
    out = duration_pb2.Duration()
    try:
        delta = timedelta(**parts)
        if delta.total_seconds() > MAX_DURATION_SECONDS:
            raise OverflowError(text)
        out.FromTimedelta(delta)
    except (ValueError, OverflowError):
        raise bad_member(path, f"duration out of range: {text!r}") from None
    return out


def _duration_parts(text: str) -> dict[str, float] | None:
    """The days, hours, minutes and seconds of a TimeSpan or ISO 8601 duration."""
    span, iso = _TIMESPAN.match(text), _ISO_DURATION.match(text)
    if span:
        days, hours, minutes, seconds, fraction = span.groups()
        seconds = f"{seconds}.{fraction or 0}"
    elif iso and text not in ("P", "PT"):
        days, hours, minutes, seconds = iso.groups()
    else:
        return None
    return {"days": float(days or 0), "hours": float(hours or 0),
            "minutes": float(minutes or 0), "seconds": float(seconds or 0)}  # fmt: skip


def encode_time(stamp: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC with `Z`, fractions only when present."""
    moment = stamp.ToDatetime(tzinfo=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def encode_duration(duration: duration_pb2.Duration) -> str:
    """A TimeSpan `hh:mm:ss` (days as `d.hh:mm:ss`)."""
    total = int(duration.ToTimedelta().total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{text}" if days else text
