"""The native JSON mapping: every RPC at the path of its google.api.http rule, proto3 JSON
bodies, AIP-193 errors. Routes come from the descriptors, none is written by hand."""

from __future__ import annotations

from typing import Any

import orjson
from google.protobuf import descriptor
from google.protobuf.message import Message

from jobcontrol.gateway import transcode
from jobcontrol.gateway.dialects.base import Dialect, Exchange, Route
from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.gateway.http import Response

_CONSUMED_HEADERS = {"if-match": "etag", "idempotency-key": "request_id"}


class NativeDialect(Dialect):
    """AIP-127 transcoding of the jobcontrol.v1 services (and google.longrunning)."""

    name = "native"

    def __init__(self, services: list[descriptor.ServiceDescriptor]) -> None:
        self.bindings = transcode.bindings(services)
        super().__init__(
            [Route(b.http_method, b.template, self._transcode, b.rpc, b) for b in self.bindings]
        )

    def claims(self, path: str) -> bool:
        return path.startswith(("/v1/", "/v1:"))

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        """AIP-193: {"error": {"code", "status", "message", "details"}}."""
        body = {
            "error": {
                "code": error.status,
                "status": error.code.name,
                "message": error.message,
                "details": error.details,
            }
        }
        return Response(error.status, orjson.dumps(body))

    async def _transcode(self, exchange: Exchange) -> Response:
        assert exchange.route is not None
        binding: transcode.Binding = exchange.route.data
        request = binding.input_type()
        body: Any = None
        if binding.body:
            raw = await exchange.body()
            body = transcode.parse_json(raw) if raw.strip() else {}
            target = request if binding.body == "*" else _field_message(request, binding.body)
            transcode.merge_json(body, target, "body")
        for field, value in exchange.params.items():
            transcode.set_value(request, field, [value])
        self._query(exchange, binding, request)
        self._headers(exchange, binding, request, body)
        reply = await exchange.upstream.call(
            binding.rpc,
            request,
            binding.output_type,
            metadata=exchange.metadata(),
            deadline=exchange.remaining(transcode.parse_timeout(exchange.request.headers)),
        )
        if binding.response_body:
            reply = getattr(reply, binding.response_body)
        response = Response(200, transcode.render(reply))
        etag = getattr(reply, "etag", None) if "etag" in reply.DESCRIPTOR.fields_by_name else None
        if etag:
            response.header("etag", f'"{etag}"')
        return response

    @staticmethod
    def _query(exchange: Exchange, binding: transcode.Binding, request: Message) -> None:
        """Fields not bound by the path or the body come from the query string."""
        if binding.body == "*" and exchange.request.query_string:
            raise bad_request("UNEXPECTED_QUERY", "this method takes its fields from the body")
        grouped: dict[str, list[str]] = {}
        for key, value in exchange.request.query():
            grouped.setdefault(key, []).append(value)
        for key, values in grouped.items():
            top = key.split(".")[0]
            field = transcode.field_of(request.DESCRIPTOR, top)
            if field is None:
                raise bad_request(
                    "UNKNOWN_PARAMETER", f"unknown query parameter {key!r}", field=key
                )
            if binding.body and field.name == binding.body:
                raise bad_request("UNEXPECTED_QUERY", f"{key} belongs in the body", field=key)
            transcode.set_value(request, key, values)

    @staticmethod
    def _headers(
        exchange: Exchange, binding: transcode.Binding, request: Message, body: Any
    ) -> None:
        """If-Match -> etag, Idempotency-Key -> request_id; PATCH without updateMask
        writes exactly the fields present in the body."""
        headers = exchange.request.headers
        for header, field_name in _CONSUMED_HEADERS.items():
            value = headers.get(header)
            if value is None:
                continue
            if field_name == "etag":
                value = transcode.unquote_etag(value)
            holder = _holder_of(request, binding, field_name)
            if holder is None:
                raise bad_request("UNSUPPORTED_HEADER", f"{header} does not apply to this method")
            setattr(holder, field_name, value)
        if (
            binding.http_method == "PATCH"
            and "update_mask" in request.DESCRIPTOR.fields_by_name
            and not request.HasField("update_mask")
            and binding.body not in ("", "*")
        ):
            sub = _field_message(request, binding.body)
            paths = transcode.present_paths(body, sub.DESCRIPTOR)
            request.update_mask.paths.extend(p for p in paths if p not in ("name", "etag"))  # type: ignore[attr-defined]


def _field_message(request: Message, name: str) -> Message:
    field = request.DESCRIPTOR.fields_by_name.get(name)
    if field is None or field.message_type is None:
        raise AssertionError(f"{name} is not a message field of {request.DESCRIPTOR.name}")
    return getattr(request, name)  # type: ignore[no-any-return]


def _holder_of(request: Message, binding: transcode.Binding, field_name: str) -> Message | None:
    """The message that carries `field_name`: the request, else its body message."""
    if field_name in request.DESCRIPTOR.fields_by_name:
        return request
    if binding.body and binding.body != "*":
        sub = _field_message(request, binding.body)
        if field_name in sub.DESCRIPTOR.fields_by_name:
            return sub
    return None
