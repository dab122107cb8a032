"""Azure Scheduler (classic) dialect, profile `scheduled` (../shared/spec/dialects.md §1).

Jobs under `/{sub}/cloudServices/{cs}/resources/scheduler/~/jobCollections/{jc}` in the
JSON of seed 003; job collections and cloud services in Service Management XML; every error
in the Service Management XML error body. Each job collection is one jobcontrol collection
whose id is derived from (subscription, cloud service, job collection). Every rule is the
core's: this module only translates.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from typing import Any, ClassVar

import grpc
import orjson
from defusedxml import ElementTree as SafeET
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from jobcontrol.gateway.dialects import scheduler_json as sj
from jobcontrol.gateway.dialects.legacy_base import Dialect, Exchange
from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.gateway.http import Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

NS = "http://schemas.microsoft.com/windowsazure"
JSON = "application/json; charset=utf-8"
XML = "application/xml; charset=utf-8"
MIN_VERSION = "2013-06-01"
JOBS = "/{sub}/cloudServices/{cs}/resources/scheduler/~/jobCollections/{jc}/jobs"
COLLECTION = "/{sub}/cloudServices/{cs}/resources/scheduler/jobCollections/{jc}"
_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FILTER = re.compile(r"^\s*(state|status)\s+eq\s+'?([A-Za-z]+)'?\s*$", re.IGNORECASE)
_FREQ_XML = {"Minute": "MINUTE", "Hour": "HOUR", "Day": "DAY", "Week": "WEEK", "Month": "MONTH"}

# (HTTP status, Service Management code) by ErrorInfo reason, then by gRPC code.
BY_REASON: dict[str, tuple[int, str]] = {
    "MISSING_VERSION": (400, "MissingOrIncorrectVersionHeader"),
    "INVALID_QUERY": (400, "MissingOrInvalidRequiredQueryParameter"),
    "INVALID_XML": (400, "InvalidXmlRequest"),
    "BODY_TOO_LARGE": (400, "BadRequest"),
    "ROUTE_NOT_FOUND": (404, "ResourceNotFound"),
    "METHOD_NOT_ALLOWED": (405, "BadRequest"),
    "JOB_COMPLETED": (409, "ConflictError"),
    "JOB_FAULTED": (409, "ConflictError"),
    "QUOTA_EXCEEDED": (409, "ConflictError"),
    "RECURRENCE_QUOTA_EXCEEDED": (409, "ConflictError"),
}
BY_CODE: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "BadRequest"),
    grpc.StatusCode.OUT_OF_RANGE: (400, "BadRequest"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "ConflictError"),
    grpc.StatusCode.NOT_FOUND: (404, "ResourceNotFound"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "ConflictError"),
    grpc.StatusCode.ABORTED: (409, "ConflictError"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (409, "ConflictError"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "AuthenticationFailed"),
    grpc.StatusCode.UNAUTHENTICATED: (403, "AuthenticationFailed"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServerBusy"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "ServerBusy"),
}


def _el(tag: str, text: object = None, *children: ET.Element) -> ET.Element:
    node = ET.Element(f"{{{NS}}}{tag}")
    if text is not None:
        node.text = str(text)
    node.extend(children)
    return node


def _xml(root: ET.Element) -> bytes:
    ET.register_namespace("", NS)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


class SchedulerDialect(Dialect):
    """Azure Scheduler classic: job and job-collection routes and operation status."""

    name = "scheduler"
    case_insensitive = True
    request_id_header: ClassVar[str] = "x-ms-request-id"
    documented_max_body = 16 * 1024
    operations_kept = 10_000

    def __init__(self) -> None:
        self.outcomes: OrderedDict[str, tuple[int, str, str]] = OrderedDict()
        route = self.route
        super().__init__(
            [
                route("PUT", JOBS + "/{job}", self.put_job),
                route("POST", JOBS, self.post_job),
                route("GET", JOBS + "/{job}", self.get_job),
                route("GET", JOBS, self.list_jobs),
                route("PATCH", JOBS + "/{job}", self.patch_job),
                route("DELETE", JOBS + "/{job}", self.delete_job),
                route("DELETE", JOBS, self.delete_all),
                route("GET", JOBS + "/{job}/history", self.history),
                route("PUT", COLLECTION, self.put_collection),
                route("GET", COLLECTION, self.get_collection),
                route("DELETE", COLLECTION, self.delete_collection),
                route("GET", "/{sub}/cloudServices/{cs}", self.get_cloud_service),
                route("GET", "/{sub}/operations/{rid}", self.operation_status),
            ]
        )

    # --- the seam ---------------------------------------------------------------------

    def claims(self, request: Any) -> bool:
        path: str = request.path
        parts = path.split("/")
        return len(parts) > 2 and parts[2].lower() in ("cloudservices", "operations")

    def new_request_id(self, request: Any) -> str:
        """Service Management request ids are always issued by the service."""
        return os.urandom(16).hex()

    def check_headers(self, exchange: Exchange) -> None:
        version = exchange.request.headers.get("x-ms-version", "")
        if not _VERSION.match(version) or version < MIN_VERSION:
            raise bad_request(
                "MISSING_VERSION",
                f"The x-ms-version header is missing or older than {MIN_VERSION}.",
            )

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        status, code = BY_REASON.get(error.reason) or BY_CODE.get(
            error.code, (500, "InternalError")
        )
        message = _message(error, exchange.params)
        body = _xml(_el("Error", None, _el("Code", code), _el("Message", message)))
        response = Response(status, body, XML)
        response.extra["error"] = (code, message)
        return response

    def finish(self, response: Response, exchange: Exchange, request_id: str) -> Response:
        code, message = response.extra.get("error", ("", ""))
        self.outcomes[request_id] = (response.status, code, message)
        while len(self.outcomes) > self.operations_kept:
            self.outcomes.popitem(last=False)
        return response.header(self.request_id_header, request_id)

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def collection_id(sub: str, cs: str, jc: str) -> str:
        """The jobcontrol collection of a job collection (deterministic; ids keep their
        case, as the spec asks)."""
        key = "\n".join((sub, cs, jc)).encode()
        return "sched-" + hashlib.sha1(key, usedforsecurity=False).hexdigest()

    def _parent(self, ex: Exchange) -> str:
        p = ex.params
        return f"collections/{self.collection_id(p['sub'], p['cs'], p['jc'])}"

    def _job_name(self, ex: Exchange) -> str:
        return f"{self._parent(ex)}/jobs/{ex.params['job']}"

    @staticmethod
    def _job_response(status: int, job: r.Job) -> Response:
        return Response(status, orjson.dumps(sj.from_job(job)), JSON)

    @staticmethod
    def _query(ex: Exchange, kind: str) -> tuple[str, int, int]:
        """$filter (`state eq …` / `status eq …`), $top (1-100) and $skip (>= 0)."""
        params = dict(ex.request.query())
        filter_text = ""
        raw = params.get("$filter")
        if raw is not None:
            match = _FILTER.match(raw)
            if not match or match.group(1).lower() != kind:
                raise bad_request("INVALID_QUERY", f"Unsupported $filter: {raw!r}")
            value = match.group(2).upper()
            allowed = (
                ("ENABLED", "DISABLED", "COMPLETED", "FAULTED")
                if kind == "state"
                else ("COMPLETED", "FAILED", "POSTPONED")
            )
            if value not in allowed:
                raise bad_request("INVALID_QUERY", f"Unsupported $filter value: {raw!r}")
            filter_text = f"{kind} = {value}"
        try:
            top = int(params.get("$top", "100"))
            skip = int(params.get("$skip", "0"))
        except ValueError:
            raise bad_request("INVALID_QUERY", "$top and $skip must be integers") from None
        if not 1 <= top <= 100 or skip < 0:
            raise bad_request("INVALID_QUERY", "$top must be 1-100 and $skip >= 0")
        return filter_text, top, skip

    # --- jobs -------------------------------------------------------------------------

    async def put_job(self, ex: Exchange) -> Response:
        """Create (201) or, over an existing job, replace (200); the URL names the job."""
        job = sj.to_job(await ex.json_object(required=True))
        request = pb.CreateJobRequest(parent=self._parent(ex), job_id=ex.params["job"], job=job)
        try:
            created = await ex.call("CreateJob", request, r.Job)
        except GatewayError as error:
            if error.reason != "JOB_ALREADY_EXISTS":
                raise
            job.name = self._job_name(ex)
            update = pb.UpdateJobRequest(job=job, update_mask=field_mask_pb2.FieldMask(paths=["*"]))
            return self._job_response(200, await ex.call("UpdateJob", update, r.Job))
        return self._job_response(201, created)

    async def post_job(self, ex: Exchange) -> Response:
        """Create with a server-chosen id."""
        body = await ex.json_object(required=True)
        if isinstance(body, dict) and "id" in body:
            raise bad_request("ID_NOT_ALLOWED", "POST creates a job with a server-chosen id.")
        request = pb.CreateJobRequest(parent=self._parent(ex), job=sj.to_job(body))
        return self._job_response(201, await ex.call("CreateJob", request, r.Job))

    async def get_job(self, ex: Exchange) -> Response:
        job = await ex.call("GetJob", pb.GetJobRequest(name=self._job_name(ex)), r.Job)
        return self._job_response(200, job)

    async def list_jobs(self, ex: Exchange) -> Response:
        filter_text, top, skip = self._query(ex, "state")
        request = pb.ListJobsRequest(
            parent=self._parent(ex), filter=filter_text, page_size=top, skip=skip
        )
        reply = await ex.call("ListJobs", request, pb.ListJobsResponse)
        return Response(200, orjson.dumps([sj.from_job(j) for j in reply.jobs]), JSON)

    async def patch_job(self, ex: Exchange) -> Response:
        """Merge (seed 003): 202 with the whole updated job."""
        body = await ex.json_object(required=True)
        job = sj.to_job(body)
        paths = sj.mask_paths(body, ex.params["job"])
        if not paths:
            return self._job_response(
                202, await ex.call("GetJob", pb.GetJobRequest(name=self._job_name(ex)), r.Job)
            )
        job.name = self._job_name(ex)
        request = pb.UpdateJobRequest(job=job, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return self._job_response(202, await ex.call("UpdateJob", request, r.Job))

    async def delete_job(self, ex: Exchange) -> Response:
        await ex.call(
            "DeleteJob", pb.DeleteJobRequest(name=self._job_name(ex)), operations_pb2.Operation
        )
        return Response(200, b"", None)

    async def delete_all(self, ex: Exchange) -> Response:
        await ex.call(
            "DeleteJobs",
            pb.DeleteJobsRequest(parent=self._parent(ex)),
            operations_pb2.Operation,
        )
        return Response(200, b"", None)

    async def history(self, ex: Exchange) -> Response:
        filter_text, top, skip = self._query(ex, "status")
        request = pb.ListJobHistoryRequest(
            parent=self._job_name(ex), filter=filter_text, page_size=top, skip=skip
        )
        reply = await ex.call("ListJobHistory", request, pb.ListJobHistoryResponse)
        entries = [sj.history_json(e, ex.params["job"]) for e in reply.entries]
        return Response(200, orjson.dumps(entries), JSON)

    # --- job collections --------------------------------------------------------------

    async def put_collection(self, ex: Exchange) -> Response:
        """Create or update (plan, quota): 202."""
        collection = _collection_from_xml(await ex.body())
        p = ex.params
        collection.labels.update(
            {"dialect": "scheduler", "subscription": p["sub"],
             "cloud-service": p["cs"], "job-collection": p["jc"]}
        )  # fmt: skip
        cid = self.collection_id(p["sub"], p["cs"], p["jc"])
        try:
            await ex.call("CreateCollection", pb.CreateCollectionRequest(
                collection_id=cid, collection=collection), r.Collection)  # fmt: skip
        except GatewayError as error:
            if error.reason != "COLLECTION_ALREADY_EXISTS":
                raise
            collection.name = f"collections/{cid}"
            collection.ClearField("profile")
            mask = field_mask_pb2.FieldMask(paths=["plan", "quota", "labels"])
            await ex.call("UpdateCollection", pb.UpdateCollectionRequest(
                collection=collection, update_mask=mask), r.Collection)  # fmt: skip
        return Response(202, b"", None)

    async def get_collection(self, ex: Exchange) -> Response:
        p = ex.params
        name = f"collections/{self.collection_id(p['sub'], p['cs'], p['jc'])}"
        collection = await ex.call("GetCollection", pb.GetCollectionRequest(name=name),
                                      r.Collection)  # fmt: skip
        return Response(200, _xml(_resource_xml(collection)), XML)

    async def delete_collection(self, ex: Exchange) -> Response:
        p = ex.params
        name = f"collections/{self.collection_id(p['sub'], p['cs'], p['jc'])}"
        await ex.call(
            "DeleteCollection", pb.DeleteCollectionRequest(name=name), operations_pb2.Operation
        )
        return Response(200, b"", None)

    async def get_cloud_service(self, ex: Exchange) -> Response:
        """The job collections of a cloud service (404 when it has none)."""
        sub, cs = ex.params["sub"], ex.params["cs"]
        found: list[r.Collection] = []
        token = ""
        for _ in range(10_000):  # bounded walk over collection pages
            reply = await ex.call("ListCollections", pb.ListCollectionsRequest(
                page_size=1000, page_token=token), pb.ListCollectionsResponse)  # fmt: skip
            found += [
                c for c in reply.collections
                if c.labels.get("dialect") == "scheduler"
                and c.labels.get("subscription") == sub
                and c.labels.get("cloud-service") == cs
            ]  # fmt: skip
            token = reply.next_page_token
            if not token:
                break
        if not found:
            raise GatewayError(grpc.StatusCode.NOT_FOUND, f"Cloud service {cs} not found.",
                               "CLOUD_SERVICE_NOT_FOUND")  # fmt: skip
        resources = _el("Resources", None, *(_resource_xml(c) for c in found))
        return Response(200, _xml(_el("CloudService", None, _el("Name", ex.params["cs"]),
                                      resources)), XML)  # fmt: skip

    async def operation_status(self, ex: Exchange) -> Response:
        """Service Management operation status for a request id this dialect issued."""
        rid = ex.params["rid"]
        outcome = self.outcomes.get(rid)
        if outcome is None:
            raise GatewayError(grpc.StatusCode.NOT_FOUND, f"Operation {rid} not found.",
                               "OPERATION_NOT_FOUND")  # fmt: skip
        status, code, message = outcome
        children = [_el("ID", rid), _el("Status", "Failed" if code else "Succeeded"),
                    _el("HttpStatusCode", status)]  # fmt: skip
        if code:
            children.append(_el("Error", None, _el("Code", code), _el("Message", message)))
        return Response(200, _xml(_el("Operation", None, *children)), XML)


def _message(error: GatewayError, params: dict[str, str]) -> str:
    """The error message in the dialect's terms (no jobcontrol resource names)."""
    job, jc = params.get("job", ""), params.get("jc", "")
    field = error.metadata.get("field", "")
    messages = {
        "JOB_NOT_FOUND": f"The job '{job}' was not found.",
        "COLLECTION_NOT_FOUND": f"The job collection '{jc}' was not found.",
        "JOB_ALREADY_EXISTS": f"The job '{job}' already exists.",
        "COLLECTION_ALREADY_EXISTS": f"The job collection '{jc}' already exists.",
        "JOB_COMPLETED": f"The job '{job}' is completed and cannot be updated.",
        "JOB_FAULTED": f"The job '{job}' is faulted and cannot be updated.",
        "QUOTA_EXCEEDED": f"The job collection '{jc}' has reached its maximum job count.",
        "RECURRENCE_QUOTA_EXCEEDED": "The recurrence is more frequent than the job "
        f"collection '{jc}' allows.",
        "STATE_NOT_SETTABLE": "The state of a job may only be set to enabled or disabled.",
    }
    if error.reason == "FORBIDDEN_FIELD":
        return {
            "name": "The job id in the body does not match the job id in the URL.",
            "status": "The status of a job cannot be updated.",
        }.get(field, error.message)
    return messages.get(error.reason, error.message)


