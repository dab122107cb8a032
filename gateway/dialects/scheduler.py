"""Azure Scheduler (classic) dialect, profile `scheduled` (../shared/spec/dialects.md §1)."""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar

import grpc

from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialect_state import DialectState, outcome_name
from jobcontrol.gateway.dialects import scheduler_certs as management
from jobcontrol.gateway.dialects import scheduler_rows as rows
from jobcontrol.gateway.dialects import scheduler_xml as xml
from jobcontrol.gateway.dialects.base import Assertion, Dialect
from jobcontrol.gateway.dialects.error_table import ErrorRow, ErrorTable
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error
from jobcontrol.gateway.http import Request, Response

__all__ = ["ERRORS", "SchedulerDialect"]

MIN_VERSION = "2013-06-01"
SCHEDULER = "/{sub}/cloudServices/{cs}/resources/scheduler"
JOBS = SCHEDULER + "/~/jobCollections/{jc}/jobs"
# a job collection answers at the documented `~` address and at the one without it
COLLECTIONS = (SCHEDULER + "/jobCollections", SCHEDULER + "/~/jobCollections")
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_CONFLICT = "ConflictError"
_NOT_FOUND = "ResourceNotFound"
ERRORS = ErrorTable(
    by_reason={
        management.AUTHENTICATION_FAILED: ErrorRow(403, "AuthenticationFailed", management.MESSAGE),
        "MISSING_VERSION": ErrorRow(400, "MissingOrIncorrectVersionHeader"),
        "INVALID_QUERY": ErrorRow(400, "MissingOrInvalidRequiredQueryParameter"),
        "INVALID_XML": ErrorRow(400, "InvalidXmlRequest"),
        # the documented answer to a body over 16 KiB is 400, not 413
        "BODY_TOO_LARGE": ErrorRow(400, "BadRequest", "The request body is too large: {message}."),
        "ROUTE_NOT_FOUND": ErrorRow(
            404, _NOT_FOUND, "The requested URI does not represent any resource on the server."
        ),
        "METHOD_NOT_ALLOWED": ErrorRow(405, "BadRequest"),
        "ID_NOT_ALLOWED": ErrorRow(400, "BadRequest"),
        "JOB_NOT_FOUND": ErrorRow(404, _NOT_FOUND, "The job '{job}' was not found."),
        "COLLECTION_NOT_FOUND": ErrorRow(
            404, _NOT_FOUND, "The job collection '{jc}' was not found."
        ),
        "CLOUD_SERVICE_NOT_FOUND": ErrorRow(
            404, _NOT_FOUND, "The cloud service '{cs}' was not found."
        ),
        "OPERATION_NOT_FOUND": ErrorRow(404, _NOT_FOUND, "The operation '{rid}' was not found."),
        "JOB_ALREADY_EXISTS": ErrorRow(409, _CONFLICT, "The job '{job}' already exists."),
        "JOB_COMPLETED": ErrorRow(
            409, _CONFLICT, "The job '{job}' is completed and cannot be updated."
        ),
        "JOB_FAULTED": ErrorRow(
            409, _CONFLICT, "The job '{job}' is faulted and cannot be updated."
        ),
        "QUOTA_EXCEEDED": ErrorRow(
            409, _CONFLICT, "The job collection '{jc}' has reached its maximum job count."
        ),
        "RECURRENCE_QUOTA_EXCEEDED": ErrorRow(
            409, _CONFLICT, "The recurrence is more frequent than the job collection '{jc}' allows."
        ),
        "STATE_NOT_SETTABLE": ErrorRow(
            400, "BadRequest", "The state of a job may only be set to enabled or disabled."
        ),
        "FORBIDDEN_FIELD@name": ErrorRow(
            400, "BadRequest", "The job id in the body does not match the job id in the URL."
        ),
        "FORBIDDEN_FIELD@status": ErrorRow(
            400, "BadRequest", "The status of a job cannot be updated."
        ),
    },
    by_code={
        grpc.StatusCode.INVALID_ARGUMENT: ErrorRow(400, "BadRequest"),
        grpc.StatusCode.OUT_OF_RANGE: ErrorRow(400, "BadRequest"),
        grpc.StatusCode.NOT_FOUND: ErrorRow(404, _NOT_FOUND, "The resource was not found."),
        grpc.StatusCode.ALREADY_EXISTS: ErrorRow(409, _CONFLICT),
        grpc.StatusCode.FAILED_PRECONDITION: ErrorRow(409, _CONFLICT),
        grpc.StatusCode.ABORTED: ErrorRow(409, _CONFLICT),
        grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorRow(409, _CONFLICT),
        grpc.StatusCode.PERMISSION_DENIED: ErrorRow(403, "AuthenticationFailed"),
        grpc.StatusCode.UNAUTHENTICATED: ErrorRow(403, "AuthenticationFailed"),
        grpc.StatusCode.UNAVAILABLE: ErrorRow(
            503, "ServerBusy", "The server cannot answer at the moment. Please retry the request."
        ),
        grpc.StatusCode.DEADLINE_EXCEEDED: ErrorRow(
            503, "ServerBusy", "The server did not answer in time. Please retry the request."
        ),
    },
    fallback=ErrorRow(
        500, "InternalError", "The server encountered an internal error. Please retry the request."
    ),
)


