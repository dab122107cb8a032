"""jobcontrol.v1.DialectStateService: the gateway's dialect state, proto <-> domain."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2, empty_pb2, timestamp_pb2

from jobcontrol.service.core.dialect_records import LogonSession, RequestOutcome, SessionTask
from jobcontrol.service.core.service import Core
from jobcontrol.service.rpc import convert
from jobcontrol.service.rpc.guard import guarded
from jobcontrol.v1 import session_service_pb2 as pb
from jobcontrol.v1 import session_service_pb2_grpc

Ctx = Any


def _time(us: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromMicroseconds(us)
    return stamp


def session_to_proto(session: LogonSession) -> pb.LogonSession:
    idle = duration_pb2.Duration()
    idle.FromMicroseconds(session.idle_us)
    return pb.LogonSession(
        name=session.name,
        user=session.user,
        roles=session.roles,
        idle_timeout=idle,
        create_time=_time(session.create_time),
        expire_time=_time(session.expire_time),
    )


def session_from_proto(message: pb.LogonSession) -> LogonSession:
    convert.check_values(message, "logon_session")  # a duration beyond ±10,000 years
    idle = message.idle_timeout.ToMicroseconds() if message.HasField("idle_timeout") else 0
    return LogonSession("", "", message.user, list(message.roles), idle)


def task_to_proto(task: SessionTask) -> pb.SessionTask:
    message = pb.SessionTask(
        name=task.name,
        operation=task.operation,
        operation_name=task.operation_name,
        create_time=_time(task.create_time),
    )
    if task.result is not None:
        message.result.success, message.result.message = task.result
    return message


def task_from_proto(message: pb.SessionTask) -> SessionTask:
    result = (message.result.success, message.result.message)
    return SessionTask(
        "", "", 0, message.operation, message.operation_name,
        result if message.HasField("result") else None,
    )  # fmt: skip


def outcome_to_proto(outcome: RequestOutcome) -> pb.RequestOutcome:
    return pb.RequestOutcome(
        name=outcome.name,
        http_status=outcome.http_status,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        create_time=_time(outcome.create_time),
    )


def outcome_from_proto(message: pb.RequestOutcome) -> RequestOutcome:
    """The outcome without its name's parts (the core parses the name)."""
    return RequestOutcome(
        "", "", "", message.http_status, message.error_code, message.error_message
    )


class DialectStateServicer(session_service_pb2_grpc.DialectStateServiceServicer):
    """Logon sessions, their tasks and request outcomes (core/dialect_state.py)."""

    def __init__(self, core: Core) -> None:
        self.state = core.dialect_state

    @guarded
    async def CreateLogonSession(self, request: pb.CreateLogonSessionRequest, context: Ctx) -> Any:
        session = session_from_proto(request.logon_session)
        created = await self.state.create_session(request.parent, request.logon_session_id, session)
        return session_to_proto(created)

    @guarded
    async def GetLogonSession(self, request: pb.GetLogonSessionRequest, context: Ctx) -> Any:
        return session_to_proto(await self.state.get_session(request.name))

    @guarded
    async def DeleteLogonSession(self, request: pb.DeleteLogonSessionRequest, context: Ctx) -> Any:
        await self.state.delete_session(request.name, request.allow_missing)
        return empty_pb2.Empty()

    @guarded
    async def CreateSessionTask(self, request: pb.CreateSessionTaskRequest, context: Ctx) -> Any:
        task = task_from_proto(request.session_task)
        return task_to_proto(await self.state.create_task(request.parent, task))

    @guarded
    async def GetSessionTask(self, request: pb.GetSessionTaskRequest, context: Ctx) -> Any:
        return task_to_proto(await self.state.get_task(request.name))

    @guarded
    async def ListSessionTasks(self, request: pb.ListSessionTasksRequest, context: Ctx) -> Any:
        tasks, token = await self.state.list_tasks(
            request.parent, request.page_size, request.page_token
        )
        return pb.ListSessionTasksResponse(
            session_tasks=[task_to_proto(task) for task in tasks], next_page_token=token
        )

    @guarded
    async def FinishSessionTask(self, request: pb.FinishSessionTaskRequest, context: Ctx) -> Any:
        result = (request.result.success, request.result.message)
        return task_to_proto(await self.state.finish_task(request.name, result))

    @guarded
    async def DeleteSessionTask(self, request: pb.DeleteSessionTaskRequest, context: Ctx) -> Any:
        await self.state.delete_task(request.name, request.allow_missing)
        return empty_pb2.Empty()

    @guarded
    async def RecordRequestOutcome(
        self, request: pb.RecordRequestOutcomeRequest, context: Ctx
    ) -> Any:
        given = request.request_outcome
        outcome = await self.state.record_outcome(given.name, outcome_from_proto(given))
        return outcome_to_proto(outcome)

    @guarded
    async def GetRequestOutcome(self, request: pb.GetRequestOutcomeRequest, context: Ctx) -> Any:
        return outcome_to_proto(await self.state.get_outcome(request.name))
