"""Veeam Backup Enterprise Manager dialect, profile `backup` (dialects.md §4, seed 004)."""

# Everything under `/api`, backed by one jobcontrol collection. Each job route makes at most
# one call: the family of a route (generic, NAS, agent) travels as `preconditions.types`,
# and every lifecycle rule (start/stop/retry, the toggle, asynchronous and cancellable
# deletion, NAS and agent jobs not deletable here) is the core's, and so is every right:
# each call asserts the session's user (`veeam:<user>`) with the core role of its Veeam
# role on the collection. Logon sessions, their throttling and tasks live in the gateway
# process (veeam_sessions.py, veeam_throttle.py): only the rows of logon, log off,
# sessions, tasks and the rows that create tasks touch them.

from __future__ import annotations

import functools
from typing import ClassVar

from google.longrunning import operations_pb2
from google.protobuf.message import Message

from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialects import veeam_codec as codec
from jobcontrol.gateway.dialects import veeam_errors
from jobcontrol.gateway.dialects import veeam_logon as logon
from jobcontrol.gateway.dialects import veeam_rows as rows
from jobcontrol.gateway.dialects.base import Assertion, Dialect
from jobcontrol.gateway.dialects.error_table import ErrorRow
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.routing import Route
from jobcontrol.gateway.dialects.veeam_codec import Action, Kind
from jobcontrol.gateway.dialects.veeam_sessions import Session, Sessions, User, parse_users
from jobcontrol.gateway.dialects.veeam_throttle import LogonThrottle
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.http import Request, Response
from jobcontrol.gateway.templates import Template
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

# route names with a meaning here: Basic credentials instead of a session; a row whose
# `?action=` picks the row that runs (resolve)
LOGON, BY_ACTION = "logon", "by-action"
# the `data` of rows that need a live session (what the user may do is the core's call)
SESSION = "session"
ActionRequest = pb.StartJobRequest | pb.StopJobRequest | pb.RetryJobRequest | pb.ToggleJobRequest
ACTION_REQUESTS: dict[str, type[ActionRequest]] = {
    "StartJob": pb.StartJobRequest,
    "StopJob": pb.StopJobRequest,
    "RetryJob": pb.RetryJobRequest,
    "ToggleJob": pb.ToggleJobRequest,
}


