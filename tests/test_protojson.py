"""The native mapping's reply JSON (gateway/protojson.py) is `json_format`'s, byte for byte:
every message type of the API filled in every field, each oneof member alone at its default,
open enums with unknown numbers, int64 extremes, floats' special values, bytes, maps and
the well-known types."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google.api import distribution_pb2, httpbody_pb2
from google.longrunning import operations_pb2
from google.protobuf import (
    any_pb2,
    descriptor,
    descriptor_pb2,
    descriptor_pool,
    json_format,
    message_factory,
    struct_pb2,
)
from google.protobuf.message import Message
from google.rpc import status_pb2
from google.type import color_pb2, latlng_pb2  # type: ignore[import-untyped]

from jobcontrol.gateway import protojson
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    job_service_pb2,
    operator_service_pb2,
    resources_pb2,
    session_service_pb2,
    worker_service_pb2,
)

FD = descriptor.FieldDescriptor
_FILES = (resources_pb2, job_service_pb2, operator_service_pb2, diagnostics_service_pb2,
          session_service_pb2, worker_service_pb2, operations_pb2, status_pb2,
          distribution_pb2, httpbody_pb2, latlng_pb2, color_pb2)  # fmt: skip
_SCALARS: dict[int, Any] = {
    FD.CPPTYPE_INT32: -7,
    FD.CPPTYPE_UINT32: 4_000_000_000,
    FD.CPPTYPE_INT64: -(2**63),
    FD.CPPTYPE_UINT64: 2**64 - 1,
    FD.CPPTYPE_BOOL: True,
    FD.CPPTYPE_DOUBLE: 0.1,
    FD.CPPTYPE_FLOAT: 0.1,
}


def _types() -> Iterator[descriptor.Descriptor]:
    def walk(desc: descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
        if not desc.GetOptions().map_entry:
            yield desc
        for nested in desc.nested_types:
            yield from walk(nested)

    for module in _FILES:
        for desc in module.DESCRIPTOR.message_types_by_name.values():
            yield from walk(desc)


TYPES = sorted(_types(), key=lambda d: d.full_name)


def _value(field: FD, depth: int, special: float | None) -> Any:
    if field.cpp_type == FD.CPPTYPE_ENUM:
        values = field.enum_type.values
        return values[min(1, len(values) - 1)].number
    if field.cpp_type == FD.CPPTYPE_STRING:
        return b"\x00\xff bytes" if field.type == FD.TYPE_BYTES else 'ünï "q" \\ /'
    if special is not None and field.cpp_type in (FD.CPPTYPE_DOUBLE, FD.CPPTYPE_FLOAT):
        return special
    return _SCALARS[field.cpp_type]


def _fill(message: Message, depth: int = 0, special: float | None = None) -> Message:
    """Every field set (the last member of each oneof wins), nested to three levels."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.FromJsonString("2026-12-05T14:00:00.000005Z")  # type: ignore[attr-defined]
    elif name == "google.protobuf.Duration":
        message.FromJsonString("90.000000001s")  # type: ignore[attr-defined]
    elif name == "google.protobuf.FieldMask":
        message.FromJsonString("displayName,spec.retryPolicy")  # type: ignore[attr-defined]
    elif name == "google.protobuf.Struct":
        message.update({"k": [1, "x", None, {"n": True}], "e": {}})  # type: ignore[attr-defined]
    elif name == "google.protobuf.Any":
        message.Pack(resources_pb2.Job(display_name="packed", etag="e"))  # type: ignore[attr-defined]
    elif depth < 3:
        for field in message.DESCRIPTOR.fields:
            _fill_field(message, field, depth, special)
    return message


def _fill_field(message: Message, field: FD, depth: int, special: float | None) -> None:
    target = getattr(message, field.name)
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
        for key in ((True, False) if key_field.cpp_type == FD.CPPTYPE_BOOL else
                    _keys(key_field)):  # fmt: skip
            if value_field.message_type is not None:
                _fill(target[key], depth + 1, special)
            else:
                target[key] = _value(value_field, depth, special)
    elif field.is_repeated:
        for _ in range(2):
            if entry is not None:
                _fill(target.add(), depth + 1, special)
            else:
                target.append(_value(field, depth, special))
    elif entry is not None:
        _fill(target, depth + 1, special)
    else:
        setattr(message, field.name, _value(field, depth, special))


def _keys(field: FD) -> tuple[Any, ...]:
    if field.cpp_type == FD.CPPTYPE_STRING:
        return ("a", "b c")
    return (3, 2**64 - 1) if field.cpp_type == FD.CPPTYPE_UINT64 else (-3, 12)


def _same(message: Message) -> None:
    expected = json_format.MessageToDict(message)
    assert protojson.to_dict(message) == expected
    assert orjson.dumps(protojson.to_dict(message)) == orjson.dumps(expected)


