"""TEMPORARY (round-2 port in progress): the round-1 seam, kept only until every legacy
dialect runs on base.py. A dialect declares its routes (a table), its header rules, its codec
and its error formatter; the routing, 404/405, request ids, body limits and error
handling below are written once for all of them."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import grpc
import orjson
from google.protobuf.message import Message

from jobcontrol.gateway import conditional, templates
from jobcontrol.gateway.errors import (
    GatewayError,
    bad_request,
    gateway_error,
    internal_error,
    method_not_allowed,
    not_found,
    too_large,
)
from jobcontrol.gateway.http import BodyTooLarge, Request, Response
from jobcontrol.gateway.upstream import Upstream
from jobcontrol.v1 import job_service_pb2, resources_pb2

JOB_SERVICE = "/jobcontrol.v1.JobService/"
OPERATIONS = "/google.longrunning.Operations/"


@dataclass
class Exchange:
    """One request as a dialect handler sees it."""

    request: Request
    params: dict[str, str]
    request_id: str
    upstream: Upstream
    dialect: Dialect
    # None while routing (and for 404 / 405)
    route: Route | None = None
    state: dict[str, Any] = field(default_factory=dict)
    # when the request arrived (time.monotonic), for deadlines counted from arrival
    received: float = field(default_factory=time.monotonic)

    def remaining(self, timeout: float | None) -> float | None:
        """What is left of a request timeout counted from arrival; a timeout that has
        already run out is DEADLINE_EXCEEDED here, without calling upstream."""
        if timeout is None:
            return None
        left = timeout - (time.monotonic() - self.received)
        if left <= 0:
            raise gateway_error(grpc.StatusCode.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED",
                                "the request timeout ran out before the call")  # fmt: skip
        return left

    async def body(self) -> bytes:
        """The request body under the dialect's size limit (413 past it)."""
        try:
            return await self.request.body(self.dialect.max_body)
        except BodyTooLarge:
            raise too_large(self.dialect.max_body) from None

    def conditions(self) -> conditional.Conditions:
        """The request's deciding If-* condition under the dialect's rules; a refused
        combination is 400 with reason MULTIPLE_CONDITION_HEADERS."""
        try:
            return conditional.parse(self.request.headers, self.dialect.condition_rules)
        except conditional.ConditionError as exc:
            raise bad_request(
                "MULTIPLE_CONDITION_HEADERS", str(exc), headers=",".join(exc.present)
            ) from None

    async def call(self, method: str, request: Message, reply: type[Message]) -> Any:
        """A jobcontrol.v1.JobService call (e.g. "GetJob") with this request's metadata."""
        return await self.upstream.call(JOB_SERVICE + method, request, reply,
                                        metadata=self.metadata())  # fmt: skip

    async def call_operations(self, method: str, request: Message, reply: type[Message]) -> Any:
        """A google.longrunning.Operations call (e.g. "GetOperation")."""
        return await self.upstream.call(OPERATIONS + method, request, reply,
                                        metadata=self.metadata())  # fmt: skip

    async def call_creating(
        self,
        method: str,
        request: Message,
        reply: type[Message],
        collection_id: str,
        collection: resources_pb2.Collection,
    ) -> Any:
        """A write into the dialect's collection, creating the collection on first use
        (spec: the first write to an unknown prefix creates it), then retrying once."""
        try:
            return await self.call(method, request, reply)
        except GatewayError as error:
            if error.reason != "COLLECTION_NOT_FOUND":
                raise
        create = job_service_pb2.CreateCollectionRequest(
            collection_id=collection_id, collection=collection
        )
        try:
            await self.call("CreateCollection", create, resources_pb2.Collection)
        except GatewayError as error:
            if error.reason != "COLLECTION_ALREADY_EXISTS":
                raise
        return await self.call(method, request, reply)

    async def json_object(self, required: bool = False) -> dict[str, Any]:
        """The body as a JSON object: 400 MALFORMED_JSON / INVALID_BODY otherwise (an empty
        body is `{}` unless `required`)."""
        raw = await self.body()
        if not raw.strip():
            if required:
                raise bad_request("MALFORMED_JSON", "A JSON body is required.")
            return {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise bad_request("MALFORMED_JSON", f"The body is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise bad_request("INVALID_BODY", "The body must be a JSON object.")
        return value

    def write_conditions(self, etag_in: Callable[[str], str] = str) -> dict[str, Any]:
        """The request's If-* condition as fields of a jobcontrol write request (`etag`,
        `preconditions`), so the core checks it atomically. `etag_in` maps the dialect's
        entity tags to jobcontrol etags."""
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

    def metadata(self) -> list[tuple[str, str]]:
        """gRPC metadata forwarded upstream: the request id and, where the dialect's
        credentials are meant for the server, the caller's Authorization."""
        out = [("x-request-id", self.request_id)]
        auth = self.request.headers.get("authorization")
        if auth and self.dialect.forward_authorization:
            out.append(("authorization", auth))
        return out


Handler = Callable[[Exchange], Awaitable[Response]]
log = logging.getLogger("jobcontrol.gateway")


@dataclass(frozen=True)
class Route:
    """A row of a dialect's route table."""

    method: str
    template: templates.Template
    handler: Handler
    name: str = ""
    # free-form data the dialect attaches (e.g. the gRPC method it maps to)
    data: Any = None


class Codec:
    """A representation: how bodies are decoded and encoded."""

    content_type: ClassVar[str] = "application/json"

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode(self, body: bytes) -> Any:
        raise NotImplementedError


class Dialect:
    """Base of every dialect. Subclasses set `name`, `routes`, `codec`, and override
    `claims`, `check_headers`, `format_error` and `finish` where their API differs."""

    name: ClassVar[str] = "dialect"
    case_insensitive: ClassVar[bool] = False
    max_body: int = 1024 * 1024
    request_id_header: ClassVar[str] = "x-request-id"
    # whether a ':' in the last segment may belong to an id rather than start a verb
    colons_in_ids: ClassVar[bool] = False
    # which If-* headers may be combined, and whether unmet reads are 304
    condition_rules: ClassVar[conditional.ConditionRules] = conditional.ConditionRules()
    # whether the caller's Authorization header travels upstream (not where it holds a
    # password the gateway itself checks)
    forward_authorization: ClassVar[bool] = True

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)

    def claims(self, request: Any) -> bool:
        """Whether the request belongs to this dialect (its prefix)."""
        raise NotImplementedError

    def prepare(self, request: Request) -> None:
        """Adjust the request before routing (e.g. method tunnelling); raise GatewayError."""

    def check_headers(self, exchange: Exchange) -> None:
        """Required headers, versions, content negotiation: raise GatewayError."""

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        """The dialect's error body and status for `error`."""
        raise NotImplementedError

    def finish(self, response: Response, exchange: Exchange, request_id: str) -> Response:
        """Headers every response of the dialect carries (request ids, versions)."""
        return response.header(self.request_id_header, request_id)

    def new_request_id(self, request: Request) -> str:
        """The id of this request (the caller's, where the dialect honours one)."""
        given = request.headers.get("x-request-id", "")
        return given[:128] if given else os.urandom(16).hex()

    def resolve(self, request: Request) -> tuple[Route, dict[str, str]]:
        """The route for the request, or 404 / 405 as GatewayError."""
        segments, verb = templates.split_path(request.path)
        candidates = [(segments, verb)]
        if verb is not None and self.colons_in_ids:
            candidates.append((templates.split_path(request.path.replace(":", "%3A"))[0], None))
        allowed: list[str] = []
        for segs, v in candidates:
            for route in self.routes:
                params = route.template.match(segs, v)
                if params is None:
                    continue
                if route.method == request.method or (
                    request.method == "HEAD" and route.method == "GET"
                ):
                    return route, params
                allowed.append(route.method)
        if allowed:
            raise method_not_allowed(request.method, tuple(dict.fromkeys(allowed)))
        raise not_found(request.path)

    async def handle(self, request: Request, upstream: Upstream) -> Response:
        """Route, check headers, run the handler; every error in the dialect's format."""
        request_id = self.new_request_id(request)
        exchange = Exchange(request, {}, request_id, upstream, self)
        try:
            self.prepare(request)
            exchange.route, exchange.params = self.resolve(request)
            self.check_headers(exchange)
            response = await exchange.route.handler(exchange)
        except GatewayError as error:
            response = self._error(error, exchange)
        except Exception:  # a bug: still answer in the dialect's format, never a traceback
            log.exception("unhandled error in %s", request.path)
            response = self._error(internal_error(), exchange)
        return self.finish(response, exchange, request_id)

    def _error(self, error: GatewayError, exchange: Exchange) -> Response:
        response = self.format_error(error, exchange)
        if error.allow:
            response.header("allow", ", ".join(error.allow))
        return response

    @classmethod
    def route(
        cls, method: str, path: str, handler: Handler, name: str = "", data: Any = None
    ) -> Route:
        """A row of the route table, its fixed segments matched with the dialect's case
        rule."""
        return Route(method, templates.parse(path, cls.case_insensitive), handler, name, data)
