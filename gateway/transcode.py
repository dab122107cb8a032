"""HTTP <-> gRPC transcoding driven by `google.api.http` options read from descriptors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from google.api import annotations_pb2
from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.message import Message

from jobcontrol.gateway import protojson, templates
from jobcontrol.gateway.errors import GatewayError, bad_request

_WKT_SCALARS = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.Any",
    }
)
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
# how deep a JSON body may nest objects and arrays: protobuf's JSON parser recurses per
# level (the server allows Struct fields 20 levels, its docs say)
MAX_JSON_DEPTH = 32
# the longest deadline a request may ask for, in seconds; a longer grpc-timeout (8 digits
# of hours are valid gRPC) is this one, as gRPC's own clock would overflow on it
MAX_TIMEOUT = 3600.0
_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass(frozen=True)
class Binding:
    """One HTTP binding of one RPC (the rule itself or an additional binding)."""

    http_method: str
    template: templates.Template
    rpc: str  # /package.Service/Method
    method: descriptor.MethodDescriptor
    input_type: type[Message]
    output_type: type[Message]
    body: str
    response_body: str


def _repeated(field: descriptor.FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(getattr(field, "label") == field.LABEL_REPEATED)  # noqa: B009


def bindings(services: list[descriptor.ServiceDescriptor]) -> list[Binding]:
    """Every HTTP binding of every RPC of `services` that has a google.api.http option."""
    out: list[Binding] = []
    for service in services:
        for method in service.methods:
            rule: Any = method.GetOptions().Extensions[annotations_pb2.http]  # type: ignore[index]
            for r in (rule, *rule.additional_bindings):
                kind = r.WhichOneof("pattern")
                if kind is None:
                    continue
                http_method, path = (
                    (r.custom.kind.upper(), r.custom.path)
                    if kind == "custom"
                    else (kind.upper(), getattr(r, kind))
                )
                out.append(
                    Binding(
                        http_method=http_method,
                        template=templates.parse(path),
                        rpc=f"/{service.full_name}/{method.name}",
                        method=method,
                        input_type=message_factory.GetMessageClass(method.input_type),
                        output_type=message_factory.GetMessageClass(method.output_type),
                        body=r.body,
                        response_body=r.response_body,
                    )
                )
    out.sort(key=lambda b: -b.template.literal_count)
    return out


def field_of(desc: Any, name: str) -> Any:
    """A field by proto name or JSON (lowerCamelCase) name."""
    found = desc.fields_by_name.get(name)
    if found is None:
        for f in desc.fields:
            if f.json_name == name:
                return f
    return found


def _resolve(message: Message, dotted: str) -> tuple[Message, descriptor.FieldDescriptor]:
    """The message holding the last field of `dotted`, and that field."""
    target = message
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        field = field_of(target.DESCRIPTOR, part)
        if field is None:
            raise bad_request("UNKNOWN_FIELD", f"unknown field {dotted!r}", field=dotted)
        if i == len(parts) - 1:
            return target, field
        if field.message_type is None or _repeated(field):
            raise bad_request("UNKNOWN_FIELD", f"{dotted!r} does not name a field", field=dotted)
        target = getattr(target, field.name)
    raise AssertionError("unreachable")


def _scalar(field: descriptor.FieldDescriptor, raw: str, dotted: str) -> Any:
    try:
        if field.enum_type is not None:
            value = field.enum_type.values_by_name.get(raw)
            return value.number if value is not None else int(raw)
        if field.cpp_type == field.CPPTYPE_BOOL:
            low = raw.lower()
            if low not in _TRUE | _FALSE:
                raise ValueError(raw)
            return low in _TRUE
        if field.cpp_type in (field.CPPTYPE_FLOAT, field.CPPTYPE_DOUBLE):
            return float(raw)
        if field.cpp_type in (
            field.CPPTYPE_INT32,
            field.CPPTYPE_INT64,
            field.CPPTYPE_UINT32,
            field.CPPTYPE_UINT64,
        ):
            return int(raw)
        if field.cpp_type == field.CPPTYPE_STRING:
            return raw if field.type == field.TYPE_STRING else raw.encode()
    except ValueError:
        pass
    raise invalid("INVALID_PARAMETER", dotted, f"invalid value {raw[:64]!r}")


def set_value(message: Message, dotted: str, values: list[str]) -> None:
    """Set a (nested) field from path or query strings: scalars, enums by name, repeated
    fields, and well-known types in their JSON form (Timestamp, Duration, FieldMask)."""
    holder, field = _resolve(message, dotted)
    if field.message_type is not None:
        if field.message_type.full_name not in _WKT_SCALARS or _repeated(field):
            raise bad_request("INVALID_PARAMETER", f"{dotted} cannot be set from a string")
        try:
            json_format.ParseDict(values[-1], getattr(holder, field.name))  # type: ignore[arg-type]
        except json_format.ParseError as exc:
            raise invalid("INVALID_PARAMETER", dotted, str(exc)) from None
        return
    try:
        if _repeated(field):
            getattr(holder, field.name).extend(_scalar(field, v, dotted) for v in values)
        else:
            setattr(holder, field.name, _scalar(field, values[-1], dotted))
    except (TypeError, ValueError) as exc:
        raise invalid("INVALID_PARAMETER", dotted, str(exc)) from None


def parse_json(body: bytes) -> Any:
    """A JSON document, or 400 MALFORMED_JSON; one nesting deeper than MAX_JSON_DEPTH is
    400 INVALID_BODY with a field violation naming where (a path within the body)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("MALFORMED_JSON", f"the body is not valid JSON: {exc}") from None
    where = too_deep(value, MAX_JSON_DEPTH)
    if where is not None:
        raise invalid("INVALID_BODY", where, f"nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def invalid(reason: str, field: str, description: str, message: str = "") -> GatewayError:
    """400 `reason` about one field: ErrorInfo naming it and a BadRequest field violation,
    as the server's own INVALID_ARGUMENT errors carry (AIP-193)."""
    error = bad_request(reason, message or f"{field}: {description}", field=field)
    violation = {"field": field, "description": description}
    error.details.append({"@type": _BAD_REQUEST, "fieldViolations": [violation]})
    return error


def _failing_field(value: Any, target: Message, prefix: str = "") -> str:
    """The JSON path of the member that fails to parse into `target`: each member is tried
    alone, and a failing singular message is searched further ("" for no object)."""
    if not isinstance(value, dict):
        return prefix
    for key, item in value.items():
        path = f"{prefix}{key}"
        field = field_of(target.DESCRIPTOR, key)
        try:
            json_format.ParseDict({key: item}, type(target)())
        except (json_format.ParseError, TypeError, ValueError):
            walk = (
                field is not None
                and field.message_type is not None
                and not _repeated(field)
                and field.message_type.full_name not in _WKT_SCALARS
            )
            return _failing_field(item, getattr(target, field.name), path + ".") if walk else path
    return prefix


def too_deep(value: Any, limit: int) -> str | None:
    """The path (`a.b[0].c`) of the first object or array nested deeper than `limit`, or
    None. Iterative, so that a deep document costs no recursion."""
    stack: list[tuple[Any, int, Any]] = [(value, 0, None)]
    while stack:
        item, depth, trail = stack.pop()
        if isinstance(item, dict):
            children: Any = item.items()
        elif isinstance(item, list):
            children = enumerate(item)
        else:
            continue
        if depth >= limit:
            return _path(trail)
        stack.extend((child, depth + 1, (trail, key)) for key, child in children)
    return None


def _path(trail: Any) -> str:
    """`(((None, "a"), 0), "b")` -> `a[0].b` (keys cut to 64 characters, 256 in all)."""
    parts: list[str] = []
    while trail is not None:
        trail, key = trail
        parts.append(f"[{key}]" if isinstance(key, int) else f".{str(key)[:64]}")
    return "".join(reversed(parts)).lstrip(".")[:256]


def merge_json(value: Any, target: Message, where: str) -> None:
    """Proto3 JSON into `target`; unknown fields and wrong types are 400."""
    try:
        json_format.ParseDict(value, target, ignore_unknown_fields=False)
    except (json_format.ParseError, TypeError, ValueError) as exc:
        field = _failing_field(value, target).rstrip(".")
        if not field:
            raise bad_request("INVALID_BODY", f"{where}: {exc}") from None
        raise invalid("INVALID_BODY", field, str(exc), f"{where}: {exc}") from None


def present_paths(value: Any, desc: Any, prefix: str = "") -> list[str]:
    """Field paths (proto names) of the keys present in a JSON object: singular message
    fields are walked, everything else (maps, lists, scalars, well-known types) is a leaf.
    This is how PATCH without `updateMask` learns which fields to write."""
    paths: list[str] = []
    if not isinstance(value, dict):
        return paths
    for key, item in value.items():
        field = field_of(desc, key)
        if field is None:
            continue
        path = f"{prefix}{field.name}"
        walk = (
            field.message_type is not None
            and not _repeated(field)
            and field.message_type.full_name not in _WKT_SCALARS
            and isinstance(item, dict)
            and item
        )
        sub = present_paths(item, field.message_type, path + ".") if walk else []
        paths.extend(sub or [path])
    return paths


def render(message: Message) -> bytes:
    """Proto3 JSON (lowerCamelCase, int64 as strings, defaults omitted), as
    `json_format.MessageToDict` writes it (see protojson)."""
    return orjson.dumps(protojson.to_dict(message))


def parse_timeout(headers: dict[str, str]) -> float | None:
    """A deadline from `grpc-timeout` (e.g. 500m, 2S; capped at MAX_TIMEOUT) or
    `X-Request-Timeout` (seconds, at most MAX_TIMEOUT)."""
    raw = headers.get("grpc-timeout")
    units = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
    try:
        if raw:
            digits = raw[:-1]
            if raw[-1] not in units or not (digits.isascii() and digits.isdigit()) or len(raw) > 9:
                raise ValueError(raw)
            return min(int(digits) * units[raw[-1]], MAX_TIMEOUT)
        raw = headers.get("x-request-timeout")
        if raw:
            seconds = float(raw)
            if not 0 < seconds <= MAX_TIMEOUT:
                raise ValueError(raw)
            return seconds
    except ValueError:
        raise bad_request("INVALID_TIMEOUT", f"invalid request timeout {raw!r}") from None
    return None


def unquote_etag(value: str) -> str:
    """An entity tag without W/ and quotes."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value
