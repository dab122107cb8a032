"""The dialect seam. A dialect is its route rows (routing.py), its header checks, its error
table (error_table.py) and the pure codec functions its rows use; `handle` is written once
for all of them: route (404 / 405), check headers, read the body under the limit, build the
one request, call the server with the request's deadline, render the call's own reply, and
answer every failure in the dialect's own format."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from jobcontrol.gateway import conditional, metrics, templates
from jobcontrol.gateway.dialect_state import DialectState
from jobcontrol.gateway.dialects.error_table import ErrorRow, ErrorTable
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.routing import (
    NO_ERRORS,
    Build,
    Load,
    Render,
    Route,
    Rpc,
    Save,
    rpc,
)
from jobcontrol.gateway.errors import (
    GatewayError,
    internal_error,
    method_not_allowed,
    not_found,
    too_large,
)
from jobcontrol.gateway.http import BodyTooLarge, Request, Response
from jobcontrol.gateway.transcode import parse_timeout
from jobcontrol.gateway.upstream import Upstream

log = logging.getLogger("jobcontrol.gateway")
PRINCIPAL_HEADER = "x-jobcontrol-principal"
GRANTS_HEADER = "x-jobcontrol-grants"
# the id of the request being handled, as its dialect decided it (on every log line)
# ("-" outside a request, as the server's)
request_id: ContextVar[str] = ContextVar("gateway_request_id", default="-")
# with traces on (gateway/tracing.py): told each request's id once its dialect decides it
on_request_id: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Assertion:
    """A principal the gateway vouches for (`kind:name`) and the roles it holds for this
    call (`(role, collections glob)`), as the server's docs/security.md describes."""

    principal: str
    grants: tuple[tuple[str, str], ...] = ()

    def metadata(self) -> list[tuple[str, str]]:
        grants = ";".join(f"{role}={pattern}" for role, pattern in self.grants)
        return [(PRINCIPAL_HEADER, self.principal), (GRANTS_HEADER, grants)]


