"""Azure Import/Export (classic) dialect, profile `transfer` (dialects.md §3, seed 002)."""

# Jobs under `/{sub}/services/importexport/storageaccounts/{account}/jobs`, one jobcontrol
# collection per (subscription, account), created by the first Put Job in the create's own
# transaction. Header discipline (versions, 406 negotiation, method tunnelling, condition
# pairs) is here; every lifecycle rule and every If-* check of a write is the core's.

from __future__ import annotations

import os
from datetime import UTC
from typing import ClassVar
from urllib.parse import quote

import grpc
import orjson
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from jobcontrol.gateway import conditional
from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialects import importexport_codec as codec
from jobcontrol.gateway.dialects import scheduler_certs as management
from jobcontrol.gateway.dialects.base import Assertion, Dialect
from jobcontrol.gateway.dialects.error_table import ErrorRow, ErrorTable
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error
from jobcontrol.gateway.http import Request, Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

PREFIX = "/{sub}/services/importexport/storageaccounts/{account}"
VERSIONS = ("2014-05-01", "2014-11-01")
ODATA_LEVELS = ("minimalmetadata", "nometadata", "fullmetadata")
LANGUAGES = ("en", "en-us")
# If-Match * on a create means "only if the job exists"; Preconditions says that as "not
# modified after the end of time", which every existing job meets and a missing one fails
CONDITION_NOT_MET = "The condition specified using HTTP conditional header(s) is not met."

