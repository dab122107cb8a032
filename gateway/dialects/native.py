"""The native JSON mapping: every RPC at the path of its google.api.http rule, proto3 JSON
bodies, AIP-193 errors. Routes come from the descriptors, none is written by hand."""

from __future__ import annotations

import functools
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from google.protobuf import descriptor
from google.protobuf.message import Message

from jobcontrol.gateway import transcode
from jobcontrol.gateway.dialects.base import Assertion, Dialect
from jobcontrol.gateway.dialects.error_table import ErrorRow
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.routing import Route, Rpc
from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.gateway.http import Request, Response

_CONSUMED_HEADERS = {"if-match": "etag", "idempotency-key": "request_id"}


class NativeDialect(Dialect):
    """AIP-127 transcoding of the jobcontrol.v1 services (and google.longrunning)."""

    name = "native"

    def __init__(
        self,
        services: list[descriptor.ServiceDescriptor],
        client_ca: x509.Certificate | None = None,
    ) -> None:
        self.client_ca = client_ca
        self.bindings = transcode.bindings(services)
        super().__init__(
            [
                Route(
                    b.http_method,
                    b.template,
                    Rpc(b.rpc, b.output_type),
                    functools.partial(build, b),
                    functools.partial(render, b),
                    name=b.rpc,
                    data=b,
                )
                for b in self.bindings
            ]
        )

    def claims(self, request: Request) -> bool:
        return request.path.startswith(("/v1/", "/v1:"))

    def assertion(self, incoming: Incoming) -> Assertion | None:
        """A caller without a bearer token that presented a client certificate issued by
        the gateway's client CA is `cert:<subject>` (RFC 4514, as the server names mTLS
        principals); with a token, the token travels instead."""
        if self.client_ca is None or "authorization" in incoming.headers:
            return None
        cert = incoming.client_certificate()
        if cert is None:
            return None
        try:
            cert.verify_directly_issued_by(self.client_ca)
        except (ValueError, TypeError, InvalidSignature):
            return None  # e.g. a management certificate: trusted for its dialect only
        return Assertion(f"cert:{cert.subject.rfc4514_string()}")

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        """AIP-193: {"error": {"code", "status", "message", "details"}}."""
        body = {
            "error": {
                "code": row.status,
                "status": error.code.name,
                "message": error.message,
                "details": error.details,
            }
        }
        response = Response(row.status, orjson.dumps(body))
        if row.status == 401:  # RFC 6750: how to authenticate
            response.header("www-authenticate", 'Bearer realm="jobcontrol"')
        return response


def build(binding: transcode.Binding, incoming: Incoming) -> Message:
    """The request message: path variables, then the body, then the query string, then
    the headers that map to fields."""
    request = binding.input_type()
    body: Any = None
    if binding.body:
        body = transcode.parse_json(incoming.body) if incoming.body.strip() else {}
        target = request if binding.body == "*" else _field_message(request, binding.body)
        transcode.merge_json(body, target, "body")
    for field, value in incoming.params.items():
        transcode.set_value(request, field, [value])
    _query(incoming, binding, request)
    _headers(incoming, binding, request, body)
    return request


def render(binding: transcode.Binding, incoming: Incoming, reply: Message) -> Response:
    """The reply (or its `response_body` field) as proto3 JSON, with its etag."""
    if binding.response_body:
        reply = getattr(reply, binding.response_body)
    response = Response(incoming.status, transcode.render(reply))
    etag = getattr(reply, "etag", None) if "etag" in reply.DESCRIPTOR.fields_by_name else None
    if etag:
        response.header("etag", f'"{etag}"')
    return response


def _query(incoming: Incoming, binding: transcode.Binding, request: Message) -> None:
    """Fields not bound by the path or the body come from the query string."""
    if binding.body == "*" and incoming.request.query_string:
        raise bad_request("UNEXPECTED_QUERY", "this method takes its fields from the body")
    grouped: dict[str, list[str]] = {}
    for key, value in incoming.query():
        grouped.setdefault(key, []).append(value)
    for key, values in grouped.items():
        top = key.split(".")[0]
        field = transcode.field_of(request.DESCRIPTOR, top)
        if field is None:
            raise bad_request("UNKNOWN_PARAMETER", f"unknown query parameter {key!r}", field=key)
        if binding.body and field.name == binding.body:
            raise bad_request("UNEXPECTED_QUERY", f"{key} belongs in the body", field=key)
        transcode.set_value(request, key, values)


def _headers(incoming: Incoming, binding: transcode.Binding, request: Message, body: Any) -> None:
    """If-Match -> etag, Idempotency-Key -> request_id; PATCH without updateMask writes
    exactly the fields present in the body."""
    headers = incoming.headers
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
