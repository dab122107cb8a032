"""Azure Import/Export (classic) dialect, profile `transfer` (dialects.md §3, seed 002).

Jobs under `/{sub}/services/importexport/storageaccounts/{account}/jobs`, one jobcontrol
collection per (subscription, account), created on the first Put Job. Strict header
discipline (versions, 406 negotiation, method tunnelling, conditional requests) is here;
every lifecycle rule (delete only in Creating/Completed, Shipping only from Creating with
shipping details, cancellation, per-state mutability, the active-job quota) is the core's.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC
from email.utils import format_datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import grpc
import orjson
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from jobcontrol.gateway import conditional
from jobcontrol.gateway.dialects.legacy_base import Dialect, Exchange
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error
from jobcontrol.gateway.http import Request, Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

PREFIX = "/{sub}/services/importexport/storageaccounts/{account}"
VERSIONS = ("2014-05-01", "2014-11-01")
ODATA_LEVELS = ("minimalmetadata", "nometadata", "fullmetadata")
TYPES = {"Import": r.TransferSpec.IMPORT, "Export": r.TransferSpec.EXPORT}
STATES = {
    "Creating": r.CREATING, "Shipping": r.SHIPPING, "Received": r.RECEIVED,
    "Transferring": r.TRANSFERRING, "Packaging": r.PACKAGING, "Completed": r.COMPLETED,
    "Closed": r.CLOSED, "Faulted": r.FAULTED,
}  # fmt: skip
# PascalCase property -> (proto path for the update mask, sub-message field names)
PROPERTIES: dict[str, tuple[str, dict[str, str]]] = {
    "Type": ("transfer.type", {}),
    "Location": ("transfer.location", {}),
    "State": ("state", {}),
    "ReturnAddress": ("transfer.return_address",
                      {"Name": "name", "Address": "address", "Phone": "phone", "Email": "email"}),
    "ReturnShipping": ("transfer.return_shipping",
                       {"CarrierName": "carrier_name",
                        "CarrierAccountNumber": "carrier_account_number"}),
    "DeliveryPackage": ("transfer.delivery_package",
                        {"CarrierName": "carrier_name", "TrackingNumber": "tracking_number",
                         "DriveCount": "drive_count", "ShipDate": "ship_date"}),
    "CancelRequested": ("transfer.cancel_requested", {}),
    "FriendlyName": ("display_name", {}),
    "Description": ("transfer.description", {}),
    "PercentComplete": ("transfer.percent_complete", {}),
}  # fmt: skip
DRIVE_FIELDS = {"DriveId": "drive_id", "BitLockerKey": "bit_locker_key",
                "ManifestFile": "manifest_file", "State": "state"}  # fmt: skip

# (HTTP status, ExtendedCode) by ErrorInfo reason, then by gRPC code.
BY_REASON: dict[str, tuple[int, str]] = {
    "JOB_NOT_FOUND": (404, "JobNotFound"),
    "COLLECTION_NOT_FOUND": (404, "JobNotFound"),
    "JOB_ALREADY_EXISTS": (409, "JobAlreadyExists"),
    "JOB_NOT_DELETABLE_IN_STATE": (409, "JobNotDeletableInCurrentState"),
    "QUOTA_EXCEEDED": (409, "ActiveJobLimitReached"),
    "STATE_NOT_SETTABLE": (400, "InvalidStateTransition"),
    "INVALID_STATE_TRANSITION": (400, "InvalidStateTransition"),
    "SHIPPING_INFO_REQUIRED": (400, "ShippingInformationRequired"),
    "FIELD_VALUE_NOT_ALLOWED": (400, "InvalidPropertyValue"),
    "FIELD_NOT_MUTABLE_IN_STATE": (409, "PropertyNotUpdatableInCurrentState"),
    "ETAG_MISMATCH": (412, "ConditionNotMet"),
    "CONDITION_NOT_MET": (412, "ConditionNotMet"),
    "MULTIPLE_CONDITION_HEADERS": (400, "MultipleConditionHeadersNotSupported"),
    "NOT_ACCEPTABLE": (406, "NotAcceptable"),
    "MISSING_VERSION": (400, "InvalidXMsVersionHeader"),
    "INVALID_METHOD_OVERRIDE": (400, "InvalidHttpMethodOverride"),
    "ROUTE_NOT_FOUND": (404, "ResourceNotFound"),
    "METHOD_NOT_ALLOWED": (405, "MethodNotAllowed"),
    "BODY_TOO_LARGE": (413, "RequestBodyTooLarge"),
}
BY_CODE: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "InvalidRequest"),
    grpc.StatusCode.NOT_FOUND: (404, "ResourceNotFound"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "Conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "Conflict"),
    grpc.StatusCode.ABORTED: (412, "ConditionNotMet"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (409, "Conflict"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServiceUnavailable"),
}


def _not_acceptable(what: str) -> GatewayError:
    return gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "NOT_ACCEPTABLE", what, 406)


def _json_media(value: str, with_odata: bool) -> bool:
    media, *params = [part.strip() for part in value.split(";")]
    if media.lower() != "application/json":
        return False
    for param in params:
        key, _, level = param.partition("=")
        if key.strip().lower() == "odata" and with_odata and level.strip() in ODATA_LEVELS:
            continue
        if key.strip().lower() == "charset":
            continue
        return False
    return True


class ImportExportDialect(Dialect):
    """Azure Import/Export classic: Put, Get/Head, List, Update properties, Delete."""

    name = "importexport"
    case_insensitive = True
    request_id_header: ClassVar[str] = "x-ms-request-id"
    condition_rules = conditional.ConditionRules(read_not_modified=False)

    def __init__(self) -> None:
        route = self.route
        super().__init__(
            [
                route("PUT", PREFIX + "/jobs/{name}", self.put_job),
                route("GET", PREFIX + "/jobs/{name}", self.get_job),
                route("PATCH", PREFIX + "/jobs/{name}", self.patch_job),
                route("DELETE", PREFIX + "/jobs/{name}", self.delete_job),
                route("GET", PREFIX + "/jobs", self.list_jobs),
            ]
        )

    # --- the seam ---------------------------------------------------------------------

    def claims(self, request: Any) -> bool:
        path: str = request.path
        parts = path.lower().split("/")
        return len(parts) > 3 and parts[2] == "services" and parts[3] == "importexport"

    def new_request_id(self, request: Request) -> str:
        return os.urandom(16).hex()

    def prepare(self, request: Request) -> None:
        """X-HTTP-Method: PATCH or PUT tunnelled through GET or POST."""
        override = request.headers.get("x-http-method")
        if override is None:
            return
        if override.upper() not in ("PATCH", "PUT") or request.method not in ("GET", "POST"):
            message = f"X-HTTP-Method {override} is not allowed on {request.method}."
            raise bad_request("INVALID_METHOD_OVERRIDE", message)
        request.method = override.upper()

    def check_headers(self, ex: Exchange) -> None:
        headers = ex.request.headers
        if headers.get("x-ms-version") not in VERSIONS:
            raise bad_request("MISSING_VERSION", "x-ms-version must be 2014-05-01 or 2014-11-01.")
        fmt = dict(ex.request.query()).get("$format")
        if fmt is not None:
            if fmt.lower() != "json" and not _json_media(fmt, with_odata=True):
                raise _not_acceptable(f"$format {fmt} is not supported; use json.")
        elif "accept" in headers:
            offered = [m.strip() for m in headers["accept"].split(",") if m.strip()]
            if not any(m in ("*/*", "application/*") or _json_media(m, True) for m in offered):
                raise _not_acceptable(f"Accept {headers['accept']} is not supported.")
        if "content-type" in headers and not _json_media(headers["content-type"], True):
            raise _not_acceptable(f"Content-Type {headers['content-type']} is not supported.")
        if "accept-language" in headers:
            tags = [t.split(";")[0].strip().lower() for t in headers["accept-language"].split(",")]
            if not tags or any(tag not in ("en", "en-us") for tag in tags):
                raise _not_acceptable("Only en and en-us are supported.")
        if headers.get("content-encoding", "identity").lower() != "identity":
            raise _not_acceptable("Only identity content encoding is supported.")

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        status, extended = BY_REASON.get(error.reason) or BY_CODE.get(
            error.code, (500, "InternalError")
        )
        body = {
            "odata.error": {
                "code": str(status),
                "message": {"lang": "en-US", "value": error.message},
                "azure.values": [{"ExtendedCode": extended},
                                 {"ExtendedInformation": error.reason or error.code.name}],
            }
        }  # fmt: skip
        response = Response(status, orjson.dumps(body), "application/json")
        return response.header("content-encoding", "identity")

    def finish(self, response: Response, exchange: Exchange, request_id: str) -> Response:
        version = exchange.request.headers.get("x-ms-version", "")
        response.header("x-ms-request-id", request_id)
        # Date comes from the HTTP server (uvicorn), on every response of every dialect
        return response.header("x-ms-version", version if version in VERSIONS else VERSIONS[-1])

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def collection_id(sub: str, account: str) -> str:
        """The jobcontrol collection of a (subscription, storage account)."""
        key = f"{sub}\n{account}".encode()
        return "ie-" + hashlib.sha1(key, usedforsecurity=False).hexdigest()

    def _parent(self, ex: Exchange) -> str:
        return f"collections/{self.collection_id(ex.params['sub'], ex.params['account'])}"

    def _job_name(self, ex: Exchange) -> str:
        return f"{self._parent(ex)}/jobs/{ex.params['name']}"

    def _entity(self, ex: Exchange, status: int, job: r.Job, body: bool) -> Response:
        content = orjson.dumps(job_json(job)) if body else b""
        response = Response(status, content, "application/json" if body else None)
        response.header("etag", f'W/"{job.etag}"')
        modified = job.update_time.ToDatetime(tzinfo=UTC)
        response.header("last-modified", format_datetime(modified, usegmt=True))
        base = f"http://{ex.request.headers.get('host', 'localhost')}"
        p = ex.params
        url = f"{base}/{p['sub']}/services/importexport/storageaccounts/{p['account']}/jobs"
        return response.header("dataserviceid", f"{url}/{job.name.rsplit('/', 1)[-1]}")

    # --- routes -----------------------------------------------------------------------

    async def put_job(self, ex: Exchange) -> Response:
        """Create (or replace a Creating job): 201 with the job."""
        body = await ex.json_object()
        if "Name" in body and body["Name"] != ex.params["name"]:
            raise bad_request("INVALID_BODY", "Name differs from the job name in the URL.")
        job = to_job(body)
        await self._check_put_conditions(ex)
        request = pb.CreateJobRequest(parent=self._parent(ex), job_id=ex.params["name"], job=job)
        p = ex.params
        labels = {"dialect": "importexport", "subscription": p["sub"], "account": p["account"]}
        collection = r.Collection(profile=r.TRANSFER, labels=labels)
        cid = self.collection_id(p["sub"], p["account"])
        created = await ex.call_creating("CreateJob", request, r.Job, cid, collection)
        return self._entity(ex, 201, created, body=True)

    async def _check_put_conditions(self, ex: Exchange) -> None:
        """If-* on Put Job, against the job as it is (or its absence)."""
        found = ex.conditions()
        if found.header is None:
            return
        try:
            job = await ex.call("GetJob", pb.GetJobRequest(name=self._job_name(ex)), r.Job)
            etag, modified = job.etag, job.update_time.ToDatetime(tzinfo=UTC)
        except GatewayError as error:
            if error.code != grpc.StatusCode.NOT_FOUND:
                raise
            etag, modified = None, None
        if conditional.outcome(found, "PUT", etag, modified, self.condition_rules) is not None:
            raise gateway_error(grpc.StatusCode.ABORTED, "CONDITION_NOT_MET",
                                "The condition specified was not met.")  # fmt: skip

    async def get_job(self, ex: Exchange) -> Response:
        job = await ex.call("GetJob", pb.GetJobRequest(name=self._job_name(ex)), r.Job)
        modified = job.update_time.ToDatetime(tzinfo=UTC)
        verdict = conditional.outcome(ex.conditions(), "GET", job.etag, modified,
                                      self.condition_rules)  # fmt: skip
        if verdict is not None:
            raise gateway_error(grpc.StatusCode.ABORTED, "CONDITION_NOT_MET",
                                "The condition specified was not met.")  # fmt: skip
        return self._entity(ex, 200, job, body=True)

    async def list_jobs(self, ex: Exchange) -> Response:
        params = dict(ex.request.query())
        clauses = []
        if "type" in params:
            if params["type"] not in TYPES:
                raise bad_request(
                    "INVALID_QUERY", f"type must be Import or Export: {params['type']}"
                )
            clauses.append(f'type = "{params["type"].upper()}"')
        if "states" in params:
            names = [s.strip() for s in params["states"].split(",") if s.strip()]
            unknown = [n for n in names if n not in STATES]
            if unknown or not names:
                raise bad_request("INVALID_QUERY", f"unknown states: {unknown or params['states']}")
            clauses.append("(" + " OR ".join(f"state = {n.upper()}" for n in names) + ")")
        try:
            top = int(params.get("$top", "100"))
        except ValueError:
            raise bad_request("INVALID_QUERY", "$top must be an integer") from None
        if not 1 <= top <= 100:
            raise bad_request("INVALID_QUERY", "$top must be 1-100")
        request = pb.ListJobsRequest(
            parent=self._parent(ex),
            filter=" AND ".join(clauses),
            page_size=top,
            page_token=params.get("$skiptoken", ""),
        )
        try:
            reply = await ex.call("ListJobs", request, pb.ListJobsResponse)
        except GatewayError as error:
            if error.reason != "COLLECTION_NOT_FOUND":
                raise
            reply = pb.ListJobsResponse()
        body: dict[str, Any] = {"value": [job_json(j) for j in reply.jobs]}
        if reply.next_page_token:
            kept = [(k, v) for k, v in ex.request.query() if k != "$skiptoken"]
            kept.append(("$skiptoken", reply.next_page_token))
            base = f"http://{ex.request.headers.get('host', 'localhost')}"
            body["odata.nextLink"] = f"{base}{ex.request.path}?{urlencode(kept, safe='$,')}"
        return Response(200, orjson.dumps(body), "application/json")

    async def patch_job(self, ex: Exchange) -> Response:
        """Update Job Properties: 204; the rules are the core's."""
        body = await ex.json_object()
        properties = body.get("Properties", {})
        if not isinstance(properties, dict) or set(body) - {"Properties", "DriveList", "Name"}:
            raise bad_request("INVALID_BODY", "The body holds Properties (and DriveList) only.")
        paths = [PROPERTIES[k][0] for k in properties if k in PROPERTIES]
        unknown = set(properties) - set(PROPERTIES)
        if unknown:
            raise bad_request("INVALID_BODY", f"Unknown properties: {sorted(unknown)}")
        if "DriveList" in body:
            paths.append("transfer.drives")
        job = to_job(body)
        job.name = self._job_name(ex)
        fields = ex.write_conditions()
        if "etag" in fields:
            job.etag = fields.pop("etag")
        if not paths:
            current = await ex.call("GetJob", pb.GetJobRequest(name=job.name), r.Job)
            return self._entity(ex, 204, current, body=False)
        mask = field_mask_pb2.FieldMask(paths=paths)
        request = pb.UpdateJobRequest(job=job, update_mask=mask, **fields)
        updated = await ex.call("UpdateJob", request, r.Job)
        return self._entity(ex, 204, updated, body=False)

    async def delete_job(self, ex: Exchange) -> Response:
        request = pb.DeleteJobRequest(name=self._job_name(ex), **ex.write_conditions())
        await ex.call("DeleteJob", request, operations_pb2.Operation)
        return Response(204, b"", None)