_ROWS: dict[str, ErrorRow] = {
    # the Service Management API's answer to a certificate it does not know
    management.AUTHENTICATION_FAILED: ErrorRow(403, "AuthenticationFailed", management.MESSAGE),
    "JOB_NOT_FOUND": ErrorRow(404, "JobNotFound", "The job {name} does not exist."),
    "COLLECTION_NOT_FOUND": ErrorRow(404, "JobNotFound", "The job {name} does not exist."),
    "JOB_ALREADY_EXISTS": ErrorRow(
        409, "JobAlreadyExists", "The job {name} already exists and is no longer Creating."
    ),
    "JOB_NOT_DELETABLE_IN_STATE": ErrorRow(
        409,
        "JobNotDeletableInCurrentState",
        "The job {name} can be deleted only in the Creating or Completed state.",
    ),
    "QUOTA_EXCEEDED": ErrorRow(
        409,
        "ActiveJobLimitReached",
        "The storage account {account} has reached its limit of active jobs.",
    ),
    "STATE_NOT_SETTABLE": ErrorRow(
        400, "InvalidStateTransition", "State may only be set to Shipping."
    ),
    "INVALID_STATE_TRANSITION": ErrorRow(
        400, "InvalidStateTransition", "The job {name} can move to Shipping only from Creating."
    ),
    "SHIPPING_INFO_REQUIRED": ErrorRow(
        400,
        "ShippingInformationRequired",
        "ReturnAddress and DeliveryPackage must be set before the job {name} is Shipping.",
    ),
    "REQUIRED_FIELD_MISSING": ErrorRow(
        400, "InvalidRequest", "A job needs Properties.Type and Properties.Location."
    ),
    "FIELD_VALUE_NOT_ALLOWED": ErrorRow(400, "InvalidPropertyValue"),
    "FIELD_VALUE_NOT_ALLOWED@job.transfer.cancel_requested": ErrorRow(
        400, "InvalidPropertyValue", "CancelRequested may only be set to true."
    ),
    "FIELD_NOT_MUTABLE_IN_STATE": ErrorRow(409, "PropertyNotUpdatableInCurrentState"),
    **{
        f"FIELD_NOT_MUTABLE_IN_STATE@{path}": ErrorRow(
            409,
            "PropertyNotUpdatableInCurrentState",
            f"{key} cannot be updated in the current state of the job {{name}}.",
        )
        for key, path in {**codec.PATHS, "DriveList": "transfer.drives"}.items()
        if key != "State"
    },
    **{
        f"FIELD_IMMUTABLE@job.{codec.PATHS[key]}": ErrorRow(
            400, "InvalidRequest", f"{key} cannot be changed after the job is created."
        )
        for key in ("Type", "Location")
    },
    "INVALID_PAGE_TOKEN": ErrorRow(
        400, "InvalidRequest", "The $skiptoken was not issued for this query."
    ),
    "ETAG_MISMATCH": ErrorRow(412, "ConditionNotMet", CONDITION_NOT_MET),
    "CONDITION_NOT_MET": ErrorRow(412, "ConditionNotMet", CONDITION_NOT_MET),
    "MULTIPLE_CONDITION_HEADERS": ErrorRow(400, "MultipleConditionHeadersNotSupported"),
    "NOT_ACCEPTABLE": ErrorRow(406, "NotAcceptable"),
    "MISSING_VERSION": ErrorRow(400, "InvalidXMsVersionHeader"),
    "INVALID_METHOD_OVERRIDE": ErrorRow(400, "InvalidHttpMethodOverride"),
    "ROUTE_NOT_FOUND": ErrorRow(404, "ResourceNotFound"),
    "METHOD_NOT_ALLOWED": ErrorRow(405, "MethodNotAllowed"),
    "BODY_TOO_LARGE": ErrorRow(413, "RequestBodyTooLarge"),
}
_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: ErrorRow(400, "InvalidRequest"),
    grpc.StatusCode.NOT_FOUND: ErrorRow(404, "ResourceNotFound"),
    grpc.StatusCode.ALREADY_EXISTS: ErrorRow(409, "Conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: ErrorRow(409, "Conflict"),
    grpc.StatusCode.ABORTED: ErrorRow(412, "ConditionNotMet"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: ErrorRow(409, "Conflict"),
    grpc.StatusCode.UNAVAILABLE: ErrorRow(503, "ServiceUnavailable"),
    # Azure's common codes for these (the classic API documents no others)
    grpc.StatusCode.DEADLINE_EXCEEDED: ErrorRow(500, "OperationTimedOut"),
    grpc.StatusCode.UNAUTHENTICATED: ErrorRow(403, "AuthenticationFailed"),
    grpc.StatusCode.PERMISSION_DENIED: ErrorRow(403, "AuthorizationFailure"),
}


# --- build and render of the rows (pure) ----------------------------------------------


def parent(incoming: Incoming) -> str:
    """The collection of the request's (subscription, account)."""
    return f"collections/{codec.collection_id(incoming.params['sub'], incoming.params['account'])}"


def job_name(incoming: Incoming) -> str:
    """The jobcontrol name of the addressed job."""
    return f"{parent(incoming)}/jobs/{incoming.params['name']}"


def build_put(incoming: Incoming) -> pb.CreateJobRequest:
    """Put Job: one CreateJob that creates the account's collection if needed and carries
    the If-* condition on the job it would replace (or on its absence)."""
    p = incoming.params
    request = pb.CreateJobRequest(
        parent=parent(incoming),
        job_id=p["name"],
        job=codec.decode_job(incoming.json(), p["name"]),
        collection_template=codec.decode_collection(p["sub"], p["account"]),
    )
    return incoming.condition(request)


def build_get(incoming: Incoming) -> pb.GetJobRequest:
    """Get Job; a refused pair of conditions is 400 before any call."""
    incoming.conditions()
    return pb.GetJobRequest(name=job_name(incoming))


def build_list(incoming: Incoming) -> pb.ListJobsRequest:
    """List Jobs: ListJobs with a structured filter and the page of `$skiptoken`."""
    return codec.decode_list_query(incoming.query_map(), parent(incoming))


def build_patch(incoming: Incoming) -> pb.UpdateJobRequest:
    """Update Job Properties: the mask the Properties mean (none for an empty body) and the
    If-* condition, both for the core to check."""
    job, paths = codec.decode_patch(incoming.json())
    job.name = job_name(incoming)
    mask = field_mask_pb2.FieldMask(paths=paths)
    return incoming.condition(pb.UpdateJobRequest(job=job, update_mask=mask))


def build_delete(incoming: Incoming) -> pb.DeleteJobRequest:
    """Delete Job with the If-* condition."""
    return incoming.condition(pb.DeleteJobRequest(name=job_name(incoming)))


def entity(incoming: Incoming, job: r.Job, with_body: bool) -> Response:
    """A job response: the job JSON (or nothing) with ETag, Last-Modified, DataServiceId."""
    content = orjson.dumps(codec.encode_job(job)) if with_body else b""
    response = Response(incoming.status, content, "application/json" if with_body else None)
    # the ids percent-encoded: a header value never carries what the client's path decoded to
    sub, account = (quote(incoming.params[k], safe="") for k in ("sub", "account"))
    url = f"{incoming.base_url()}/{sub}/services/importexport/storageaccounts/{account}"
    name = quote(job.name.rsplit("/", 1)[-1], safe="")
    for header in codec.encode_job_headers(job, f"{url}/jobs/{name}"):
        response.header(*header)
    return response


def render_job(incoming: Incoming, job: r.Job) -> Response:
    """Get / Head Job: the job, if the request's condition holds for it (else 412)."""
    modified = job.update_time.ToDatetime(tzinfo=UTC)
    if incoming.read_outcome(job.etag, modified) is not None:
        raise gateway_error(grpc.StatusCode.ABORTED, "CONDITION_NOT_MET", CONDITION_NOT_MET)
    return entity(incoming, job, with_body=True)


def render_written(incoming: Incoming, job: r.Job) -> Response:
    """Put Job (201, the job) and Update Job (204, headers only), from the write's reply."""
    return entity(incoming, job, with_body=incoming.status != 204)


def render_list(incoming: Incoming, reply: pb.ListJobsResponse) -> Response:
    """`{"value": [...], "odata.nextLink"}`."""
    url = f"{incoming.base_url()}{incoming.request.path}"
    link = codec.encode_next_link(url, incoming.query(), reply.next_page_token)
    return Response(200, orjson.dumps(codec.encode_job_list(reply, link)))


def render_deleted(incoming: Incoming, reply: operations_pb2.Operation) -> Response:
    """Delete Job: 204, no body."""
    return Response(204, b"", None)


# --- header checks ----------------------------------------------------------------------


def _not_acceptable(what: str) -> GatewayError:
    return gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "NOT_ACCEPTABLE", what, 406)


