"""The Veeam rows' steps that read and keep tasks in the core (a session's tasks are the
core's, gateway/dialect_state.py): `load` before the row's pure build, `save` after its
call. A task's first result is the one kept (FinishSessionTask)."""

from __future__ import annotations

import re

import grpc
from google.longrunning import operations_pb2

from jobcontrol.gateway.dialect_state import DialectState
from jobcontrol.gateway.dialects import veeam_codec as codec
from jobcontrol.gateway.dialects import veeam_rows as rows
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.veeam_codec import Action
from jobcontrol.gateway.dialects.veeam_sessions import TaskRecord, task_of
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.v1 import resources_pb2 as r
from jobcontrol.v1 import session_service_pb2 as pb

# the ids the core gives (any other id names no task)
_TASK_ID = re.compile(r"task-[1-9]\d{0,17}")


def _task_not_found(incoming: Incoming) -> GatewayError:
    return rows.not_found("TASK_NOT_FOUND", f"Task {incoming.params['tid']} not found.")


async def create(
    incoming: Incoming,
    state: DialectState,
    operation: str,
    operation_name: str = "",
    result: tuple[bool, str] | None = None,
) -> TaskRecord:
    """A new task of the caller's session (`task-N`, numbered by the core)."""
    message = pb.SessionTask(operation=operation, operation_name=operation_name)
    if result is not None:
        message.result.success, message.result.message = result
    session = rows.core_session_name(rows.session_of(incoming).id)
    return task_of(await state.create_task(session, message))


async def finish(
    incoming: Incoming, state: DialectState, task: TaskRecord, result: tuple[bool, str] | None
) -> TaskRecord:
    """The task with `result` kept (the first result wins; None: as it is)."""
    if result is None or task.result is not None:
        return task
    name = rows.core_task_name(incoming, task.task_id)
    return task_of(await state.finish_task(name, *result))


async def load_all(incoming: Incoming, state: DialectState) -> None:
    """`state["tasks"]`: the caller's session's tasks, oldest first."""
    session = rows.core_session_name(rows.session_of(incoming).id)
    incoming.state["tasks"] = [task_of(t) for t in await state.list_tasks(session)]


async def load_one(incoming: Incoming, state: DialectState) -> None:
    """`state["task"]`: the caller's task of the path (another session's is not found)."""
    tid = incoming.params["tid"]
    if not _TASK_ID.fullmatch(tid):
        raise _task_not_found(incoming)
    try:
        found = await state.get_task(rows.core_task_name(incoming, tid))
    except GatewayError as error:
        if error.code == grpc.StatusCode.NOT_FOUND:
            raise _task_not_found(incoming) from None
        raise
    incoming.state["task"] = task_of(found)


def resolutions(
    asked: list[TaskRecord], reply: operations_pb2.ListOperationsResponse | None
) -> list[tuple[TaskRecord, tuple[bool, str] | None]]:
    """What the list's reply says of each task it asked about: its Operation's result
    (None while running), or untracked when the Operation is gone."""
    found = {op.name: op for op in reply.operations} if reply is not None else {}
    return [
        (task, codec.decode_operation_result(found[task.operation_name])
         if task.operation_name in found else codec.UNTRACKED)
        for task in asked
    ]  # fmt: skip


async def save_listed(
    incoming: Incoming, reply: operations_pb2.ListOperationsResponse | None, state: DialectState
) -> None:
    """Keep the results the list found (exactly the tasks it asked about)."""
    if not incoming.state["asked"]:
        return
    kept = {}
    for task, result in resolutions(incoming.state["asked"], reply):
        kept[task.task_id] = await finish(incoming, state, task, result)
    incoming.state["tasks"] = [kept.get(t.task_id, t) for t in incoming.state["tasks"]]


async def save_polled(
    incoming: Incoming, op: operations_pb2.Operation | None, state: DialectState
) -> None:
    """Keep the result of the Operation read for the task, if it is done."""
    if op is not None:
        result = codec.decode_operation_result(op)
        incoming.state["task"] = await finish(incoming, state, rows.task_of(incoming), result)


async def save_cancel(incoming: Incoming, reply: object, state: DialectState) -> None:
    """A finished task (no call) is removed; a cancelled deletion stays, Finished, not
    successful."""
    task = rows.task_of(incoming)
    if reply is None:
        await state.delete_task(rows.core_task_name(incoming, task.task_id))
    else:
        await finish(incoming, state, task, codec.CANCELLED)


def action_result(action: Action, job: r.Job) -> tuple[bool, str]:
    """An action's Task is finished at once: successful, with the action's message."""
    return True, action.message or codec.toggle_message(job)


async def save_action(action: Action, incoming: Incoming, job: r.Job, state: DialectState) -> None:
    """A finished Task of the caller's session, kept by the core (`state["task_id"]`)."""
    task = await create(incoming, state, action.operation, result=action_result(action, job))
    incoming.state["task_id"] = task.task_id


async def save_delete(
    incoming: Incoming, op: operations_pb2.Operation, state: DialectState
) -> None:
    """A DeleteJob Task tracking the deletion's Operation (Finished if it is done), kept
    by the core (`state["task_id"]`)."""
    result = codec.decode_operation_result(op)
    task = await create(incoming, state, "DeleteJob", op.name, result)
    incoming.state["task_id"] = task.task_id