def to_job(body: dict[str, Any]) -> r.Job:
    """A Job from the classic JSON (Properties in PascalCase, DriveList)."""
    properties = body.get("Properties") or {}
    if not isinstance(properties, dict):
        raise bad_request("INVALID_BODY", "Properties must be an object.")
    job = r.Job()
    spec = job.transfer
    spec.SetInParent()
    for key, value in properties.items():
        if key not in PROPERTIES:
            raise bad_request("INVALID_BODY", f"Unknown property {key}.")
        try:
            _set_property(job, key, value)
        except (TypeError, ValueError) as exc:
            raise bad_request("INVALID_BODY", f"{key}: {exc}") from None
    drives = body.get("DriveList")
    if drives is not None:
        if not isinstance(drives, list):
            raise bad_request("INVALID_BODY", "DriveList must be an array.")
        for item in drives:
            if not isinstance(item, dict) or set(item) - set(DRIVE_FIELDS):
                raise bad_request("INVALID_BODY", "DriveList items hold DriveId, BitLockerKey, "
                                  "ManifestFile, State.")  # fmt: skip
            spec.drives.add(**{DRIVE_FIELDS[k]: str(v) for k, v in item.items()})
    return job


def _set_property(job: r.Job, key: str, value: Any) -> None:
    spec = job.transfer
    if key == "Type":
        if value not in TYPES:
            raise ValueError(f"must be Import or Export, not {value!r}")
        spec.type = TYPES[value]
    elif key == "State":
        if value not in STATES:
            raise ValueError(f"unknown state {value!r}")
        job.state = STATES[value]
    elif key == "CancelRequested":
        if not isinstance(value, bool):
            raise TypeError("must be a boolean")
        spec.cancel_requested = value
    elif key == "PercentComplete":
        spec.percent_complete = int(value)
    elif key in ("Location", "Description"):
        setattr(spec, key.lower(), str(value))
    elif key == "FriendlyName":
        job.display_name = str(value)
    else:
        path, fields = PROPERTIES[key]
        if not isinstance(value, dict) or set(value) - set(fields):
            raise ValueError(f"holds {', '.join(fields)}")
        target = getattr(spec, path.split(".")[1])
        target.SetInParent()
        for name, item in value.items():
            setattr(target, fields[name], int(item) if fields[name] == "drive_count" else str(item))


def job_json(job: r.Job) -> dict[str, Any]:
    """The classic job JSON."""
    spec = job.transfer
    props: dict[str, Any] = {
        "Type": next((k for k, v in TYPES.items() if v == spec.type), "Import"),
        "State": next((k for k, v in STATES.items() if v == job.state), "Creating"),
        "Location": spec.location,
    }
    for key, (path, fields) in PROPERTIES.items():
        if fields and spec.HasField(path.split(".")[1]):  # type: ignore[arg-type]
            message = getattr(spec, path.split(".")[1])
            props[key] = {name: getattr(message, field) for name, field in fields.items()
                          if getattr(message, field) not in ("", 0)}  # fmt: skip
    props["CancelRequested"] = spec.cancel_requested
    if job.display_name:
        props["FriendlyName"] = job.display_name
    if spec.description:
        props["Description"] = spec.description
    props["PercentComplete"] = spec.percent_complete
    out: dict[str, Any] = {"Name": job.name.rsplit("/", 1)[-1], "Properties": props}
    if spec.drives:
        out["DriveList"] = [{"DriveId": d.drive_id, "ManifestFile": d.manifest_file,
                             "State": d.state} for d in spec.drives]  # fmt: skip
    return out
