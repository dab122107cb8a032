"""Veeam Backup Enterprise Manager dialect, profile `backup` (dialects.md §4, seed 004)."""

# Everything under `/api`, backed by one jobcontrol collection. Each job route makes at most
# one call: the family of a route (generic, NAS, agent) travels as `preconditions.types`,
# and every lifecycle rule (start/stop/retry, the toggle, asynchronous and cancellable
# deletion, NAS and agent jobs not deletable here) is the core's, and so is every right:
# each call asserts the session's user (`veeam:<user>`) with the core role of its Veeam
# role on the collection. Logon sessions and their tasks are kept by the core
# (DialectStateService through gateway/dialect_state.py), so that a token, a log off and a
# `task-N` mean the same on every gateway: a session is looked up (its idle window moved)
# before every row but the entry point and logon (`admit`), and the rows of logon, log
# off, tasks and the rows that create tasks keep their changes there (`load` / `save`,
# veeam_tasks.py). Only the logon throttle stays in the process (veeam_throttle.py).

from __future__ import annotations

import functools
from typing import ClassVar

from google.longrunning import operations_pb2
from google.protobuf.message import Message

from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialect_state import DialectState
from jobcontrol.gateway.dialects import veeam_codec as codec
from jobcontrol.gateway.dialects import veeam_errors
from jobcontrol.gateway.dialects import veeam_logon as logon
from jobcontrol.gateway.dialects import veeam_rows as rows
from jobcontrol.gateway.dialects import veeam_tasks as tasks
from jobcontrol.gateway.dialects.base import Assertion, Dialect
from jobcontrol.gateway.dialects.error_table import ErrorRow
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.routing import Route
from jobcontrol.gateway.dialects.veeam_codec import Action, Kind
from jobcontrol.gateway.dialects.veeam_sessions import (
    Session,
    TaskRecord,
    User,
    new_token,
    parse_users,
    unresolved,
)
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
        self.users = users
        self.idle = idle
        self.throttle = throttle or LogonThrottle()
        self.collection = collection
        self.parent = f"collections/{collection}"
        # (template of a BY_ACTION row, action in lower case) -> the row that runs
        self.by_action: dict[tuple[Template, str], Route] = {}
        # every row but the entry point and logon needs a live session
        read, row = SESSION, self.row
        rows = [
            row("GET", "/api", None, None, self.entry_point),
            row("POST", "/api/sessionMngr", None, None, self.logon, 201, name=LOGON,
                save=self.open_session),
            row("GET", "/api/logonSessions", None, None, self.list_sessions, data=read),
            row("GET", "/api/logonSessions/{sid}", None, None, self.get_session, data=read),
            row("DELETE", "/api/logonSessions/{sid}", None, None, self.logoff, 204, data=read,
                save=logon.end_session),
            row("DELETE", "/api/jobs/{id}", "DeleteJob", self.build_delete, self.render_delete,
                202, errors=veeam_errors.DELETE_ERRORS, data=read, save=tasks.save_delete),
            row("GET", "/api/tasks", "ListOperations", self.build_list_tasks,
                self.render_list_tasks, data=read, load=tasks.load_all, save=tasks.save_listed),
            row("GET", "/api/tasks/{tid}", "GetOperation", self.build_get_task,
                self.render_get_task, data=read, load=tasks.load_one, save=tasks.save_polled),
            row("DELETE", "/api/tasks/{tid}", "CancelOperation", self.build_cancel_task,
                self.render_cancel_task, 204, errors=veeam_errors.CANCEL_ERRORS, data=read,
                load=tasks.load_one, save=tasks.save_cancel),
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
            save = functools.partial(tasks.save_action, action)
            render = functools.partial(self.render_action, action)
            suffix = f"/{action.spelling}" if kind.action_in_path else ""
            one = self.row("POST", f"{path}/{{id}}{suffix}", action.rpc, build, render, 202,
                           data=read, save=save)  # fmt: skip
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
        the entry point: a session token (`state["token"]`), looked up by `admit`."""
        route = incoming.route
        assert route is not None
        if route.name == LOGON:
            incoming.state["user"] = logon.logon_user(incoming, self.users, self.throttle)
        elif route.data == SESSION:
            incoming.state["token"] = logon.token_of(incoming)

    async def admit(self, incoming: Incoming, state: DialectState) -> None:
        """The token's live session, as the core keeps it (`state["session"]`); what its
        user may do is the core's decision (assertion)."""
        if "token" in incoming.state:
            token = incoming.state["token"]
            incoming.state["session"] = await logon.session_of(incoming, state, token)

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

    # --- entry point and sessions (kept by the core) -----------------------------------

    def entry_point(self, incoming: Incoming, _: None) -> Response:
        """`GET /api/`: no session needed; the logon links."""
        node = codec.encode_entry_point(incoming.base_url(), logon.VERSIONS[-1:])
        return rows.send(incoming, node)

    async def open_session(self, incoming: Incoming, _: None, state: DialectState) -> None:
        """A new session of the logon's user (the throttle cleared it), kept by the core
        under the digest of its token."""
        user: User = incoming.state["user"]
        token = new_token()
        found = await state.create_session(rows.DIALECT, token, user.name, [user.role], self.idle)
        incoming.state["session"] = Session(token, user, found.expire_time.ToSeconds())

    def logon(self, incoming: Incoming, _: None) -> Response:
        """The new session: 201, its token in a header, a cookie and the body."""
        session: Session = incoming.state["session"]
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
        """204: the caller's own session has ended (`end_session`)."""
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
        """The action's Task: Finished, its message from the reply."""
        result = tasks.action_result(action, job)
        task = TaskRecord(incoming.state["task_id"], action.operation, "", result)
        return rows.send(incoming, codec.encode_task(task, incoming.base_url()), incoming.status)

    def build_delete(self, incoming: Incoming) -> pb.DeleteJobRequest:
        """DeleteJob: NAS/agent jobs and jobs being deleted are refused by the core (the
        row's errors make that 404)."""
        return pb.DeleteJobRequest(name=self._job_name(incoming))

    def render_delete(self, incoming: Incoming, op: operations_pb2.Operation) -> Response:
        """The deletion's Task, its state from DeleteJob's own reply."""
        result = codec.decode_operation_result(op)
        task = TaskRecord(incoming.state["task_id"], "DeleteJob", op.name, result)
        return rows.send(incoming, codec.encode_task(task, incoming.base_url()), incoming.status)

    # --- tasks (kept by the core, brought up to date from their Operations) -----------

    def build_list_tasks(self, incoming: Incoming) -> operations_pb2.ListOperationsRequest | None:
        """One ListOperations naming the newest unresolved deletions; none: no call."""
        asked = unresolved(incoming.state["tasks"], codec.MAX_ASKED_OPERATIONS)
        # save resolves exactly these (tasks added meanwhile were not asked about)
        incoming.state["asked"] = asked
        if not asked:
            return None
        names = [task.operation_name for task in asked]
        return operations_pb2.ListOperationsRequest(
            filter=codec.encode_operations_filter(names), page_size=len(names)
        )

    def render_list_tasks(
        self, incoming: Incoming, _: operations_pb2.ListOperationsResponse | None
    ) -> Response:
        """The session's tasks, as `tasks.save_listed` resolved them."""
        return rows.send(incoming, codec.encode_tasks(incoming.state["tasks"], incoming.base_url()))

    def build_get_task(self, incoming: Incoming) -> operations_pb2.GetOperationRequest | None:
        """GetOperation of an unresolved deletion; none for action and finished tasks."""
        task = rows.task_of(incoming)
        if not task.unresolved:
            return None
        return operations_pb2.GetOperationRequest(name=task.operation_name)

    def render_get_task(self, incoming: Incoming, _: operations_pb2.Operation | None) -> Response:
        """The task, as `tasks.save_polled` resolved it."""
        return rows.send(incoming, codec.encode_task(rows.task_of(incoming), incoming.base_url()))

    def build_cancel_task(self, incoming: Incoming) -> operations_pb2.CancelOperationRequest | None:
        """Cancel an unresolved deletion; a finished task needs no call (it is removed)."""
        task = rows.task_of(incoming)
        if not task.unresolved:
            return None
        return operations_pb2.CancelOperationRequest(name=task.operation_name)

    def render_cancel_task(self, incoming: Incoming, _: object) -> Response:
        """204: `tasks.save_cancel` removed a finished task or finished a cancelled one."""
        return Response(incoming.status, b"", None)
