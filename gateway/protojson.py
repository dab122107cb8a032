"""Proto3 JSON of a reply, the dict `json_format.MessageToDict` makes, at a third of its cost.

`json_format` walks every field through a general printer (options, extensions, map and
well-known-type checks per field, per call): 15% of the gateway's CPU on a REST GetJob. Here
each message type gets a table once, field descriptor -> (JSON name, converter), and a
message is one pass over `ListFields()` (upb, in C), which yields exactly the fields proto3
JSON prints (set fields with presence, non-default scalars, non-empty repeated and map
fields) in field-number order, as `json_format` prints them. Well-known types with a JSON
form of their own that is more than a string (`Any`, `Struct`, `Value`, `ListValue`, the
wrappers) go to `json_format`, so they are right by construction; tests compare the two
on every message type of the API.
"""

from __future__ import annotations

import base64
import datetime
import functools
import math
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, json_format
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

Convert = Callable[[Any], Any]
Encoder = Callable[[Message], Any]
FD = descriptor.FieldDescriptor

_INT64 = frozenset({FD.CPPTYPE_INT64, FD.CPPTYPE_UINT64})
_AS_IS = frozenset({FD.CPPTYPE_INT32, FD.CPPTYPE_UINT32, FD.CPPTYPE_BOOL})
# well-known types printed as a JSON string by their own method
_STRING_WKT = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
# every other well-known type with a JSON form of its own
_DELEGATED = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        *(f"google.protobuf.{kind}Value" for kind in
          ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")),
    }
)  # fmt: skip

_encoders: dict[Any, Encoder] = {}  # by descriptor (upb's or the pure one: Any)


def to_dict(message: Message) -> Any:
    """`json_format.MessageToDict(message)` (default options)."""
    return encoder_of(message.DESCRIPTOR)(message)


def encoder_of(desc: Any) -> Encoder:
    """The encoder of one message type, made on first use."""
    found = _encoders.get(desc)
    if found is None:
        found = _encoders[desc] = _make_encoder(desc)
    return found


def _make_encoder(desc: Any) -> Encoder:
    if desc.full_name == "google.protobuf.Timestamp":
        return _timestamp
    if desc.full_name in _STRING_WKT:
        return lambda message: message.ToJsonString()  # type: ignore[attr-defined]
    if desc.full_name == "google.protobuf.Empty":
        return lambda message: {}
    if desc.full_name in _DELEGATED:
        return json_format.MessageToDict
    table: dict[FD, tuple[str, Convert]] = {}

    def encode(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field, value in message.ListFields():
            entry = table.get(field)
            if entry is None:
                entry = table[field] = (_name(field), _field_converter(field))
            out[entry[0]] = entry[1](value)
        return out

    return encode


def _name(field: FD) -> str:
    return f"[{field.full_name}]" if field.is_extension else field.json_name


def _field_converter(field: FD) -> Convert:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = _map_key(field.message_type.fields_by_name["key"])
        value = _value_converter(field.message_type.fields_by_name["value"])
        return lambda entries: {key(k): value(v) for k, v in entries.items()}
    one = _value_converter(field)
    if field.is_repeated:
        return lambda values: [one(v) for v in values]
    return one


def _map_key(field: FD) -> Convert:
    if field.cpp_type == FD.CPPTYPE_BOOL:
        return lambda k: "true" if k else "false"
    return str


def _value_converter(field: FD) -> Convert:
    cpp = field.cpp_type
    if cpp == FD.CPPTYPE_MESSAGE:
        return encoder_of(field.message_type)
    if cpp == FD.CPPTYPE_ENUM:
        return _enum_converter(field)
    if cpp in _INT64:
        return str
    if cpp in _AS_IS:
        return _same
    if cpp == FD.CPPTYPE_STRING:
        if field.type == FD.TYPE_BYTES:
            return lambda v: base64.b64encode(v).decode("utf-8")
        return _same
    return _float if cpp == FD.CPPTYPE_FLOAT else _double


def _same(value: Any) -> Any:
    return value


def _enum_converter(field: FD) -> Convert:
    """The names `json_format` prints for the enum's numbers (asked once per number, so
    JSON name options and NullValue come out as it writes them); an unknown number of an
    open enum prints as the number."""
    printer = json_format._Printer()  # type: ignore[attr-defined]
    numbers = field.enum_type.values_by_number  # type: ignore[union-attr]
    names = {number: printer._FieldToJsonObject(field, number) for number in numbers}
    return lambda v: names.get(v, v)


def _double(value: float) -> Any:
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if math.isnan(value):
        return "NaN"
    return value


def _float(value: float) -> Any:
    special = _double(value)
    return special if isinstance(special, str) else type_checkers.ToShortestFloat(value)


_EPOCH = datetime.datetime(1970, 1, 1)
# Timestamp's range, 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z
_FIRST, _LAST = -62_135_596_800, 253_402_300_799


def _timestamp(stamp: Any) -> str:
    """`Timestamp.ToJsonString` (Z, 0/3/6/9 fraction digits), the date and time of a second
    made once: a reply's times fall on few seconds. Out of range: its own error."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if not (_FIRST <= seconds <= _LAST and 0 <= nanos < 1_000_000_000):
        return str(stamp.ToJsonString())
    text = _second(seconds)
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    return (_EPOCH + datetime.timedelta(seconds=seconds)).isoformat()
