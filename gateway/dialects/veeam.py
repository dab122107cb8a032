"""Veeam Backup Enterprise Manager dialect, profile `backup` (dialects.md §4, seed 004).

Everything under `/api`, backed by one jobcontrol collection (`veeam_collection`). Logon
sessions and tasks are the gateway's (veeam_sessions.py); representations are in
veeam_repr.py. Every lifecycle rule (start/stop/retry after a failed run, the schedule
toggle, asynchronous and cancellable deletion, NAS and agent jobs not deletable through the
generic delete) is the core's: the dialect maps its answers to Enterprise Manager's.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any, ClassVar

import grpc
from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from jobcontrol.gateway.dialects.legacy_base import Dialect, Exchange, Handler, Route
from jobcontrol.gateway.dialects.veeam_repr import Many, Node, encode, links
from jobcontrol.gateway.dialects.veeam_sessions import Right, Session, Sessions, TaskRecord, User
from jobcontrol.gateway.errors import (
    HTTP_STATUS,
    GatewayError,
    bad_request,
    gateway_error,
    not_found,
)
from jobcontrol.gateway.http import Request, Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

TOKEN = "X-RestSvcSessionId"
VERSIONS = ("v1_4", "v1_5", "v1_6", "v1_7")
B = r.BackupSpec
JOB_TYPES = {B.BACKUP: "Backup", B.REPLICA: "Replica", B.BACKUP_COPY: "BackupCopy",
             B.NAS: "NasBackup", B.AGENT: "AgentBackup"}  # fmt: skip
PLATFORMS = {B.VMWARE: "VMware", B.VCLOUD: "vCloud", B.HYPERV: "HyperV", B.WINDOWS: "Windows",
             B.LINUX: "Linux", B.FILE_SHARE: "FileShare"}  # fmt: skip
# action (lower case) -> (its query/path spelling, JobService method, Task Operation,
# Result message, Link Rel); the toggle's method depends on the job
ACTIONS = {
    "start": ("start", "StartJob", "StartJob", "The job has been started.", "Start"),
    "stop": ("stop", "StopJob", "StopJob", "The job has been stopped.", "Stop"),
    "retry": ("retry", "RetryJob", "RetryJob", "The job has been retried.", "Retry"),
    "togglescheduleenabled": ("toggleScheduleEnabled", "", "ToggleScheduleEnabled", "",
                              "ToggleScheduleEnabled"),
}  # fmt: skip
# HTTP status by ErrorInfo reason where Enterprise Manager differs from the standard table
BY_REASON = {
    "COLLECTION_NOT_FOUND": 404,
    # dialects.md §4 Decision: deleting a NAS/agent job or one already being deleted is 404
    "JOB_TYPE_NOT_DELETABLE": 404,
    "OPERATION_NOT_CANCELLABLE": 400,
}


@dataclass(frozen=True)
class Kind:
    """Generic, NAS or agent jobs: where they live and how they are named."""

    path: str
    types: tuple[int, ...]
    # entity type, also the URN kind; reference type
    entity: str
    reference: str
    # NAS jobs take their action as a path segment, the others as ?action=
    action_in_path: bool = False

    def href(self, base: str, job_id: str) -> str:
        return f"{base}/api/{self.path}/{job_id}"

    def action_href(self, base: str, job_id: str, action: str) -> str:
        href = self.href(base, job_id)
        return f"{href}/{action}" if self.action_in_path else f"{href}?action={action}"

    @property
    def filter(self) -> str:
        return " OR ".join(f'type = "{B.JobType.Name(t)}"' for t in self.types)  # type: ignore[arg-type]


GENERIC = Kind("jobs", (B.BACKUP, B.REPLICA, B.BACKUP_COPY), "Job", "JobReference")
NAS = Kind("nas/jobs", (B.NAS,), "NasJob", "NasJobReference", action_in_path=True)
AGENT = Kind("agents/jobs", (B.AGENT,), "AgentBackupJob", "AgentBackupJobReference")


def _unauthenticated(reason: str, message: str) -> GatewayError:
    return gateway_error(grpc.StatusCode.UNAUTHENTICATED, reason, message)


def _job_not_found(job_id: str) -> GatewayError:
    return gateway_error(grpc.StatusCode.NOT_FOUND, "JOB_NOT_FOUND", f"Job {job_id} not found.")


def _base(request: Request) -> str:
    host = request.headers.get("host") or "localhost"
    return f"{request.scope.get('scheme', 'http')}://{host}"


def _wants_json(request: Request) -> bool:
    """JSON only when the Accept header prefers application/json over XML."""
    best = {"json": -1.0, "xml": -1.0}
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        kind = {"application/json": "json", "application/xml": "xml"}.get(media.lower())
        if kind is None:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best[kind] = max(best[kind], quality)
    return best["json"] > 0 and best["json"] >= best["xml"]


class VeeamDialect(Dialect):
    """Veeam Backup Enterprise Manager: sessions, jobs (generic, NAS, agent), tasks."""

    name = "veeam"
    case_insensitive = True
    forward_authorization: ClassVar[bool] = False

    def __init__(self, users: dict[str, User], idle: float, collection: str) -> None:
        self.sessions = Sessions(users, idle)
        self.parent = f"collections/{collection}"
        read, operate, delete = Right.READ, Right.OPERATE, Right.DELETE
        rows: list[Route] = []

        def add(method: str, path: str, handler: Handler, right: Right | None = read) -> None:
            rows.append(self.route(method, path, handler, data=right))

        add("GET", "/api", self.entry_point, None)
        add("GET", "/api/", self.entry_point, None)
        add("POST", "/api/sessionMngr", self.logon, None)
        add("POST", "/api/sessionMngr/", self.logon, None)
        add("DELETE", "/api/logonSessions/{sid}", self.logoff)
        for kind in (GENERIC, NAS, AGENT):
            add("GET", f"/api/{kind.path}", self._lister(kind))
            add("GET", f"/api/{kind.path}/{{id}}", self._getter(kind))
            if kind.action_in_path:
                add("POST", f"/api/{kind.path}/{{id}}/{{action}}", self._actor(kind), operate)
            else:
                add("POST", f"/api/{kind.path}/{{id}}", self._actor(kind), operate)
        add("DELETE", "/api/jobs/{id}", self.delete_job, delete)
        add("GET", "/api/tasks", self.list_tasks)
        add("GET", "/api/tasks/{tid}", self.get_task)
        add("DELETE", "/api/tasks/{tid}", self.cancel_task)
        super().__init__(rows)

    # --- the seam ---------------------------------------------------------------------

    def claims(self, request: Any) -> bool:
        path: str = request.path
        low = path.lower()
        return low == "/api" or low.startswith("/api/")

    def check_headers(self, ex: Exchange) -> None:
        """The session token (cookie first, then header) and the route's right."""
        assert ex.route is not None
        right: Right | None = ex.route.data
        if right is None:
            return
        token = _cookie(ex.request) or ex.request.headers.get(TOKEN.lower(), "")
        session = self.sessions.find(token) if token else None
        if session is None:
            raise _unauthenticated(
                "SESSION_REQUIRED", "A valid X-RestSvcSessionId is required; log on first."
            )
        if not session.user.may(right):
            raise gateway_error(
                grpc.StatusCode.PERMISSION_DENIED,
                "INSUFFICIENT_RIGHTS",
                f"The user {session.user.name} ({session.user.role}) may not do this.",
            )
        ex.state["session"] = session

    def format_error(self, error: GatewayError, exchange: Exchange) -> Response:
        status = error.http_status or BY_REASON.get(error.reason)
        status = status or HTTP_STATUS.get(error.code, 500)
        node = Node("Error", {"StatusCode": status, "Message": error.message})
        response = self._send(exchange, status, node)
        if error.reason == "BAD_CREDENTIALS":
            response.header("www-authenticate", 'Basic realm="RestSvc"')
        return response

    # --- helpers ----------------------------------------------------------------------

    @staticmethod
    def _send(ex: Exchange, status: int, node: Node) -> Response:
        body, content_type = encode(node, _wants_json(ex.request))
        return Response(status, body, content_type)

    @staticmethod
    def _session(ex: Exchange) -> Session:
        session: Session = ex.state["session"]
        return session

    def _job_name(self, ex: Exchange) -> str:
        return f"{self.parent}/jobs/{ex.params['id']}"

    async def _job(self, ex: Exchange, kind: Kind) -> r.Job:
        """The job of the path, if it is of `kind` (else 404, as if it were not there)."""
        try:
            job: r.Job = await ex.call("GetJob", pb.GetJobRequest(name=self._job_name(ex)), r.Job)
        except GatewayError as error:
            if error.reason == "COLLECTION_NOT_FOUND":
                raise _job_not_found(ex.params["id"]) from None
            raise
        if job.backup.job_type not in kind.types:
            raise _job_not_found(ex.params["id"])
        return job

    @staticmethod
    def _entity_format(ex: Exchange) -> bool:
        """?format=Entity (True) or Ref (default, False); anything else is 400."""
        value = dict(ex.request.query()).get("format", "Ref")
        if value.lower() not in ("entity", "ref"):
            raise bad_request("INVALID_QUERY", f"format must be Entity or Ref, not {value}.")
        return value.lower() == "entity"

    def _reference(self, ex: Exchange, kind: Kind, job: r.Job) -> Node:
        job_id = job.name.rsplit("/", 1)[-1]
        name = job.display_name or job_id
        href = kind.href(_base(ex.request), job_id)
        node = Node("Ref", {"UID": f"urn:veeam:{kind.entity}:{job_id}", "Name": name,
                            "Href": href, "Type": kind.reference})  # fmt: skip
        alternate = {"Href": f"{href}?format=Entity", "Name": name, "Type": kind.entity,
                     "Rel": "Alternate"}  # fmt: skip
        node.children.append(links(alternate))
        return node

    def _entity(self, ex: Exchange, kind: Kind, job: r.Job) -> Node:
        base = _base(ex.request)
        job_id = job.name.rsplit("/", 1)[-1]
        name = job.display_name or job_id
        href = kind.href(base, job_id)
        uid = f"urn:veeam:{kind.entity}:{job_id}"
        node = Node(kind.entity, {"Href": f"{href}?format=Entity", "Type": kind.entity,
                                  "Name": name, "UID": uid})  # fmt: skip
        rows = [{"Href": href, "Name": name, "Type": kind.reference, "Rel": "Alternate"}]
        for param, _, _, _, rel in ACTIONS.values():
            action = kind.action_href(base, job_id, param)
            rows.append({"Href": action, "Type": "Task", "Rel": rel})
        node.children.append(links(*rows))
        spec = job.backup
        node.add("JobType", JOB_TYPES.get(spec.job_type, ""))
        node.add("Platform", PLATFORMS.get(spec.platform, ""))
        node.add("Description", spec.description)
        node.add("ScheduleConfigured", spec.HasField("schedule_enabled"))
        node.add("ScheduleEnabled", spec.schedule_enabled)
        return node

    async def _resolve(self, ex: Exchange, task: TaskRecord) -> None:
        """Bring an unfinished deletion task up to date with its Operation."""
        if task.result is not None or not task.operation_name:
            return
        request = operations_pb2.GetOperationRequest(name=task.operation_name)
        op = await ex.call_operations("GetOperation", request, operations_pb2.Operation)
        if op.done:
            if op.HasField("error"):
                task.result = (False, op.error.message or "The deletion did not finish.")
            else:
                task.result = (True, "The job has been deleted.")

    def _task_node(self, ex: Exchange, task: TaskRecord) -> Node:
        href = f"{_base(ex.request)}/api/tasks/{task.task_id}"
        node = Node("Task", {"Href": href, "Type": "Task"})
        node.children.append(links({"Href": href, "Type": "Task", "Rel": "Delete"}))
        node.add("TaskId", task.task_id)
        node.add("State", "Running" if task.result is None else "Finished")
        node.add("Operation", task.operation)
        if task.result is not None:
            success, message = task.result
            node.children.append(Node("Result", {"Success": success}).add("Message", message))
        return node

    def _task(self, ex: Exchange) -> TaskRecord:
        task = self._session(ex).tasks.get(ex.params["tid"])
        if task is None:
            raise gateway_error(grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND",
                                f"Task {ex.params['tid']} not found.")  # fmt: skip
        return task

    # --- entry point and sessions -----------------------------------------------------

    async def entry_point(self, ex: Exchange) -> Response:
        base = _base(ex.request)

        def logon(version: str) -> Many:
            href = f"{base}/api/sessionMngr/?v={version}"
            return links({"Href": href, "Type": "LogonSession", "Rel": "Create"})

        versions = [Node("SupportedVersion", {"Name": VERSIONS[-1]}, [logon(VERSIONS[-1])])]
        node = Node("EnterpriseManager", {}, [logon("latest")])
        node.children.append(Many("SupportedVersion", versions, wrapper="SupportedVersions"))
        return self._send(ex, 200, node)

    async def logon(self, ex: Exchange) -> Response:
        """Basic credentials -> a session: 201, the token in a header, a cookie and the body."""
        version = dict(ex.request.query()).get("v", "latest")
        if version not in ("latest", *VERSIONS):
            raise bad_request("INVALID_VERSION", f"API version {version} is not supported.")
        user = self.sessions.authenticate(ex.request.headers.get("authorization", ""))
        if user is None:
            raise _unauthenticated("BAD_CREDENTIALS", "The user name or password is incorrect.")
        session = self.sessions.logon(user)
        base = _base(ex.request)
        href = f"{base}/api/logonSessions/{session.id}"
        node = Node("LogonSession", {"Href": href, "Type": "LogonSession"})
        node.children.append(
            links(
                {"Href": href, "Type": "LogonSession", "Rel": "Delete"},
                {"Href": f"{base}/api/jobs", "Type": "JobReferenceList", "Rel": "Down"},
                {"Href": f"{base}/api/nas/jobs", "Type": "NasJobReferenceList", "Rel": "Down"},
                {"Href": f"{base}/api/agents/jobs", "Type": "AgentJobReferenceList",
                 "Rel": "Down"},
                {"Href": f"{base}/api/tasks", "Type": "TaskList", "Rel": "Down"},
            )
        )  # fmt: skip
        node.add("UserName", user.name).add("SessionId", session.id)
        response = self._send(ex, 201, node).header(TOKEN, session.id)
        return response.header("set-cookie", f"{TOKEN}={session.id}; Path=/api; HttpOnly")

    async def logoff(self, ex: Exchange) -> Response:
        session = self._session(ex)
        if ex.params["sid"] != session.id:
            raise gateway_error(grpc.StatusCode.NOT_FOUND, "SESSION_NOT_FOUND",
                                f"Logon session {ex.params['sid']} not found.")  # fmt: skip
        self.sessions.logoff(session.id)
        return Response(204, b"", None)

    # --- jobs ---------------------------------------------------------------------------

    def _lister(self, kind: Kind) -> Handler:
        async def list_jobs(ex: Exchange) -> Response:
            entity = self._entity_format(ex)
            jobs = await self._all_jobs(ex, kind)
            if entity:
                items = [self._entity(ex, kind, job) for job in jobs]
                return self._send(ex, 200, Node(kind.entity + "s", {}, [Many(kind.entity, items)]))
            refs = [self._reference(ex, kind, job) for job in jobs]
            return self._send(ex, 200, Node("EntityReferences", {}, [Many("Ref", refs)]))

        return list_jobs

    async def _all_jobs(self, ex: Exchange, kind: Kind) -> list[r.Job]:
        jobs: list[r.Job] = []
        token = ""
        while True:
            request = pb.ListJobsRequest(
                parent=self.parent, filter=kind.filter, page_size=1000, page_token=token
            )
            try:
                reply = await ex.call("ListJobs", request, pb.ListJobsResponse)
            except GatewayError as error:
                if error.reason == "COLLECTION_NOT_FOUND":
                    return []
                raise
            jobs.extend(reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    def _getter(self, kind: Kind) -> Handler:
        async def get_job(ex: Exchange) -> Response:
            entity = self._entity_format(ex)
            job = await self._job(ex, kind)
            node = self._entity(ex, kind, job) if entity else self._reference(ex, kind, job)
            return self._send(ex, 200, node)

        return get_job

    def _actor(self, kind: Kind) -> Handler:
        async def act(ex: Exchange) -> Response:
            if kind.action_in_path:
                action = ex.params["action"]
                if action.lower() not in ACTIONS:
                    raise not_found(ex.request.path)
            else:
                action = dict(ex.request.query()).get("action", "")
                if action.lower() not in ACTIONS:
                    raise bad_request(
                        "INVALID_ACTION",
                        "action must be start, stop, retry or toggleScheduleEnabled.",
                    )
            _, method, operation, message, _ = ACTIONS[action.lower()]
            job = await self._job(ex, kind)
            request: Any
            if not method:  # the toggle: from what the job is now, guarded by its etag
                enabled = job.backup.schedule_enabled
                method = "PauseJob" if enabled else "ResumeJob"
                kind_of = pb.PauseJobRequest if enabled else pb.ResumeJobRequest
                request = kind_of(name=job.name, etag=job.etag)
                message = f"The schedule has been {'disabled' if enabled else 'enabled'}."
            else:
                request = getattr(pb, method + "Request")(name=job.name)
            await ex.call(method, request, r.Job)
            task = self.sessions.add_task(self._session(ex), operation, result=(True, message))
            return self._send(ex, 202, self._task_node(ex, task))

        return act

    async def delete_job(self, ex: Exchange) -> Response:
        """202 with a DeleteJob task backed by the deletion's Operation."""
        request = pb.DeleteJobRequest(name=self._job_name(ex))
        try:
            op = await ex.call("DeleteJob", request, operations_pb2.Operation)
        except GatewayError as error:
            if error.reason in ("JOB_BEING_DELETED", "JOB_TYPE_NOT_DELETABLE"):
                raise _job_not_found(ex.params["id"]) from None
            raise
        task = self.sessions.add_task(self._session(ex), "DeleteJob", operation_name=op.name)
        await self._resolve(ex, task)
        return self._send(ex, 202, self._task_node(ex, task))

    # --- tasks --------------------------------------------------------------------------

    async def list_tasks(self, ex: Exchange) -> Response:
        tasks = list(self._session(ex).tasks.values())
        for task in tasks:
            await self._resolve(ex, task)
        items = [self._task_node(ex, task) for task in tasks]
        return self._send(ex, 200, Node("TaskList", {}, [Many("Task", items)]))

    async def get_task(self, ex: Exchange) -> Response:
        task = self._task(ex)
        await self._resolve(ex, task)
        return self._send(ex, 200, self._task_node(ex, task))

    async def cancel_task(self, ex: Exchange) -> Response:
        """Cancel an unfinished deletion (the job stays); a finished task is 400."""
        task = self._task(ex)
        await self._resolve(ex, task)
        finished = bad_request("TASK_FINISHED", f"Task {task.task_id} has already finished.")
        if task.result is not None:
            raise finished
        request = operations_pb2.CancelOperationRequest(name=task.operation_name)
        try:
            await ex.call_operations("CancelOperation", request, empty_pb2.Empty)
        except GatewayError as error:
            if error.reason == "OPERATION_NOT_CANCELLABLE":
                raise finished from None
            raise
        await self._resolve(ex, task)
        return Response(204, b"", None)


def _cookie(request: Request) -> str:
    raw = request.headers.get("cookie")
    if not raw:
        return ""
    try:
        morsel = SimpleCookie(raw).get(TOKEN)
    except CookieError:
        return ""
    return morsel.value if morsel is not None else ""