class SchedulerDialect(Dialect):
    """Azure Scheduler classic: jobs, job collections, cloud services, operation status."""

    name = "scheduler"
    case_insensitive = True
    # `get_all_jobs()` of the Service Management client asks for `…/jobs/`
    trailing_slash = True
    request_id_header: ClassVar[str] = "x-ms-request-id"
    documented_max_body = 16 * 1024
    errors = ERRORS
    collection_id = staticmethod(rows.collection_id)

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        # who may call: the management certificates of each subscription (None: open mode)
        self.certs = management.ManagementCerts.from_settings(settings)
        row, job = self.row, JOBS + "/{job}"
        super().__init__(
            [
                row("PUT", job, "UpdateJob", rows.build_put_job, rows.render_put_job, 201),
                row("POST", JOBS, "CreateJob", rows.build_post_job, rows.render_job, 201),
                row("GET", job, "GetJob", rows.build_get_job, rows.render_job),
                row("GET", JOBS, "ListJobs", rows.build_list_jobs, rows.render_jobs),
                row("PATCH", job, "UpdateJob", rows.build_patch_job, rows.render_job, 202),
                row("DELETE", job, "DeleteJob", rows.build_delete_job, rows.render_empty),
                row("DELETE", JOBS, "DeleteJobs", rows.build_delete_jobs, rows.render_empty),
                row("GET", job + "/history", "ListJobHistory", rows.build_history,
                    rows.render_history),
                *(
                    row(method, base + "/{jc}", rpc, build, render, status)
                    for base in COLLECTIONS
                    for method, rpc, build, render, status in (
                        ("PUT", "UpdateCollection", rows.build_put_collection,
                         rows.render_empty, 202),
                        ("GET", "GetCollection", rows.build_get_collection,
                         rows.render_collection, 200),
                        ("DELETE", "DeleteCollection", rows.build_delete_collection,
                         rows.render_empty, 200),
                    )
                ),
                # Check Name Availability: POST …/jobCollections?op=checknameavailability
                *(
                    row("POST", base, "ListCollections", rows.build_check_name,
                        rows.render_check_name)
                    for base in COLLECTIONS
                ),
                row("GET", "/{sub}/cloudServices/{cs}", "ListCollections",
                    rows.build_cloud_service, rows.render_cloud_service),
                # the outcomes of requests, kept by the core (any gateway's)
                row("GET", "/{sub}/operations/{rid}", None, None, render_operation,
                    load=load_operation),
            ]
        )  # fmt: skip

    def claims(self, request: Request) -> bool:
        """`/{sub}/cloudServices/…` and `/{sub}/operations/…`."""
        parts = request.path.split("/")
        return len(parts) > 2 and parts[2].lower() in ("cloudservices", "operations")

    def new_request_id(self, request: Request) -> str:
        """Service Management request ids are always issued by the service."""
        return os.urandom(16).hex()

    def prepare(self, request: Request) -> None:
        """The management certificate, before anything else (routing, versions, body):
        403 AuthenticationFailed unless it is registered for the path's subscription."""
        self.certs.principal(request, management.path_subscription(request))

    def assertion(self, incoming: Incoming) -> Assertion | None:
        """`azure:<subscription>`, owner of the job collection the route derives (none on
        the cloud-service listing: the core shows the collections the principal owns)."""
        principal = self.certs.principal(incoming.request, incoming.params.get("sub", ""))
        if principal is None:
            return None
        collection = rows.addressed_collection(incoming)
        return Assertion(principal, (("owner", collection),) if collection else ())

    def check_headers(self, incoming: Incoming) -> None:
        """`x-ms-version` (a date, 2013-06-01 or later) on every request."""
        version = incoming.headers.get("x-ms-version", "")
        if not _VERSION.match(version) or version < MIN_VERSION:
            raise bad_request(
                "MISSING_VERSION",
                f"The x-ms-version header is missing or older than {MIN_VERSION}.",
            )

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        """The Service Management `<Error>`; its code and message are kept for Get
        Operation Status."""
        code = row.code or "InternalError"
        message = self.errors.message(row, error, incoming.params)
        response = Response(row.status, xml.encode_error(code, message), rows.XML)
        response.extra["error"] = (code, message)
        # a caller that did not authenticate leaves no trace (it could evict others')
        response.extra["unauthenticated"] = error.reason == management.AUTHENTICATION_FAILED
        return response

    def finish(self, response: Response, incoming: Incoming) -> Response:
        """Every response carries its request id."""
        return response.header(self.request_id_header, incoming.request_id)

    async def record(self, response: Response, incoming: Incoming, state: DialectState) -> None:
        """Its outcome is kept in the core for Get Operation Status under the request's
        subscription, before the response is sent (so that any gateway can answer it)."""
        if response.extra.get("unauthenticated"):
            return
        name = outcome_name(self.name, _subscription(incoming), incoming.request_id)
        if name is not None:
            code, message = response.extra.get("error", ("", ""))
            await state.record_outcome(name, response.status, code, message)


