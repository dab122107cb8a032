"""AIP-127 features our own protos do not use yet: additional_bindings, response_body,
custom methods. Checked on a synthetic service built in a private descriptor pool."""

from __future__ import annotations

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool

from jobcontrol.gateway import openapi, templates, transcode


def _service() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="toy/v1/toy.proto", package="toy.v1",
                                              syntax="proto3")  # fmt: skip
    file.dependency.append("google/api/annotations.proto")
    req = file.message_type.add(name="GetShelfRequest")
    req.field.add(
        name="name",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="name",
    )
    shelf = file.message_type.add(name="Shelf")
    shelf.field.add(
        name="theme",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        json_name="theme",
    )
    reply = file.message_type.add(name="GetShelfResponse")
    reply.field.add(
        name="shelf",
        number=1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        type_name=".toy.v1.Shelf",
        json_name="shelf",
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    service = file.service.add(name="ShelfService")
    method = service.method.add(
        name="GetShelf",
        input_type=".toy.v1.GetShelfRequest",
        output_type=".toy.v1.GetShelfResponse",
    )
    rule = http_pb2.HttpRule(get="/v1/{name=shelves/*}", response_body="shelf")
    rule.additional_bindings.add(get="/v1/{name=libraries/*/shelves/*}")
    rule.additional_bindings.add(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/v1/x"))
    method.options.Extensions[annotations_pb2.http].CopyFrom(rule)  # type: ignore[index]
    return file  # fmt: skip


def test_additional_bindings_and_response_body() -> None:
    """Transcoding: every additional binding becomes a route of its own (custom kinds
    included); response_body selects the field that is the HTTP body."""
    pool = descriptor_pool.DescriptorPool()
    for dep in (descriptor_pb2, http_pb2, annotations_pb2):
        pool.AddSerializedFile(dep.DESCRIPTOR.serialized_pb)
    pool.Add(_service())
    service = pool.FindServiceByName("toy.v1.ShelfService")
    found = transcode.bindings([service])
    assert sorted((b.http_method, b.template.source) for b in found) == [
        ("GET", "/v1/{name=libraries/*/shelves/*}"),
        ("GET", "/v1/{name=shelves/*}"),
        ("HEAD", "/v1/x"),
    ]
    nested = next(b for b in found if "libraries" in b.template.source)
    params = nested.template.match(*templates.split_path("/v1/libraries/l1/shelves/s2"))
    request = nested.input_type()
    for field, value in (params or {}).items():
        transcode.set_value(request, field, [value])
    assert request.name == "libraries/l1/shelves/s2"  # type: ignore[attr-defined]
    primary = next(b for b in found if b.template.source == "/v1/{name=shelves/*}")
    assert primary.response_body == "shelf"
    reply = primary.output_type()
    reply.shelf.theme = "poetry"  # type: ignore[attr-defined]
    assert transcode.render(getattr(reply, primary.response_body)) == b'{"theme":"poetry"}'
    document = openapi.document(found, "toy", "v1")
    assert set(document["paths"]) == {
        "/v1/shelves/{shelves_id}", "/v1/libraries/{libraries_id}/shelves/{shelves_id}", "/v1/x"
    }  # fmt: skip
    schema = document["paths"]["/v1/shelves/{shelves_id}"]["get"]["responses"]["200"]
    assert schema["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/toy.v1.Shelf"
    }