def _new(desc: descriptor.Descriptor) -> Message:
    return message_factory.GetMessageClass(desc)()


@pytest.mark.parametrize("desc", TYPES, ids=lambda d: d.full_name)
def test_reply_json_is_json_format_s_for_every_field_of_every_api_message(
    desc: descriptor.Descriptor,
) -> None:
    """Empty, then every field set: the same dict and the same bytes as json_format."""
    _same(_new(desc))
    _same(_fill(_new(desc)))


@pytest.mark.parametrize("desc", [d for d in TYPES if d.oneofs], ids=lambda d: d.full_name)
def test_reply_json_prints_a_oneof_member_set_to_its_default(desc: descriptor.Descriptor) -> None:
    """A oneof member set to 0, "" or an empty message is present and printed."""
    for oneof in desc.oneofs:
        for field in oneof.fields:
            message = _new(desc)
            if field.message_type is not None:
                getattr(message, field.name).SetInParent()
            elif not field.is_repeated:
                setattr(message, field.name, field.default_value)
            assert message.HasField(oneof.name)
            _same(message)


def test_reply_json_prints_an_unknown_open_enum_number_as_the_number() -> None:
    """A number the enum does not define (a newer server's state) prints as a number."""
    job = resources_pb2.Job(name="collections/c/jobs/j")
    job.state = 99  # type: ignore[assignment]
    _same(job)
    assert protojson.to_dict(job)["state"] == 99


@pytest.mark.parametrize("special", [math.inf, -math.inf, math.nan, 1e-45, 3.4e38])
def test_reply_json_writes_float_specials_and_extremes_as_json_format(special: float) -> None:
    """double and float fields: Infinity, -Infinity, NaN and float32 extremes."""
    for desc in (distribution_pb2.Distribution.DESCRIPTOR, color_pb2.Color.DESCRIPTOR,
                 latlng_pb2.LatLng.DESCRIPTOR):  # fmt: skip
        message = _fill(_new(desc), special=special)
        expected = json_format.MessageToDict(message)
        got = protojson.to_dict(message)
        assert orjson.dumps(got, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(expected)


def test_reply_json_of_a_top_level_well_known_type_is_its_json_value() -> None:
    """A Struct, an Any or an Empty reply prints as json_format prints it."""
    struct = struct_pb2.Struct()
    struct.update({"a": [1, None]})
    packed = any_pb2.Any()
    packed.Pack(status_pb2.Status(code=5, message="gone"))
    for message in (struct, packed, struct_pb2.Value(string_value="s"), _new(
            any_pb2.DESCRIPTOR.message_types_by_name["Any"])):  # fmt: skip
        _same(message)


def _bool_keyed_map() -> descriptor.Descriptor:
    """`message M { map<bool, int64> flags = 1; map<uint64, string> ids = 2; }`, built here:
    no API or library message has a bool-keyed map."""
    proto = descriptor_pb2.FileDescriptorProto(name="protojson_test.proto", package="t",
                                               syntax="proto3")  # fmt: skip
    message = proto.message_type.add(name="M")
    for number, (name, key, value) in enumerate(
        (("flags", FD.TYPE_BOOL, FD.TYPE_INT64), ("ids", FD.TYPE_UINT64, FD.TYPE_STRING)), 1
    ):
        entry = message.nested_type.add(name=f"{name.title()}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key, label=FD.LABEL_OPTIONAL)
        entry.field.add(name="value", number=2, type=value, label=FD.LABEL_OPTIONAL)
        message.field.add(name=name, number=number, type=FD.TYPE_MESSAGE,
                          label=FD.LABEL_REPEATED, type_name=f".t.M.{entry.name}")  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool.FindMessageTypeByName("t.M")


def test_reply_json_writes_map_keys_as_json_format() -> None:
    """Map keys are strings: bool keys `true`/`false`, integer keys in decimal."""
    message = _fill(_new(_bool_keyed_map()))
    _same(message)
    assert protojson.to_dict(message)["flags"] == {"true": "-9223372036854775808",
                                                   "false": "-9223372036854775808"}  # fmt: skip


@pytest.mark.parametrize("text", ["1970-01-01T00:00:00Z", "2026-12-05T14:00:00.100Z",
                                  "2026-12-05T14:00:00.000100Z", "2026-12-05T14:00:00.000000100Z",
                                  "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z",
                                  "1969-12-31T23:59:59.5Z"])  # fmt: skip
def test_reply_json_writes_timestamps_with_0_3_6_or_9_fraction_digits(text: str) -> None:
    """Timestamps print in UTC with Z and 0, 3, 6 or 9 fraction digits, over the whole
    range, as json_format prints them."""
    job = resources_pb2.Job()
    job.create_time.FromJsonString(text)
    _same(job)