def _collection_from_xml(raw: bytes) -> r.Collection:
    """A Resource body: IntrinsicSettings/Plan and Quota (MaxJobCount, MaxRecurrence)."""
    collection = r.Collection(profile=r.SCHEDULED, plan="Standard")
    if not raw.strip():
        return collection
    try:
        root = SafeET.fromstring(raw)
    except Exception as exc:  # defusedxml raises several kinds for bad or hostile XML
        raise bad_request("INVALID_XML", f"The request body is not valid XML: {exc}") from None

    def find(path: str) -> str | None:
        node = root.find("/".join(f"{{{NS}}}{p}" for p in path.split("/")))
        return node.text.strip() if node is not None and node.text else None

    plan = find("IntrinsicSettings/Plan")
    if plan:
        collection.plan = plan
    try:
        count = find("IntrinsicSettings/Quota/MaxJobCount")
        if count is not None:
            collection.quota.max_job_count = int(count)
        frequency = find("IntrinsicSettings/Quota/MaxRecurrence/Frequency")
        if frequency is not None:
            name = _FREQ_XML.get(frequency.capitalize())
            if name is None:
                raise ValueError(f"unknown frequency {frequency!r}")
            collection.quota.max_recurrence_frequency = r.Recurrence.Frequency.Value(name)
        interval = find("IntrinsicSettings/Quota/MaxRecurrence/Interval")
        if interval is not None:
            collection.quota.max_recurrence_interval = int(interval)
    except ValueError as exc:
        raise bad_request("INVALID_XML", f"Invalid quota: {exc}") from None
    return collection


def _resource_xml(collection: r.Collection) -> ET.Element:
    quota = collection.quota
    quota_children = []
    if quota.HasField("max_job_count"):
        quota_children.append(_el("MaxJobCount", quota.max_job_count))
    if quota.max_recurrence_frequency:
        frequency = r.Recurrence.Frequency.Name(quota.max_recurrence_frequency).capitalize()
        recurrence = [_el("Frequency", frequency)]
        if quota.HasField("max_recurrence_interval"):
            recurrence.append(_el("Interval", quota.max_recurrence_interval))
        quota_children.append(_el("MaxRecurrence", None, *recurrence))
    settings = _el("IntrinsicSettings", None, _el("Plan", collection.plan or "Standard"),
                   _el("Quota", None, *quota_children))  # fmt: skip
    return _el(
        "Resource", None,
        _el("Name", collection.labels.get("job-collection", collection.name.split("/")[-1])),
        _el("ResourceProviderNamespace", "scheduler"), _el("Type", "jobcollections"),
        _el("SchemaVersion", "1.0"), _el("ETag", collection.etag), _el("State", "Started"),
        settings,
    )  # fmt: skip