class VeeamDialect(Dialect):
    """Veeam Backup Enterprise Manager: sessions, jobs (generic, NAS, agent), tasks."""

    name = "veeam"
    case_insensitive = True
    trailing_slash = True
    forward_authorization: ClassVar[bool] = False
    errors = veeam_errors.ERRORS

    def __init__(
        self,
        users: dict[str, User],
        idle: float,
        collection: str,
        throttle: LogonThrottle | None = None,
    ) -> None:
        self.sessions = Sessions(users, idle)
        self.throttle = throttle or LogonThrottle()
        self.collection = collection
        self.parent = f"collections/{collection}"
        # (template of a BY_ACTION row, action in lower case) -> the row that runs
        self.by_action: dict[tuple[Template, str], Route] = {}
        # every row but the entry point and logon needs a live session
        read, row = SESSION, self.row
        rows = [
            row("GET", "/api", None, None, self.entry_point),
            row("POST", "/api/sessionMngr", None, None, self.logon, 201, name=LOGON),
            row("GET", "/api/logonSessions", None, None, self.list_sessions, data=read),
            row("GET", "/api/logonSessions/{sid}", None, None, self.get_session, data=read),
            row("DELETE", "/api/logonSessions/{sid}", None, None, self.logoff, 204, data=read),
            row("DELETE", "/api/jobs/{id}", "DeleteJob", self.build_delete, self.render_delete,
                202, errors=veeam_errors.DELETE_ERRORS, data=read),
            row("GET", "/api/tasks", "ListOperations", self.build_list_tasks,
                self.render_list_tasks, data=read),
            row("GET", "/api/tasks/{tid}", "GetOperation", self.build_get_task,
                self.render_get_task, data=read),
            row("DELETE", "/api/tasks/{tid}", "CancelOperation", self.build_cancel_task,
                self.render_cancel_task, 204, errors=veeam_errors.CANCEL_ERRORS, data=read),
        ]  # fmt: skip
        for kind in codec.KINDS:
            rows += self._job_rows(kind)
        super().__init__(rows)

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> VeeamDialect:
        """The dialect as the gateway's settings configure it, logon throttling included."""
        users = parse_users(settings.veeam_users, settings.veeam_roles)
        throttle = LogonThrottle(settings.veeam_logon_failures, settings.veeam_logon_backoff)
        return cls(users, settings.veeam_session_idle, settings.veeam_collection, throttle)

    def _job_rows(self, kind: Kind) -> list[Route]:
        """A family's list, get and action rows (NAS: `/{action}`; others: `?action=`)."""
        path, read = f"/api/{kind.path}", SESSION
        build_list = functools.partial(self.build_list_jobs, kind)
        render_list = functools.partial(rows.render_jobs, kind)
        render_one = functools.partial(rows.render_job, kind)
        table = [
            self.row("GET", path, "ListJobs", build_list, render_list, data=read),
            self.row("GET", path + "/{id}", "GetJob", self.build_get_job, render_one, data=read),
        ]
        if not kind.action_in_path:  # the row `?action=` is looked up from (resolve)
            table.append(self.row("POST", path + "/{id}", None, None, rows.refuse_action,
                                 name=BY_ACTION, data=read))  # fmt: skip
        for action in codec.ACTIONS:
            build = functools.partial(self.build_action, kind, action)
            render = functools.partial(self.render_action, action)
            suffix = f"/{action.spelling}" if kind.action_in_path else ""
            one = self.row("POST", f"{path}/{{id}}{suffix}", action.rpc, build, render, 202,
                           data=read)  # fmt: skip
            if kind.action_in_path:
                table.append(one)
            else:
                self.by_action[(table[-1].template, action.spelling.lower())] = one
        return table

    # --- the seam ---------------------------------------------------------------------

    def claims(self, request: Request) -> bool:
        low = request.path.lower()
        return low == "/api" or low.startswith("/api/")

    def resolve(self, request: Request) -> tuple[Route, dict[str, str]]:
        """The seam's routing, then `?action=` (any case) picks the action's own row; an
        unknown or missing action stays on the row that refuses it (after the session
        check, like every other refusal)."""
        route, params = super().resolve(request)
        if route.name == BY_ACTION:
            action = dict(request.query()).get("action", "").lower()
            route = self.by_action.get((route.template, action), route)
        return route, params

    def check_headers(self, incoming: Incoming) -> None:
        """Logon: the version and the Basic credentials (`state["user"]`). Elsewhere but
        the entry point: a live session (`state["session"]`); what its user may do is
        the core's decision (assertion)."""
        route = incoming.route
        assert route is not None
        if route.name == LOGON:
            incoming.state["user"] = logon.logon_user(incoming, self.sessions, self.throttle)
        elif route.data == SESSION:
            incoming.state["session"] = logon.session_of(incoming, self.sessions)

    def assertion(self, incoming: Incoming) -> Assertion | None:
        """The session's user (`veeam:<user>`) with the core role of its Veeam role on the
        collection; rows without a session make no call."""
        session: Session | None = incoming.state.get("session")
        return logon.assertion_of(session, self.collection) if session is not None else None

    def format_error(self, error: GatewayError, row: ErrorRow, incoming: Incoming) -> Response:
        """`<Error StatusCode= Message=/>` or its JSON; bad credentials name the realm, a
        throttled logon says when to retry."""
        message = self.errors.message(row, error, incoming.params)
        response = rows.send(incoming, codec.encode_error(row.status, message), row.status)
        if error.reason == "BAD_CREDENTIALS":
            response.header("www-authenticate", 'Basic realm="RestSvc"')
        if error.reason == "LOGON_THROTTLED" and "retry_after" in error.metadata:
            response.header("retry-after", error.metadata["retry_after"])
        return response

    # --- entry point and sessions (gateway-local) ---------------------------------------

    def entry_point(self, incoming: Incoming, _: None) -> Response:
        """`GET /api/`: no session needed; the logon links."""
        node = codec.encode_entry_point(incoming.base_url(), logon.VERSIONS[-1:])
        return rows.send(incoming, node)

    def logon(self, incoming: Incoming, _: None) -> Response:
        """A new session: 201, its token in a header, a cookie and the body."""
        session = self.sessions.logon(incoming.state["user"])  # the throttle cleared it
        node = codec.encode_logon_session(session, incoming.base_url())
        response = rows.send(incoming, node, incoming.status).header(rows.TOKEN, session.id)
        return response.header("set-cookie", f"{rows.TOKEN}={session.id}; Path=/api; HttpOnly")

    def list_sessions(self, incoming: Incoming, _: None) -> Response:
        """Only the caller's own session: a LogonSession carries its token."""
        own = rows.session_of(incoming)
        return rows.send(incoming, codec.encode_logon_sessions([own], incoming.base_url()))

    def get_session(self, incoming: Incoming, _: None) -> Response:
        """The caller's own LogonSession (another id is not found)."""
        own = rows.own_session(incoming)
        return rows.send(incoming, codec.encode_logon_session(own, incoming.base_url()))

    def logoff(self, incoming: Incoming, _: None) -> Response:
        """204: the caller's own session ends (another id is not found)."""
        self.sessions.logoff(rows.own_session(incoming).id)
        return Response(incoming.status, b"", None)

    # --- jobs -------------------------------------------------------------------------

    def _job_name(self, incoming: Incoming) -> str:
        return f"{self.parent}/jobs/{incoming.params['id']}"

    def build_list_jobs(self, kind: Kind, incoming: Incoming) -> pb.ListJobsRequest:
        """One page of the family's jobs (a list holds at most MAX_LISTED_JOBS)."""
        rows.entity_wanted(incoming)
        return pb.ListJobsRequest(
            parent=self.parent,
            page_size=codec.MAX_LISTED_JOBS,
            allow_missing=True,
            structured_filter=codec.type_filter(kind),
        )

    def build_get_job(self, incoming: Incoming) -> pb.GetJobRequest:
        """GetJob (the core finds a backup job's GUID in any case)."""
        rows.entity_wanted(incoming)
        return pb.GetJobRequest(name=self._job_name(incoming))

    def build_action(self, kind: Kind, action: Action, incoming: Incoming) -> Message:
        """The action, only on a job of the route's family (else JOB_TYPE_MISMATCH)."""
        request = ACTION_REQUESTS[action.rpc](name=self._job_name(incoming))
        request.preconditions.types.extend(kind.type_names)
        return request

    def render_action(self, action: Action, incoming: Incoming, job: r.Job) -> Response:
        """A finished Task of the caller's session."""
        message = action.message or codec.toggle_message(job)
        task = self.sessions.add_task(
            rows.session_of(incoming), action.operation, result=(True, message)
        )
        return rows.send(incoming, codec.encode_task(task, incoming.base_url()), incoming.status)

    def build_delete(self, incoming: Incoming) -> pb.DeleteJobRequest:
        """DeleteJob: NAS/agent jobs and jobs being deleted are refused by the core (the
        row's errors make that 404)."""
        return pb.DeleteJobRequest(name=self._job_name(incoming))

    def render_delete(self, incoming: Incoming, op: operations_pb2.Operation) -> Response:
        """A DeleteJob Task tracking the deletion's Operation (Finished if it is done)."""
        task = self.sessions.add_task(
            rows.session_of(incoming), "DeleteJob", operation_name=op.name
        )
        task.finish(codec.decode_operation_result(op))
        return rows.send(incoming, codec.encode_task(task, incoming.base_url()), incoming.status)

    # --- tasks (gateway-local records, brought up to date from their Operations) -------

    def build_list_tasks(self, incoming: Incoming) -> operations_pb2.ListOperationsRequest | None:
        """One ListOperations naming the newest unresolved deletions; none: no call."""
        asked = rows.session_of(incoming).unresolved(codec.MAX_ASKED_OPERATIONS)
        # render resolves exactly these (tasks added meanwhile were not asked about)
        incoming.state["asked"] = asked
        if not asked:
            return None
        names = [task.operation_name for task in asked]
        return operations_pb2.ListOperationsRequest(
            filter=codec.encode_operations_filter(names), page_size=len(names)
        )

    def render_list_tasks(
        self, incoming: Incoming, reply: operations_pb2.ListOperationsResponse | None
    ) -> Response:
        """Resolve the tasks the request asked about (absent: untracked), then list them."""
        found = {op.name: op for op in reply.operations} if reply is not None else {}
        for task in incoming.state["asked"]:
            op = found.get(task.operation_name)
            task.finish(codec.decode_operation_result(op) if op is not None else codec.UNTRACKED)
        tasks = list(rows.session_of(incoming).tasks.values())
        return rows.send(incoming, codec.encode_tasks(tasks, incoming.base_url()))

    def build_get_task(self, incoming: Incoming) -> operations_pb2.GetOperationRequest | None:
        """GetOperation of an unresolved deletion; none for action and finished tasks."""
        task = rows.task_of(incoming)
        if not task.unresolved:
            return None
        return operations_pb2.GetOperationRequest(name=task.operation_name)

    def render_get_task(self, incoming: Incoming, op: operations_pb2.Operation | None) -> Response:
        """The task, resolved by its Operation if one was read."""
        task = rows.task_of(incoming)
        if op is not None:
            task.finish(codec.decode_operation_result(op))
        return rows.send(incoming, codec.encode_task(task, incoming.base_url()))

    def build_cancel_task(self, incoming: Incoming) -> operations_pb2.CancelOperationRequest | None:
        """Cancel an unresolved deletion; a finished task needs no call (render removes it)."""
        task = rows.task_of(incoming)
        if not task.unresolved:
            return None
        return operations_pb2.CancelOperationRequest(name=task.operation_name)

    def render_cancel_task(self, incoming: Incoming, reply: object) -> Response:
        """204: a finished task is removed; a cancelled deletion stays, Finished, not
        successful."""
        task = rows.task_of(incoming)
        if reply is None:
            rows.session_of(incoming).tasks.pop(task.task_id, None)
        else:
            task.finish(codec.CANCELLED)
        return Response(incoming.status, b"", None)
