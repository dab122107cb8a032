"""Azure Batch dialect, profile `batch`: route rows, shared key, BatchError table (spec §2)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import ClassVar, TypeVar
from urllib.parse import parse_qs

import grpc
import orjson

from jobcontrol.gateway.dialects import batch_query as query
from jobcontrol.gateway.dialects import batch_rows as rows
from jobcontrol.gateway.dialects.base import Assertion, Dialect
from jobcontrol.gateway.dialects.batch_auth import (
    CLOCK_SKEW,
    authenticate,
    parse_accounts,
    string_to_sign,
)
from jobcontrol.gateway.dialects.batch_errors import encode_error, error_values
from jobcontrol.gateway.dialects.batch_values import check_http_dates
from jobcontrol.gateway.dialects.error_table import ErrorRow, ErrorTable
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.gateway.http import Request, Response

__all__ = ["ERRORS", "BatchDialect", "parse_accounts", "string_to_sign"]

API_VERSION = "2025-06-01"
# Batch's top-level collections: all of them are this dialect's (unserved ones answer 404)
COLLECTIONS = frozenset({
    "jobs", "jobschedules", "pools", "certificates", "applications", "poolusagemetrics",
    "nodecounts", "supportedimages", "lifetimejobstats", "lifetimepoolstats", "$metadata",
})  # fmt: skip

# --- the error table -------------------------------------------------------------------------

# Batch's error codes: HTTP status and the documented message
CODES: dict[str, tuple[int, str]] = {
    "JobNotFound": (404, "The specified job does not exist."),
    "TaskNotFound": (404, "The specified task does not exist."),
    "ResourceNotFound": (404, "The specified resource does not exist."),
    "JobExists": (409, "The specified job already exists."),
    "TaskExists": (409, "The specified task already exists."),
    "ResourceExists": (409, "The specified resource already exists."),
    "JobBeingDeleted": (
        409,
        "The specified job has been marked for deletion and is being reclaimed.",
    ),
    "JobBeingTerminated": (409, "The specified job is in the process of being terminated."),
    "JobCompleted": (409, "The specified job is already in a completed state."),
    "OperationInvalidForCurrentState": (
        409,
        "The specified operation is not valid for the current state of the resource.",
    ),
    "ActiveJobAndScheduleQuotaReached": (
        409,
        "The specified account has reached the maximum number of active jobs and job schedules.",
    ),
    "ConditionNotMet": (
        412,
        "The condition specified using HTTP conditional header(s) is not met.",
    ),
    "MissingRequiredProperty": (400, "A required property was not specified in the request body."),
    "InvalidPropertyValue": (
        400,
        "The value provided for one of the properties in the request body is invalid.",
    ),
    "InvalidRequestBody": (400, "The specified Request Body is not syntactically valid."),
    "InvalidQueryParameterValue": (
        400,
        "The value for one of the query parameters specified in the request URI is invalid.",
    ),
    "MissingRequiredQueryParameter": (
        400,
        "A query parameter that's mandatory for this request is not specified.",
    ),
    "UnsupportedRequestVersion": (400, "The specified Api Version is not supported."),
    "MultipleConditionHeadersNotSupported": (400, "Multiple condition headers are not supported."),
    "InvalidHeaderValue": (
        400,
        "The value for one of the HTTP headers is not in the correct format.",
    ),
    "AuthenticationFailed": (
        403,
        "Server failed to authenticate the request. Make sure the value of "
        "Authorization header is formed correctly including the signature.",
    ),
    # what Batch answers a request its credentials do not allow (Azure/BatchExplorer#2203)
    "AuthorizationFailure": (403, "This request is not authorized to perform this operation."),
    "UnsupportedHttpVerb": (405, "The resource doesn't support the specified HTTP verb."),
    "RequestBodyTooLarge": (
        413,
        "The request body is too large and exceeds the maximum permissible limit.",
    ),
    "OperationTimedOut": (500, "The operation could not be completed within the permitted time."),
    "InternalError": (
        500,
        "Server encountered an internal error. Please try again after some time.",
    ),
    "ServerBusy": (
        503,
        "The server is currently unable to receive requests. Please retry your request.",
    ),
}
K = TypeVar("K")


def _row(code: str) -> ErrorRow:
    status, message = CODES[code]
    return ErrorRow(status, code, message)


def _rows(codes: Mapping[K, str]) -> dict[K, ErrorRow]:
    return {key: _row(code) for key, code in codes.items()}


ERRORS = ErrorTable(
    by_reason=_rows({
        "JOB_NOT_FOUND": "JobNotFound",
        "COLLECTION_NOT_FOUND": "JobNotFound",  # the account has no job yet
        # an id no job can have (e.g. with a '/'): there is no such job
        "INVALID_FIELD@name": "JobNotFound",
        "INVALID_FIELD@job.name": "JobNotFound",
        "INVALID_FIELD@parent": "JobNotFound",
        "TASK_NOT_FOUND": "TaskNotFound",
        "JOB_ALREADY_EXISTS": "JobExists",
        "TASK_ALREADY_EXISTS": "TaskExists",
        "JOB_BEING_DELETED": "JobBeingDeleted",
        "JOB_BEING_TERMINATED": "JobBeingTerminated",
        "JOB_COMPLETED": "JobCompleted",
        "OPERATION_INVALID_FOR_STATE": "OperationInvalidForCurrentState",
        "FIELD_NOT_MUTABLE_IN_STATE": "OperationInvalidForCurrentState",
        "ETAG_MISMATCH": "ConditionNotMet",
        "CONDITION_NOT_MET": "ConditionNotMet",
        "MULTIPLE_CONDITION_HEADERS": "MultipleConditionHeadersNotSupported",
        "INVALID_CONDITION": "InvalidHeaderValue",
        "INVALID_HEADER": "InvalidHeaderValue",
        "REQUIRED_FIELD_MISSING": "MissingRequiredProperty",
        "FIELD_VALUE_NOT_ALLOWED": "InvalidPropertyValue",
        "INVALID_FIELD": "InvalidPropertyValue",
        "MALFORMED_JSON": "InvalidRequestBody",
        "INVALID_BODY": "InvalidRequestBody",
        "INVALID_QUERY": "InvalidQueryParameterValue",
        "INVALID_FILTER": "InvalidQueryParameterValue",
        "INVALID_PAGE_TOKEN": "InvalidQueryParameterValue",
        "MISSING_API_VERSION": "MissingRequiredQueryParameter",
        "UNSUPPORTED_API_VERSION": "UnsupportedRequestVersion",
        "AUTHENTICATION_FAILED": "AuthenticationFailed",
        # the core's refusals: the gateway's own identity (or a policy) does not allow it
        "UNAUTHENTICATED": "AuthenticationFailed",
        "PERMISSION_DENIED": "AuthorizationFailure",
        "ROUTE_NOT_FOUND": "ResourceNotFound",
        "METHOD_NOT_ALLOWED": "UnsupportedHttpVerb",
        "BODY_TOO_LARGE": "RequestBodyTooLarge",
        "QUOTA_EXCEEDED": "ActiveJobAndScheduleQuotaReached",
    }),
    by_code=_rows({
        grpc.StatusCode.INVALID_ARGUMENT: "InvalidPropertyValue",
        grpc.StatusCode.NOT_FOUND: "ResourceNotFound",
        grpc.StatusCode.ALREADY_EXISTS: "ResourceExists",
        grpc.StatusCode.FAILED_PRECONDITION: "OperationInvalidForCurrentState",
        grpc.StatusCode.ABORTED: "ConditionNotMet",
        grpc.StatusCode.RESOURCE_EXHAUSTED: "ActiveJobAndScheduleQuotaReached",
        grpc.StatusCode.PERMISSION_DENIED: "AuthorizationFailure",
        grpc.StatusCode.UNAUTHENTICATED: "AuthenticationFailed",
        grpc.StatusCode.UNAVAILABLE: "ServerBusy",
        grpc.StatusCode.DEADLINE_EXCEEDED: "OperationTimedOut",
    }),
    fallback=_row("InternalError"),
)  # fmt: skip
# on the task route, a malformed name is the task's
TASK_ROUTE_ERRORS = {"INVALID_FIELD@name": _row("TaskNotFound")}


# --- the dialect ---------------------------------------------------------------------------


class BatchDialect(Dialect):
    """Azure Batch jobs and tasks at the account root, for shared-key accounts; each
    account is the principal `batch:<account>` and owns one jobcontrol collection,
    created with its first job."""

    name = "batch"
    case_insensitive = True
    request_id_header: ClassVar[str] = "request-id"
    errors = ERRORS
    # the SharedKey header is the gateway's to check; the server hears the asserted account
    forward_authorization = False

    def __init__(self, accounts: dict[str, bytes], clock_skew: float = CLOCK_SKEW) -> None:
        """`accounts`: lower-case name -> key (parse_accounts); `clock_skew`: seconds a
        request's ocp-date / Date may be off the gateway's clock."""
        self.accounts = accounts
        self.clock_skew = clock_skew
        row, b = self.row, rows
        super().__init__(
            [
                row("POST", "/jobs", "CreateJob", b.build_add_job, b.render_written, 201),
                row("GET", "/jobs", "ListJobs", b.build_list_jobs, b.render_job_list),
                row("GET", "/jobs/{job}", "GetJob", b.build_get_job, b.render_job),
                row("PATCH", "/jobs/{job}", "UpdateJob", b.build_patch_job, b.render_written),
                row("PUT", "/jobs/{job}", "UpdateJob", b.build_replace_job, b.render_written),
                row("DELETE", "/jobs/{job}", "DeleteJob", b.build_delete_job, b.render_empty, 202),
                row("POST", "/jobs/{job}/disable", "PauseJob", b.build_disable_job,
                    b.render_written, 202),
                row("POST", "/jobs/{job}/enable", "ResumeJob", b.build_enable_job,
                    b.render_written, 202),
                row("POST", "/jobs/{job}/terminate", "TerminateJob", b.build_terminate_job,
                    b.render_written, 202),
                row("POST", "/jobs/{job}/tasks", "CreateTask", b.build_add_task,
                    b.render_task_created, 201),
                row("GET", "/jobs/{job}/tasks", "ListTasks", b.build_list_tasks,
                    b.render_task_list),
                row("GET", "/jobs/{job}/tasks/{task}", "GetTask", b.build_get_task, b.render_task,
                    errors=TASK_ROUTE_ERRORS),
                row("GET", "/jobs/{job}/taskcounts", "CountTasks", b.build_count_tasks,
                    b.render_task_counts),
            ]
        )  # fmt: skip

    @staticmethod
    def collection_id(account: str) -> str:
        """The jobcontrol collection of a Batch account."""
        return rows.collection_id(account)

    def claims(self, request: Request) -> bool:
        """Every Batch top-level collection, in any case (`/jobs`, `/pools`, ...)."""
        return request.path.split("/")[1].lower() in COLLECTIONS

    def new_request_id(self, request: Request) -> str:
        """A GUID, as Batch's request-id is."""
        return str(uuid.uuid4())

    def check_headers(self, incoming: Incoming) -> None:
        """The shared-key signature and the request's date (which name the account) before
        anything else, then single query parameters, api-version, `timeOut` and the If-*
        dates."""
        incoming.state["account"] = authenticate(incoming.request, self.accounts,
                                                 self.clock_skew)  # fmt: skip
        query.check_single(incoming.query())
        versions = parse_qs(incoming.request.query_string).get("api-version")
        if not versions:
            raise bad_request("MISSING_API_VERSION", "The api-version query parameter is missing.",
                              QueryParameterName="api-version")  # fmt: skip
        version = versions[0]
        if version != API_VERSION and not version.startswith(API_VERSION + "."):
            raise bad_request("UNSUPPORTED_API_VERSION", f"api-version {version} is not supported.",
                              QueryParameterName="api-version",
                              QueryParameterValue=version)  # fmt: skip
        incoming.state["timeout"] = query.decode_timeout(incoming.query_map(lower=True))
        check_http_dates(incoming.headers)

    def assertion(self, incoming: Incoming) -> Assertion | None:
        """The account the signature proved, as `batch:<account>` owning its collection."""
        # check_headers set it: without it the call must fail, never go out unasserted
        account: str = incoming.state["account"]
        return Assertion(f"batch:{account}", (("owner", rows.collection_id(account)),))

    def timeout(self, incoming: Incoming) -> float | None:
        """`timeOut` (seconds, at most 30; 30 when absent) is the call's deadline."""
        found: float = incoming.state.get("timeout", query.MAX_TIMEOUT)
        return found

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        """A BatchError with the table's code and Batch's message."""
        message = self.errors.message(row, error, incoming.params)
        when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = encode_error(incoming.base_url(), row.code, message, incoming.request_id, when,
                            error_values(error))  # fmt: skip
        return Response(row.status, orjson.dumps(body), rows.JSON)

    def finish(self, response: Response, incoming: Incoming) -> Response:
        """request-id always; client-request-id only when return-client-request-id: true."""
        response.header("request-id", incoming.request_id)
        headers = incoming.headers
        if headers.get("return-client-request-id", "").lower() == "true":
            response.header("client-request-id", headers.get("client-request-id", ""))
        return response
