"""Azure Batch dialect, profile `batch` (../shared/spec/dialects.md §2, seed 001).

Served at the root (`/jobs…`) for the shared-key account named in `Authorization`; each
account is one jobcontrol collection, created on its first write. Every lifecycle rule is
the core's; this module authenticates, translates and formats BatchError bodies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode

import grpc
import orjson
from google.longrunning import operations_pb2
from google.protobuf import field_mask_pb2

from jobcontrol.gateway import conditional
from jobcontrol.gateway.dialects import batch_json as bj
from jobcontrol.gateway.dialects.legacy_base import Dialect, Exchange
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error
from jobcontrol.gateway.http import Request, Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

JSON = "application/json;odata=minimalmetadata"
API_VERSION = "2025-06-01"
SIGNED_HEADERS = (
    "content-encoding", "content-language", "content-length", "content-md5", "content-type",
    "date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range",
)  # fmt: skip
ERRORS_METADATA = "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
DISPOSITIONS = {"requeue": pb.REQUEUE, "terminate": pb.TERMINATE, "wait": pb.WAIT}

BY_REASON: dict[str, tuple[int, str]] = {
    "JOB_NOT_FOUND": (404, "JobNotFound"),
    "COLLECTION_NOT_FOUND": (404, "JobNotFound"),
    "TASK_NOT_FOUND": (404, "TaskNotFound"),
    "JOB_ALREADY_EXISTS": (409, "JobExists"),
    "TASK_ALREADY_EXISTS": (409, "TaskExists"),
    "JOB_BEING_DELETED": (409, "JobBeingDeleted"),
    "JOB_BEING_TERMINATED": (409, "JobBeingTerminated"),
    "JOB_COMPLETED": (409, "JobCompleted"),
    "OPERATION_INVALID_FOR_STATE": (409, "OperationInvalidForCurrentState"),
    "FIELD_NOT_MUTABLE_IN_STATE": (409, "OperationInvalidForCurrentState"),
    "ETAG_MISMATCH": (412, "ConditionNotMet"),
    "CONDITION_NOT_MET": (412, "ConditionNotMet"),
    "MULTIPLE_CONDITION_HEADERS": (400, "MultipleConditionHeadersNotSupported"),
    "REQUIRED_FIELD_MISSING": (400, "MissingRequiredProperty"),
    "MALFORMED_JSON": (400, "InvalidRequestBody"),
    "INVALID_BODY": (400, "InvalidRequestBody"),
    "INVALID_QUERY": (400, "InvalidQueryParameterValue"),
    "MISSING_API_VERSION": (400, "MissingRequiredQueryParameter"),
    "UNSUPPORTED_API_VERSION": (400, "UnsupportedRequestVersion"),
    "AUTHENTICATION_FAILED": (403, "AuthenticationFailed"),
    "ROUTE_NOT_FOUND": (404, "ResourceNotFound"),
    "METHOD_NOT_ALLOWED": (405, "UnsupportedHttpVerb"),
    "BODY_TOO_LARGE": (413, "RequestBodyTooLarge"),
}
BY_CODE: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "InvalidPropertyValue"),
    grpc.StatusCode.NOT_FOUND: (404, "ResourceNotFound"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "ResourceExists"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "OperationInvalidForCurrentState"),
    grpc.StatusCode.ABORTED: (412, "ConditionNotMet"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (409, "QuotaExceeded"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServerBusy"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (500, "OperationTimedOut"),
}


def parse_accounts(text: str) -> dict[str, bytes]:
    """`name=base64key[,name=base64key]` -> {name: key bytes}."""
    accounts: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, key = item.partition("=")
        try:
            accounts[name.strip()] = base64.b64decode(key.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SystemExit(f"batch account {name!r}: the key is not base64") from exc
        if not sep or not name.strip():
            raise SystemExit(f"batch accounts: expected name=base64key, got {item!r}")
    return accounts


def string_to_sign(request: Request, account: str) -> str:
    """The canonical string the Batch SDKs sign (shared key, HMAC-SHA256)."""
    headers = request.headers
    values = {name: headers.get(name, "") for name in SIGNED_HEADERS}
    if request.method not in ("GET", "HEAD") and not values["content-length"]:
        values["content-length"] = "0"
    text = request.method + "\n" + "\n".join(values[h] for h in SIGNED_HEADERS) + "\n"
    ocp = sorted((k, v) for k, v in headers.items() if "ocp-" in k and v)
    text += "".join(f"{k}:{v}\n" for k, v in ocp)
    text += f"/{account}{request.path}"
    query = parse_qs(request.query_string)
    for name in sorted(query):
        if query[name][0]:
            text += f"\n{name}:{query[name][0]}"
    return text


class BatchDialect(Dialect):
    """Azure Batch jobs and tasks for shared-key accounts."""

    name = "batch"
    case_insensitive = True
    request_id_header: ClassVar[str] = "request-id"

    def __init__(self, accounts: dict[str, bytes]) -> None:
        self.accounts = accounts
        route = self.route
        super().__init__(
            [
                route("POST", "/jobs", self.add_job),
                route("GET", "/jobs", self.list_jobs),
                route("GET", "/jobs/{job}", self.get_job),
                route("PATCH", "/jobs/{job}", self.patch_job),
                route("PUT", "/jobs/{job}", self.replace_job),
                route("DELETE", "/jobs/{job}", self.delete_job),
                route("POST", "/jobs/{job}/disable", self.disable_job),
                route("POST", "/jobs/{job}/enable", self.enable_job),
                route("POST", "/jobs/{job}/terminate", self.terminate_job),
                route("POST", "/jobs/{job}/tasks", self.add_task),
                route("GET", "/jobs/{job}/tasks", self.list_tasks),
                route("GET", "/jobs/{job}/tasks/{task}", self.get_task),
                route("GET", "/jobs/{job}/taskcounts", self.task_counts),
            ]
        )

    # --- the seam ---------------------------------------------------------------------

    def claims(self, request: Any) -> bool:
        path: str = request.path
        low = path.lower()
        return low == "/jobs" or low.startswith("/jobs/")

    def new_request_id(self, request: Request) -> str:
        return str(uuid.uuid4())

    def check_headers(self, ex: Exchange) -> None:
        """api-version, then the shared-key signature (which selects the account)."""
        versions = parse_qs(ex.request.query_string).get("api-version")
        if not versions:
            raise bad_request("MISSING_API_VERSION", "The api-version query parameter is missing.")
        version = versions[0]
        if version != API_VERSION and not version.startswith(API_VERSION + "."):
            raise bad_request("UNSUPPORTED_API_VERSION", f"api-version {version} is not supported.")
        ex.state["account"] = self._authenticate(ex.request)

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        account, _, signature = credential.partition(":")
        key = self.accounts.get(account)
        if scheme != "SharedKey" or key is None or not signature:
            raise _auth_failed("The Authorization header is missing or names no known account.")
        expected = base64.b64encode(
            hmac.new(key, string_to_sign(request, account).encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, signature):
            raise _auth_failed("The request signature does not match.")
        return account

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        status, code = BY_REASON.get(error.reason) or BY_CODE.get(
            error.code, (500, "InternalError")
        )
        request_id = exchange.request_id
        base = _base(exchange.request)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "odata.metadata": f"{base}/$metadata#{ERRORS_METADATA}",
            "code": code,
            "message": {
                "lang": "en-US",
                "value": f"{error.message}\nRequestId:{request_id}\nTime:{now}",
            },
            "values": [{"key": k, "value": v} for k, v in error.metadata.items()],
        }  # fmt: skip
        return Response(status, orjson.dumps(body), JSON)

    def finish(self, response: Response, exchange: Exchange, request_id: str) -> Response:
        response.header("request-id", request_id)
        headers = exchange.request.headers
        if headers.get("return-client-request-id", "").lower() == "true":
            response.header("client-request-id", headers.get("client-request-id", ""))
        return response

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def collection_id(account: str) -> str:
        """The jobcontrol collection of a Batch account."""
        return f"batch-{account.lower()}"

    def _parent(self, ex: Exchange) -> str:
        return f"collections/{self.collection_id(ex.state['account'])}"

    def _job_name(self, ex: Exchange) -> str:
        return f"{self._parent(ex)}/jobs/{ex.params['job']}"

    @staticmethod
    def _entity_headers(response: Response, job: r.Job, url: str) -> Response:
        response.header("etag", bj.etag_out(job.etag))
        modified = job.update_time.ToDatetime(tzinfo=UTC)
        response.header("last-modified", format_datetime(modified, usegmt=True))
        return response.header("dataserviceid", url)

    async def _get(self, ex: Exchange) -> r.Job:
        job: r.Job = await ex.call("GetJob", pb.GetJobRequest(name=self._job_name(ex)), r.Job)
        return job

    async def _accepted(self, ex: Exchange, status: int) -> Response:
        job = await self._get(ex)
        url = f"{_base(ex.request)}/jobs/{_job_id(job)}"
        return self._entity_headers(Response(status, b"", None), job, url)

    # --- jobs -------------------------------------------------------------------------

    async def add_job(self, ex: Exchange) -> Response:
        body = await ex.json_object()
        job_id = body.get("id")
        if not isinstance(job_id, str) or not job_id:
            raise gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUIRED_FIELD_MISSING",
                                "The property id is required.", None,
                                {"PropertyName": "id"})  # fmt: skip
        # poolInfo is required by the core (rule C5), which answers REQUIRED_FIELD_MISSING
        job = r.Job(display_name=str(body.get("displayName", "")))
        job.batch.SetInParent()
        bj.to_spec(body, job.batch, set(bj.UPDATABLE) | {"onTaskFailure"})
        request = pb.CreateJobRequest(parent=self._parent(ex), job_id=job_id, job=job)
        collection = r.Collection(profile=r.BATCH, labels={"dialect": "batch"})
        cid = self.collection_id(ex.state["account"])
        created = await ex.call_creating("CreateJob", request, r.Job, cid, collection)
        url = f"{_base(ex.request)}/jobs/{job_id}"
        return self._entity_headers(Response(201, b"", None), created, url)

    async def list_jobs(self, ex: Exchange) -> Response:
        params = {k.lower(): v for k, v in ex.request.query()}
        try:
            size = int(params.get("maxresults", "1000"))
        except ValueError:
            raise bad_request("INVALID_QUERY", "maxresults must be an integer") from None
        if not 1 <= size <= 1000:
            raise bad_request("INVALID_QUERY", "maxresults must be 1-1000")
        filter_text = bj.odata_filter(params.get("$filter", ""))
        request = pb.ListJobsRequest(parent=self._parent(ex), page_size=size, filter=filter_text,
                                     page_token=params.get("$skiptoken", ""))  # fmt: skip
        try:
            reply = await ex.call("ListJobs", request, pb.ListJobsResponse)
        except GatewayError as error:
            if error.reason != "COLLECTION_NOT_FOUND":
                raise
            reply = pb.ListJobsResponse()
        base = _base(ex.request)
        select = _select(params.get("$select"))
        body: dict[str, Any] = {
            "odata.metadata": f"{base}/$metadata#jobs",
            "value": [_project(bj.job_json(j, base), select) for j in reply.jobs],
        }
        if reply.next_page_token:
            kept = [(k, v) for k, v in ex.request.query() if k.lower() != "$skiptoken"]
            kept.append(("$skiptoken", reply.next_page_token))
            body["odata.nextLink"] = f"{base}/jobs?{urlencode(kept, safe='$')}"
        return Response(200, orjson.dumps(body), JSON)

    async def get_job(self, ex: Exchange) -> Response:
        found = ex.conditions()
        job = await self._get(ex)
        modified = job.update_time.ToDatetime(tzinfo=UTC)
        tags = tuple(bj.etag_in(t) if t != "*" else t for t in found.etags)
        verdict = conditional.outcome(
            conditional.Conditions(found.header, tags, found.when),
            ex.request.method, job.etag, modified, self.condition_rules,
        )  # fmt: skip
        base = _base(ex.request)
        url = f"{base}/jobs/{_job_id(job)}"
        if verdict is conditional.Outcome.NOT_MODIFIED:
            return self._entity_headers(Response(304, b"", None), job, url)
        if verdict is conditional.Outcome.PRECONDITION_FAILED:
            raise gateway_error(grpc.StatusCode.ABORTED, "CONDITION_NOT_MET",
                                "The condition specified was not met.")  # fmt: skip
        params = {k.lower(): v for k, v in ex.request.query()}
        body = bj.job_json(job, base)
        body["odata.metadata"] = f"{base}/$metadata#jobs/@Element"
        if "stats" in params.get("$expand", "").lower():
            body["stats"] = _stats(url, job)
        body = _project(body, _select(params.get("$select")))
        return self._entity_headers(Response(200, orjson.dumps(body), JSON), job, url)

    async def patch_job(self, ex: Exchange) -> Response:
        body = await ex.json_object()
        paths = [path for key, path in bj.UPDATABLE.items() if key in body]
        return await self._update(ex, body, paths, 200)

    async def replace_job(self, ex: Exchange) -> Response:
        body = await ex.json_object()
        if not isinstance(body.get("poolInfo"), dict):
            raise gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUIRED_FIELD_MISSING",
                                "The property poolInfo is required.", None,
                                {"PropertyName": "poolInfo"})  # fmt: skip
        return await self._update(ex, body, list(bj.UPDATABLE.values()), 200)

    async def _update(self, ex: Exchange, body: dict[str, Any], paths: list[str],
                      status: int) -> Response:  # fmt: skip
        unknown = set(body) - set(bj.UPDATABLE) - {"odata.metadata"}
        if unknown:
            raise bad_request("INVALID_BODY", f"Unknown or read-only properties: {sorted(unknown)}")
        job = r.Job(name=self._job_name(ex))
        job.batch.SetInParent()
        bj.to_spec(body, job.batch, set(bj.UPDATABLE))
        fields = ex.write_conditions(bj.etag_in)
        if "etag" in fields:
            job.etag = fields.pop("etag")
        request = pb.UpdateJobRequest(job=job, update_mask=field_mask_pb2.FieldMask(paths=paths),
                                      **fields)  # fmt: skip
        if not paths:
            await self._get(ex)
        else:
            await ex.call("UpdateJob", request, r.Job)
        return await self._accepted(ex, status)

    async def delete_job(self, ex: Exchange) -> Response:
        params = {k.lower(): v for k, v in ex.request.query()}
        force = params.get("force", "false").lower() == "true"
        request = pb.DeleteJobRequest(
            name=self._job_name(ex), force=force, **ex.write_conditions(bj.etag_in)
        )
        await ex.call("DeleteJob", request, operations_pb2.Operation)
        return Response(202, b"", None)

    async def disable_job(self, ex: Exchange) -> Response:
        body = await ex.json_object()
        word = str(body.get("disableTasks", "requeue")).lower()
        if word not in DISPOSITIONS:
            raise bad_request("INVALID_BODY", f"disableTasks: unknown value {word!r}")
        request = pb.PauseJobRequest(name=self._job_name(ex), disable_tasks=DISPOSITIONS[word],
                                     **ex.write_conditions(bj.etag_in))  # fmt: skip
        await ex.call("PauseJob", request, r.Job)
        return await self._accepted(ex, 202)

    async def enable_job(self, ex: Exchange) -> Response:
        request = pb.ResumeJobRequest(name=self._job_name(ex), **ex.write_conditions(bj.etag_in))
        await ex.call("ResumeJob", request, r.Job)
        return await self._accepted(ex, 202)

    async def terminate_job(self, ex: Exchange) -> Response:
        body = await ex.json_object()
        reason = str(body.get("terminateReason") or "UserTerminate")
        request = pb.TerminateJobRequest(name=self._job_name(ex), reason=reason,
                                         **ex.write_conditions(bj.etag_in))  # fmt: skip
        await ex.call("TerminateJob", request, r.Job)
        return await self._accepted(ex, 202)

    # --- tasks ------------------------------------------------------------------------

    async def add_task(self, ex: Exchange) -> Response:
        body = await ex.json_object()
        task_id = body.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise gateway_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUIRED_FIELD_MISSING",
                                "The property id is required.", None,
                                {"PropertyName": "id"})  # fmt: skip
        task = r.Task(display_name=str(body.get("displayName", "")),
                      command_line=str(body.get("commandLine", "")))  # fmt: skip
        request = pb.CreateTaskRequest(parent=self._job_name(ex), task_id=task_id, task=task)
        created = await ex.call("CreateTask", request, r.Task)
        response = Response(201, b"", None).header("etag", bj.etag_out(created.etag))
        return response.header(
            "dataserviceid", f"{_base(ex.request)}/jobs/{ex.params['job']}/tasks/{task_id}"
        )

    async def _all_tasks(self, ex: Exchange) -> list[r.Task]:
        tasks: list[r.Task] = []
        token = ""
        for _ in range(1000):  # bounded: at most 1,000,000 tasks
            request = pb.ListTasksRequest(
                parent=self._job_name(ex), page_size=1000, page_token=token
            )
            reply = await ex.call("ListTasks", request, pb.ListTasksResponse)
            tasks += reply.tasks
            token = reply.next_page_token
            if not token:
                break
        return tasks

    async def list_tasks(self, ex: Exchange) -> Response:
        base = _base(ex.request)
        job_id = ex.params["job"]
        value = [bj.task_json(t, base, job_id) for t in await self._all_tasks(ex)]
        body = {"odata.metadata": f"{base}/$metadata#tasks", "value": value}
        return Response(200, orjson.dumps(body), JSON)

    async def get_task(self, ex: Exchange) -> Response:
        name = f"{self._job_name(ex)}/tasks/{ex.params['task']}"
        task = await ex.call("GetTask", pb.GetTaskRequest(name=name), r.Task)
        base = _base(ex.request)
        body = bj.task_json(task, base, ex.params["job"])
        response = Response(200, orjson.dumps(body), JSON).header("etag", bj.etag_out(task.etag))
        return response.header("dataserviceid", body["url"])

    async def task_counts(self, ex: Exchange) -> Response:
        tasks = await self._all_tasks(ex)
        counts = {
            "active": sum(t.state == r.Task.ACTIVE for t in tasks),
            "running": sum(t.state == r.Task.RUNNING for t in tasks),
            "completed": sum(t.state == r.Task.COMPLETED for t in tasks),
            "succeeded": sum(t.state == r.Task.COMPLETED and t.result == r.Task.SUCCESS
                             for t in tasks),
            "failed": sum(t.state == r.Task.COMPLETED and t.result == r.Task.FAILURE
                          for t in tasks),
        }  # fmt: skip
        base = _base(ex.request)
        body = {"odata.metadata": f"{base}/$metadata#taskcounts", "taskCounts": counts,
                "taskSlotCounts": dict(counts)}  # fmt: skip
        return Response(200, orjson.dumps(body), JSON)


def _job_id(job: r.Job) -> str:
    return job.name.rsplit("/", 1)[-1]


def _auth_failed(message: str) -> GatewayError:
    return gateway_error(grpc.StatusCode.PERMISSION_DENIED, "AUTHENTICATION_FAILED", message)


def _base(request: Request) -> str:
    return f"http://{request.headers.get('host', 'localhost')}"


def _select(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _project(body: dict[str, Any], select: set[str] | None) -> dict[str, Any]:
    if select is None:
        return body
    return {k: v for k, v in body.items() if k in select or k == "odata.metadata"}


def _stats(url: str, job: r.Job) -> dict[str, Any]:
    now = bj.format_time(job.update_time)
    zero = "PT0S"
    return {"url": url, "startTime": bj.format_time(job.create_time), "lastUpdateTime": now,
            "userCPUTime": zero, "kernelCPUTime": zero, "wallClockTime": zero, "readIOps": 0,
            "writeIOps": 0, "readIOGiB": 0.0, "writeIOGiB": 0.0, "numSucceededTasks": 0,
            "numFailedTasks": 0, "numTaskRetries": 0, "waitTime": zero}  # fmt: skip
