"""jobcontrol.v1.OperatorService: transitions only operators or the system make."""

from __future__ import annotations

from typing import Any

from jobcontrol.service.core.model import State, TaskResult, TaskState
from jobcontrol.service.core.service import Core
from jobcontrol.service.rpc import convert
from jobcontrol.service.rpc.guard import guarded
from jobcontrol.v1 import operator_service_pb2 as pb
from jobcontrol.v1 import operator_service_pb2_grpc, resources_pb2

Ctx = Any


class OperatorServicer(operator_service_pb2_grpc.OperatorServiceServicer):
    """Operator moves of jobs and tasks, and recorded runs."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @guarded
    async def TransitionJob(self, request: pb.TransitionJobRequest, context: Ctx) -> Any:
        state = State(convert.enum_name(resources_pb2.State, request.state, "state"))
        job = await self.core.actions.transition(request.name, state, request.etag)
        return convert.job_to_proto(job)

    @guarded
    async def TransitionTask(self, request: pb.TransitionTaskRequest, context: Ctx) -> Any:
        state = TaskState(convert.enum_name(resources_pb2.Task.State, request.state, "state"))
        result = (
            TaskResult(convert.enum_name(resources_pb2.Task.Result, request.result, "result"))
            if request.result
            else None
        )
        task = await self.core.tasks.transition(request.name, state, result)
        return convert.task_to_proto(task)

    @guarded
    async def RecordRun(self, request: pb.RecordRunRequest, context: Ctx) -> Any:
        entry = convert.history_from_proto(request.entry)
        recorded = await self.core.history.record_run(request.parent, entry)
        return convert.history_to_proto(recorded)
