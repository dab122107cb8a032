"""An OpenAPI 3.1 document of the native mapping, generated from the same bindings.

Variables such as `{name=collections/*/jobs/*}` are expanded into one path parameter per
wildcard (`/v1/collections/{collection}/jobs/{job}`), so that OpenAPI clients never have
to put a slash inside a parameter."""

from __future__ import annotations

from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor

from jobcontrol.gateway.transcode import Binding, _repeated

_SCALARS: dict[int, dict[str, Any]] = {
    descriptor.FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    descriptor.FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    descriptor.FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    descriptor.FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    descriptor.FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    descriptor.FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    descriptor.FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    descriptor.FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    descriptor.FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    descriptor.FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    descriptor.FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    descriptor.FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    descriptor.FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    descriptor.FieldDescriptor.TYPE_STRING: {"type": "string"},
    descriptor.FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
}
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "status", "message"],
            "properties": {
                "code": {"type": "integer"},
                "status": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": _WELL_KNOWN["google.protobuf.Any"]},
            },
        }
    },
}
_SINGULAR = {
    "collections": "collection",
    "jobs": "job",
    "tasks": "task",
    "operations": "operation",
    "history": "entry",
}


def _behaviors(field: descriptor.FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])  # type: ignore[index]


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def ref(self, desc: descriptor.Descriptor) -> dict[str, Any]:
        if desc.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[desc.full_name])
        if desc.full_name not in self.components:
            self.components[desc.full_name] = {}  # placeholder: recursion-safe
            self.components[desc.full_name] = self._message(desc)
        return {"$ref": f"#/components/schemas/{desc.full_name}"}

    def _message(self, desc: descriptor.Descriptor) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field in desc.fields:
            schema = self.field(field)
            behaviors = _behaviors(field)
            if field_behavior_pb2.OUTPUT_ONLY in behaviors:
                schema = {**schema, "readOnly": True}
            if field_behavior_pb2.INPUT_ONLY in behaviors:
                schema = {**schema, "writeOnly": True}
            properties[field.json_name] = schema
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def field(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            value = message.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self.field(value)}
        if message is not None:
            single = self.ref(message)
        elif field.enum_type is not None:
            single = {"type": "string", "enum": [v.name for v in field.enum_type.values]}
        else:
            single = dict(_SCALARS[field.type])
        return {"type": "array", "items": single} if _repeated(field) else single


def _path(binding: Binding) -> tuple[str, list[dict[str, Any]]]:
    """The OpenAPI path and its parameters, one per wildcard segment."""
    template = binding.template
    parts: list[str] = []
    params: list[dict[str, Any]] = []
    for index, segment in enumerate(template.segments):
        if segment in ("*", "**"):
            previous = template.segments[index - 1] if index else "value"
            name = _SINGULAR.get(previous, f"{previous}_id")
            parts.append(f"{{{name}}}")
            params.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": r"^[^/]+$"},
                }
            )
        else:
            parts.append(segment)
    path = "/" + "/".join(parts) + (f":{template.verb}" if template.verb else "")
    return path, params


def _query(binding: Binding, schemas: _Schemas) -> list[dict[str, Any]]:
    """Query parameters: top-level fields (and one level of nested scalars) that the path
    and body do not bind."""
    if binding.body == "*":
        return []
    bound = {field.split(".")[0] for field, _, _ in binding.template.variables}
    params: list[dict[str, Any]] = []
    for field in binding.method.input_type.fields:
        if field.name in bound or field.name == binding.body:
            continue
        message = field.message_type
        if message is not None and message.full_name not in _WELL_KNOWN:
            for sub in message.fields:
                if sub.message_type is None or sub.message_type.full_name in _WELL_KNOWN:
                    params.append(_param(f"{field.json_name}.{sub.json_name}", schemas.field(sub)))
            continue
        params.append(_param(field.json_name, schemas.field(field)))
    return params


def _param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def document(bindings: list[Binding], title: str, version: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    seen: dict[str, int] = {}
    for binding in bindings:
        path, params = _path(binding)
        method = binding.method
        op_id = f"{method.containing_service.name}_{method.name}"
        seen[op_id] = seen.get(op_id, 0) + 1
        if seen[op_id] > 1:
            op_id = f"{op_id}_{seen[op_id]}"
        output: Any = method.output_type
        if binding.response_body:
            output = output.fields_by_name[binding.response_body].message_type
        operation: dict[str, Any] = {
            "operationId": op_id,
            "tags": [method.containing_service.name],
            "parameters": params + _query(binding, schemas),
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": schemas.ref(output)}},
                },
                "default": {
                    "description": "Error (AIP-193)",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if binding.body:
            body_desc: Any = (
                method.input_type
                if binding.body == "*"
                else method.input_type.fields_by_name[binding.body].message_type
            )
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.ref(body_desc)}},
            }
        paths.setdefault(path, {})[binding.http_method.lower()] = operation
    schemas.components["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas.components},
    }