async def load_operation(incoming: Incoming, state: DialectState) -> None:
    """The outcome of a request of the same subscription (another subscription's request
    ids are unknown here)."""
    rid = incoming.params["rid"]
    name = outcome_name(SchedulerDialect.name, incoming.params["sub"], rid)
    found = await _outcome(state, name) if name is not None else None
    if found is None:
        raise gateway_error(grpc.StatusCode.NOT_FOUND, "OPERATION_NOT_FOUND",
                            f"no request {rid} in this subscription")  # fmt: skip
    incoming.state["outcome"] = found


async def _outcome(state: DialectState, name: str) -> Any:
    """The recorded outcome, or None if the core does not know it."""
    try:
        return await state.get_outcome(name)
    except GatewayError as error:
        if error.code == grpc.StatusCode.NOT_FOUND:
            return None
        raise


def render_operation(incoming: Incoming, reply: None) -> Response:
    """Get Operation Status: the outcome `load_operation` found."""
    outcome = incoming.state["outcome"]
    body = xml.encode_operation(
        incoming.params["rid"], outcome.http_status, outcome.error_code, outcome.error_message
    )
    return Response(200, body, rows.XML)


def _subscription(incoming: Incoming) -> str:
    """The subscription a request addressed (also for requests no route matched)."""
    if "sub" in incoming.params:
        return incoming.params["sub"]
    return management.path_subscription(incoming.request)