def _json_media(value: str) -> bool:
    media, *params = [part.strip() for part in value.split(";")]
    if media.lower() != "application/json":
        return False
    for param in params:
        key, _, level = param.partition("=")
        key = key.strip().lower()
        if not (key == "charset" or (key == "odata" and level.strip() in ODATA_LEVELS)):
            return False
    return True


def _check_negotiation(headers: dict[str, str], fmt: str | None) -> None:
    """$format overrides Accept; Content-Type, Accept-Language, Content-Encoding."""
    if fmt is not None:
        if fmt.lower() != "json" and not _json_media(fmt):
            raise _not_acceptable(f"$format {fmt} is not supported; use json.")
    elif "accept" in headers:
        offered = [m.strip() for m in headers["accept"].split(",") if m.strip()]
        if not any(m in ("*/*", "application/*") or _json_media(m) for m in offered):
            raise _not_acceptable(f"Accept {headers['accept']} is not supported.")
    if "content-type" in headers and not _json_media(headers["content-type"]):
        raise _not_acceptable(f"Content-Type {headers['content-type']} is not supported.")
    if "accept-language" in headers:
        tags = [t.split(";")[0].strip().lower() for t in headers["accept-language"].split(",")]
        if not tags or any(tag not in LANGUAGES for tag in tags):
            raise _not_acceptable("Only en and en-us are supported.")
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise _not_acceptable("Only identity content encoding is supported.")


class ImportExportDialect(Dialect):
    """Azure Import/Export classic: Put, Get/Head, List, Update properties, Delete."""

    name = "importexport"
    case_insensitive = True
    request_id_header: ClassVar[str] = "x-ms-request-id"
    # every unmet condition is 412, reads included (seed 002)
    condition_rules = conditional.ConditionRules(read_not_modified=False)
    errors = ErrorTable(by_reason=_ROWS, by_code=_BY_CODE, fallback=ErrorRow(500, "InternalError"))

    def __init__(self, settings: GatewaySettings | None = None) -> None:
        # who may call: the management certificates of each subscription (None: open mode)
        self.certs = management.ManagementCerts.from_settings(settings)
        row, job = self.row, PREFIX + "/jobs/{name}"
        super().__init__(
            [
                row("PUT", job, "CreateJob", build_put, render_written, 201),
                row("GET", job, "GetJob", build_get, render_job),
                row("PATCH", job, "UpdateJob", build_patch, render_written, 204),
                row("DELETE", job, "DeleteJob", build_delete, render_deleted, 204),
                row("GET", PREFIX + "/jobs", "ListJobs", build_list, render_list),
            ]
        )

    collection_id = staticmethod(codec.collection_id)

    def claims(self, request: Request) -> bool:
        parts = request.path.lower().split("/")
        return len(parts) > 3 and parts[2] == "services" and parts[3] == "importexport"

    def new_request_id(self, request: Request) -> str:
        return os.urandom(16).hex()

    def prepare(self, request: Request) -> None:
        """The management certificate first (403 AuthenticationFailed unless registered for
        the path's subscription), then X-HTTP-Method: PATCH or PUT through GET or POST."""
        self.certs.principal(request, management.path_subscription(request))
        override = request.headers.get("x-http-method")
        if override is None:
            return
        if override.upper() not in ("PATCH", "PUT") or request.method not in ("GET", "POST"):
            message = f"X-HTTP-Method {override} is not allowed on {request.method}."
            raise bad_request("INVALID_METHOD_OVERRIDE", message)
        request.method = override.upper()

    def assertion(self, incoming: Incoming) -> Assertion | None:
        """`azure:<subscription>`, owner of the storage account's collection."""
        principal = self.certs.principal(incoming.request, incoming.params.get("sub", ""))
        if principal is None:
            return None
        p = incoming.params
        return Assertion(principal, (("owner", codec.collection_id(p["sub"], p["account"])),))

    def check_headers(self, incoming: Incoming) -> None:
        if incoming.headers.get("x-ms-version") not in VERSIONS:
            raise bad_request("MISSING_VERSION", "x-ms-version must be 2014-05-01 or 2014-11-01.")
        _check_negotiation(incoming.headers, incoming.query_map().get("$format"))

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        message = self.errors.message(row, error, incoming.params)
        body = codec.encode_error(row.status, row.code, message, codec.error_information(error))
        response = Response(row.status, orjson.dumps(body), "application/json")
        return response.header("content-encoding", "identity")

    def finish(self, response: Response, incoming: Incoming) -> Response:
        version = incoming.headers.get("x-ms-version", "")
        response.header("x-ms-request-id", incoming.request_id)
        # Date comes from the HTTP server (uvicorn), on every response of every dialect
        return response.header("x-ms-version", version if version in VERSIONS else VERSIONS[-1])


__all__ = ["ImportExportDialect"]
