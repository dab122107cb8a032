"""Azure Batch JSON values (numbers, words, durations, times, entity tags) <-> protobuf."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2

from jobcontrol.gateway.dialects.scheduler_codec import encode_time
from jobcontrol.gateway.errors import GatewayError, bad_request

__all__ = [
    "MAX_NESTING", "bad_member", "check_http_dates", "check_kept", "check_members",
    "decode_bool", "decode_duration", "decode_int", "decode_object", "decode_str",
    "decode_struct", "decode_word", "encode_duration", "encode_struct", "encode_time",
    "etag_in", "etag_out",
]  # fmt: skip

encode_time = encode_time
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_ISO_DURATION = re.compile(
    r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
# how deep a kept object may nest: each level is two protobuf levels (Struct, Value), and
# protobuf refuses messages nested more than 100 deep
MAX_NESTING = 32
# Batch spells "no limit" as TimeSpan.MaxValue (P10675199DT2H48M5.4775807S), past what a
# Duration holds: such a duration means no limit; past TimeSpan.MaxValue none is valid
_DURATION_MAX = timedelta(seconds=315_576_000_000)
_TIMESPAN_MAX = timedelta(days=10675199, hours=2, minutes=48, seconds=5, microseconds=477581)
# the conditional headers whose value is a date
_DATE_HEADERS = {
    "if-modified-since": "If-Modified-Since",
    "if-unmodified-since": "If-Unmodified-Since",
}


def bad_member(path: str, why: str) -> GatewayError:
    """400 InvalidRequestBody naming the member."""
    return bad_request("INVALID_BODY", f"{path}: {why}", PropertyName=path, Reason=why)


def check_members(body: dict[str, Any], allowed: Iterable[str], kind: str) -> None:
    """Every member of `body` is one of `allowed` (else 400 naming the first other one)."""
    known = set(allowed)
    for key in body:
        if key not in known:
            raise bad_member(key, f"The property '{key}' is not a member of {kind}.")


def decode_int(value: Any, path: str) -> int:
    """A JSON integer that fits an Int32."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_member(path, "must be an integer")
    if not _INT32[0] <= value <= _INT32[1]:
        raise bad_member(path, "must be a 32-bit integer")
    return value


def decode_bool(value: Any, path: str) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise bad_member(path, "must be a boolean")
    return value


def decode_str(value: Any, path: str) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise bad_member(path, "must be a string")
    return value


def decode_object(value: Any, path: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise bad_member(path, "must be an object")
    return value


def decode_word(table: Mapping[Any, str], value: Any, path: str) -> Any:
    """The enum number of one of Batch's lower-case words (any case accepted)."""
    for number, word in table.items():
        if isinstance(value, str) and word == value.lower():
            return number
    raise bad_member(path, f"unknown value {value!r} (one of {', '.join(table.values())})")


def _too_wide(item: Any) -> bool:
    """An integer past Int64 (orjson reads those past UInt64 as whole doubles)."""
    if isinstance(item, bool):
        return False
    if isinstance(item, int):
        return not _INT64[0] <= item <= _INT64[1]
    return isinstance(item, float) and item.is_integer() and abs(item) >= 2**63


def check_kept(value: Any, path: str) -> None:
    """A kept JSON value holds objects and arrays at most MAX_NESTING deep, and integers
    that fit an Int64 (no Batch member is wider)."""
    level = [value]
    for depth in range(MAX_NESTING + 1):
        wide = next((item for item in level if _too_wide(item)), None)
        if wide is not None:
            raise bad_member(path, f"{wide!r} is beyond the 64-bit integer range")
        containers = [item for item in level if isinstance(item, dict | list)]
        if containers and depth == MAX_NESTING:
            raise bad_member(path, f"nested more than {MAX_NESTING} levels deep")
        level = [
            child
            for item in containers
            for child in (item.values() if isinstance(item, dict) else item)
        ]


def decode_struct(value: Any, path: str) -> struct_pb2.Struct:
    """A JSON object kept whole."""
    given = decode_object(value, path)
    check_kept(given, path)
    out = struct_pb2.Struct()
    out.update(given)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def encode_struct(value: struct_pb2.Struct) -> dict[str, Any]:
    """A kept JSON object as it was given: a Struct holds every number as a double, and
    whole ones go back as integers (Batch's numeric members are integers)."""
    return _plain(json_format.MessageToDict(value))  # type: ignore[no-any-return]


def decode_duration(value: Any, path: str) -> duration_pb2.Duration | None:
    """An ISO 8601 duration (`PT1H30M`, `P2DT5S`); None past a Duration's range up to
    TimeSpan.MaxValue (Batch's "unlimited"); longer ones are refused."""
    text = decode_str(value, path)
    m = _ISO_DURATION.fullmatch(text)
    if m is None or text in ("P", "PT") or text.endswith("T"):
        raise bad_member(path, f"not an ISO 8601 duration: {text!r}")
    weeks, days, hours, minutes, seconds = (float(g) if g else 0.0 for g in m.groups())
    try:
        delta = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:  # past what timedelta holds: past a TimeSpan too
        delta = timedelta.max
    if delta > _TIMESPAN_MAX:
        raise bad_member(path, f"{text!r} is longer than P10675199DT2H48M5.4775807S")
    if delta >= _DURATION_MAX:
        return None
    out = duration_pb2.Duration()
    out.FromTimedelta(delta)
    return out


def check_http_dates(headers: Mapping[str, str]) -> None:
    """If-Modified-Since / If-Unmodified-Since, when they are dates, name a moment in UTC's
    years 1-9999 (`Fri, 31 Dec 9999 23:59:59 -2359` does not): else 400 InvalidHeaderValue.
    A value that is no date at all is ignored, as RFC 9110 asks."""
    for name, spelled in _DATE_HEADERS.items():
        value = headers.get(name)
        if value is None:
            continue
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            continue
        if when.tzinfo is None:  # "-0000": UTC, and always in range
            continue
        try:
            when.astimezone(UTC)
        except OverflowError:
            raise bad_request("INVALID_HEADER", f"{spelled}: {value!r} is out of range",
                              HeaderName=spelled, HeaderValue=value) from None  # fmt: skip


def encode_duration(duration: duration_pb2.Duration) -> str:
    """An ISO 8601 duration (`PT1H30M`, `P1DT0.5S`)."""
    days, rest = divmod(duration.seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "") + "T"
    text += (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    fraction = f"{duration.nanos / 1e9:.9f}".rstrip("0")[1:] if duration.nanos else ""
    if seconds or fraction or text.endswith("T"):
        text += f"{seconds}{fraction}S"
    return text


def etag_out(etag: str) -> str:
    """Batch-style entity tag for a jobcontrol etag."""
    return f"0x{etag.upper()}"


def etag_in(value: str) -> str:
    """A jobcontrol etag from a Batch-style entity tag (quotes and 0x optional)."""
    value = value.strip().strip('"')
    return value[2:].lower() if value[:2].lower() == "0x" else value.lower()
