"""One request as a dialect's pure functions see it: method, path parameters, query,
headers, the whole body, and what the dialect's header checks found. Nothing here does I/O."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import orjson
from cryptography import x509
from google.protobuf.message import Message

from jobcontrol.gateway import conditional
from jobcontrol.gateway.errors import bad_request, gateway_error
from jobcontrol.gateway.http import Request
from jobcontrol.v1 import job_service_pb2

if TYPE_CHECKING:
    from jobcontrol.gateway.dialects.base import Dialect
    from jobcontrol.gateway.dialects.routing import Route


M = TypeVar("M", bound=Message)


@dataclass
class Incoming:
    """The request, routed; `state` holds what `check_headers` found (an account, a
    session)."""

    request: Request
    request_id: str
    dialect: Dialect
    route: Route | None = None
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    state: dict[str, Any] = field(default_factory=dict)
    # when the request arrived (time.monotonic), for deadlines counted from arrival
    received: float = field(default_factory=time.monotonic)

    @property
    def status(self) -> int:
        """The route's success status."""
        return self.route.status if self.route is not None else 200

    @property
    def headers(self) -> dict[str, str]:
        return self.request.headers

    def query(self) -> list[tuple[str, str]]:
        """Decoded query parameters in order, repeats kept."""
        return self.request.query()

    def query_map(self, lower: bool = False) -> dict[str, str]:
        """Query parameters by name (the last of repeats wins; names lower-cased on
        request)."""
        return {(k.lower() if lower else k): v for k, v in self.request.query()}

    def base_url(self) -> str:
        """What links in responses start with: the gateway's configured public URL (never
        the request's Host header, which the client chooses)."""
        return self.dialect.base_url

    def client_certificate(self) -> x509.Certificate | None:
        """The TLS client certificate the connection presented (verified by the listener
        against its trust store), if any."""
        tls = (self.request.scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or ()
        return x509.load_pem_x509_certificate(chain[0].encode()) if chain else None

    @property
    def client_address(self) -> str:
        """The peer's IP address ("" when unknown)."""
        client = self.request.scope.get("client")
        return str(client[0]) if client else ""

    def json(self, required: bool = False) -> dict[str, Any]:
        """The body as a JSON object: 400 MALFORMED_JSON / INVALID_BODY otherwise (an empty
        body is `{}` unless `required`)."""
        if not self.body.strip():
            if required:
                raise bad_request("MALFORMED_JSON", "A JSON body is required.")
            return {}
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise bad_request("MALFORMED_JSON", f"The body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise bad_request("INVALID_BODY", "The body must be a JSON object.")
        return value

    def conditions(self) -> conditional.Conditions:
        """The request's deciding If-* condition under the dialect's rules; a refused
        combination is 400 with reason MULTIPLE_CONDITION_HEADERS."""
        try:
            return conditional.parse(self.request.headers, self.dialect.condition_rules)
        except conditional.ConditionError as exc:
            raise bad_request(
                "MULTIPLE_CONDITION_HEADERS", str(exc), headers=",".join(exc.present)
            ) from None

    def write_conditions(self, etag_in: Any = str) -> dict[str, Any]:
        """The request's If-* condition as fields of a jobcontrol write request (`etag`,
        `preconditions`), so that the core checks it in the write's transaction. `etag_in`
        maps the dialect's entity tags to jobcontrol etags."""
        found = self.conditions()
        if found.etags and not found.any:
            found = conditional.Conditions(found.header, tuple(map(etag_in, found.etags)))
        try:
            fields = conditional.for_write(found)
        except ValueError as exc:
            raise bad_request("INVALID_CONDITION", str(exc)) from None
        wanted: dict[str, Any] = fields.pop("preconditions", {})  # type: ignore[assignment]
        if wanted:
            message = job_service_pb2.Preconditions()
            for key, value in wanted.items():
                if isinstance(value, datetime):
                    getattr(message, key).FromDatetime(value)
                else:
                    setattr(message, key, value)
            fields["preconditions"] = message
        return fields

    def condition(self, message: M, etag_in: Any = str) -> M:
        """`message` (a write request) carrying the request's If-* condition: the etag in
        its `etag` field (UpdateJob, CreateJob: `job.etag`) and the rest in
        `preconditions`."""
        fields = self.write_conditions(etag_in)
        if "etag" in fields:
            holder: Any = message if "etag" in message.DESCRIPTOR.fields_by_name else message.job  # type: ignore[attr-defined]
            holder.etag = fields["etag"]
        if "preconditions" in fields:
            message.preconditions.MergeFrom(fields["preconditions"])  # type: ignore[attr-defined]
        return message

    def read_outcome(
        self, etag: str, modified: datetime, etag_in: Any = str
    ) -> conditional.Outcome | None:
        """For a read: None when the request's condition holds for the resource as read,
        else 304 or 412 by the dialect's rules."""
        found = self.conditions()
        tags = tuple(etag_in(t) if t != "*" else t for t in found.etags)
        return conditional.outcome(
            conditional.Conditions(found.header, tags, found.when),
            self.request.method,
            etag,
            modified,
            self.dialect.condition_rules,
        )

    def remaining(self, timeout: float | None) -> float | None:
        """What is left of a request timeout counted from arrival; a timeout that has
        already run out is DEADLINE_EXCEEDED here, without calling upstream."""
        if timeout is None:
            return None
        left = timeout - (time.monotonic() - self.received)
        if left <= 0:
            raise gateway_error(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "DEADLINE_EXCEEDED",
                "the request timeout ran out before the call",
            )
        return left