class Dialect:
    """Base of every dialect. Subclasses set `name`, `errors` and their rows, and override
    `claims`, `check_headers`, `format_error` and `finish` where their API differs."""

    name: ClassVar[str] = "dialect"
    case_insensitive: ClassVar[bool] = False
    # the dialect's own documented body limit, if it has one; the gateway's limit
    # (JOBCONTROL_MAX_BODY) caps every dialect and sets `max_body` (gateway/app.py)
    documented_max_body: ClassVar[int | None] = None
    max_body: int = 1024 * 1024
    request_id_header: ClassVar[str] = "x-request-id"
    # whether a ':' in the last segment may belong to an id rather than start a verb
    colons_in_ids: ClassVar[bool] = False
    # whether `/jobs/` routes like `/jobs` (clients that append a slash)
    trailing_slash: ClassVar[bool] = False
    # which If-* headers may be combined, and whether unmet reads are 304
    condition_rules: ClassVar[conditional.ConditionRules] = conditional.ConditionRules()
    # whether the caller's Authorization header travels upstream (not where it holds a
    # password the gateway itself checks)
    forward_authorization: ClassVar[bool] = True
    errors: ClassVar[ErrorTable] = ErrorTable()
    # what links start with (the gateway's public URL; gateway/app.py sets it)
    base_url: str = "http://localhost"

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)

    # --- what dialects override -----------------------------------------------------------

    def claims(self, request: Request) -> bool:
        """Whether the request belongs to this dialect (its prefix)."""
        raise NotImplementedError

    def prepare(self, request: Request) -> None:
        """Adjust the request before routing (e.g. method tunnelling); raise GatewayError."""

    def check_headers(self, incoming: Incoming) -> None:
        """Required headers, versions, content negotiation, credentials: raise
        GatewayError; what they establish goes into `incoming.state`."""

    async def admit(self, incoming: Incoming, state: DialectState) -> None:
        """Checks that need the dialects' state in the core (a live session), after
        `check_headers` and before the body is read: raise GatewayError."""

    async def record(self, response: Response, incoming: Incoming, state: DialectState) -> None:
        """Keep what the response says in the core before it is sent (an outcome another
        gateway may be asked about); a failure is logged, the response still sent."""

    def timeout(self, incoming: Incoming) -> float | None:
        """The request's deadline in seconds (`grpc-timeout`, `X-Request-Timeout`)."""
        return parse_timeout(incoming.headers)

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        """The dialect's error body for `error`, with the status of its table row."""
        raise NotImplementedError

    def finish(self, response: Response, incoming: Incoming) -> Response:
        """Headers every response of the dialect carries (request ids, versions)."""
        return response.header(self.request_id_header, incoming.request_id)

    def new_request_id(self, request: Request) -> str:
        """The id of this request (the caller's, where the dialect honours one)."""
        given = request.headers.get("x-request-id", "")
        return given[:128] if given else os.urandom(16).hex()

    def assertion(self, incoming: Incoming) -> Assertion | None:
        """The principal this gateway authenticated for the request itself (a dialect's
        account, session or certificate), which the server is told; None: the caller's own
        credentials (if any) travel instead."""
        return None

    def metadata(self, incoming: Incoming, upstream: Upstream) -> list[tuple[str, str]]:
        """gRPC metadata of the call: the request id, and either the principal the gateway
        asserts (with the gateway's own token) or the caller's Authorization. A client's
        own headers never name a principal: only these are sent."""
        out = [("x-request-id", incoming.request_id)]
        asserted = self.assertion(incoming)
        if asserted is not None:
            out += asserted.metadata()
            if upstream.authorization:
                out.append(("authorization", upstream.authorization))
            return out
        auth = incoming.headers.get("authorization")
        if auth and self.forward_authorization:
            out.append(("authorization", auth))
        return out

    # --- the seam -------------------------------------------------------------------------

    def resolve(self, request: Request) -> tuple[Route, dict[str, str]]:
        """The route for the request, or 404 / 405 as GatewayError."""
        path = request.path
        if self.trailing_slash and len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        segments, verb = templates.split_path(path)
        candidates = [(segments, verb)]
        if verb is not None and self.colons_in_ids:
            candidates.append((templates.split_path(path.replace(":", "%3A"))[0], None))
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
        """Route, check headers, read the body, build -> call -> render; every failure in
        the dialect's format."""
        incoming = Incoming(request, self.new_request_id(request), self)
        request_id.set(incoming.request_id)
        if on_request_id is not None:
            on_request_id(incoming.request_id)
        state = DialectState(upstream, incoming)
        try:
            self.prepare(request)
            incoming.route, incoming.params = self.resolve(request)
            # headers (versions, credentials) are judged before a body is read
            self.check_headers(incoming)
            await self.admit(incoming, state)
            incoming.body = await self._body(request)
            response = await self._run(incoming.route, incoming, upstream, state)
        except GatewayError as error:
            response = self._error(error, incoming)
        except Exception:  # a bug: still answer in the dialect's format, never a traceback
            log.exception("unhandled error in %s", request.path)
            response = self._error(internal_error(), incoming)
        response = self.finish(response, incoming)
        route = incoming.route.template.source if incoming.route is not None else None
        metrics.mark(response, self.name, route)
        try:
            await self.record(response, incoming, state)
        except Exception as exc:  # the answer stands; only the record is missing
            log.warning("%s: not recorded: %s", request.path, exc)
        return response

    async def _run(
        self, route: Route, incoming: Incoming, upstream: Upstream, state: DialectState
    ) -> Response:
        if route.load is not None:
            await route.load(incoming, state)
        message = route.build(incoming) if route.build is not None else None
        reply = None
        if message is not None and route.rpc is not None:
            reply = await upstream.call(
                route.rpc.path,
                message,
                route.rpc.reply,
                metadata=self.metadata(incoming, upstream),
                deadline=incoming.remaining(self.timeout(incoming)),
            )
        if route.save is not None:
            await route.save(incoming, reply, state)
        return route.render(incoming, reply)

    async def _body(self, request: Request) -> bytes:
        try:
            return await request.body(self.max_body)
        except BodyTooLarge:
            raise too_large(self.max_body) from None

    def _error(self, error: GatewayError, incoming: Incoming) -> Response:
        overrides = incoming.route.errors if incoming.route is not None else NO_ERRORS
        response = self.format_error(error, self.errors.row(error, overrides), incoming)
        if error.allow:
            response.header("allow", ", ".join(error.allow))
        return response

    @classmethod
    def row(
        cls,
        method: str,
        path: str,
        rpc_name: str | Rpc | None,
        build: Build | None,
        render: Render,
        status: int = 200,
        *,
        errors: Mapping[str, ErrorRow] = NO_ERRORS,
        name: str = "",
        data: Any = None,
        load: Load | None = None,
        save: Save | None = None,
    ) -> Route:
        """A row of the route table: its fixed segments matched with the dialect's case
        rule, its RPC looked up by name (an unknown name fails at start-up)."""
        call = rpc(rpc_name) if isinstance(rpc_name, str) else rpc_name
        template = templates.parse(path, cls.case_insensitive)
        return Route(method, template, call, build, render, status, name, errors, data, load, save)
