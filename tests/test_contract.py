"""The gRPC contract: every RPC is served, annotated for HTTP, and the core agrees with the
proto's field behaviours."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2
from google.longrunning import operations_pb2
from google.protobuf import descriptor, duration_pb2, empty_pb2

from jobcontrol.service.core.profiles import OUTPUT_ONLY_PATHS, SPEC_OUTPUT_ONLY_PATHS
from jobcontrol.v1 import diagnostics_service_pb2 as diag
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import operator_service_pb2 as ops
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients
from tests.helpers import wait_done

JOBCONTROL_SERVICES: list[descriptor.ServiceDescriptor] = [
    js.DESCRIPTOR.services_by_name["JobService"],
    ops.DESCRIPTOR.services_by_name["OperatorService"],
    diag.DESCRIPTOR.services_by_name["DiagnosticsService"],
]
OPERATIONS_SERVICE = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
ALL_SERVICES = [*JOBCONTROL_SERVICES, OPERATIONS_SERVICE]


def full_names(service: descriptor.ServiceDescriptor) -> set[str]:
    return {f"{service.full_name}/{m.name}" for m in service.methods}


class Recorder:
    """A stub wrapper that records `Service/Method` of every call that succeeded."""

    def __init__(self, stub: Any, service: descriptor.ServiceDescriptor, seen: set[str]) -> None:
        self._stub = stub
        self._service = service
        self._seen = seen

    def __getattr__(self, method: str) -> Callable[[Any], Awaitable[Any]]:
        assert method in self._service.methods_by_name, f"{method} not in {self._service.name}"
        call = getattr(self._stub, method)

        async def invoke(request: Any) -> Any:
            reply = await call(request)
            self._seen.add(f"{self._service.full_name}/{method}")
            return reply

        return invoke


def field_behaviors(field: descriptor.FieldDescriptor) -> list[int]:
    return list(field.GetOptions().Extensions[field_behavior_pb2.field_behavior])  # type: ignore[index]


async def exercise_collections_and_scheduled(jobs: Any, operator: Any, operations: Any) -> None:
    """Collections, the standard job methods, pause/resume, history and operations."""
    col = await jobs.CreateCollection(
        js.CreateCollectionRequest(
            collection_id="contract", collection=res.Collection(profile=res.SCHEDULED)
        )
    )
    assert (await jobs.GetCollection(js.GetCollectionRequest(name=col.name))) == col
    listed = await jobs.ListCollections(js.ListCollectionsRequest())
    assert col.name in [c.name for c in listed.collections]
    renamed = await jobs.UpdateCollection(
        js.UpdateCollectionRequest(collection=res.Collection(name=col.name, display_name="C"))
    )
    assert renamed.display_name == "C"

    job = await jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="s", job=res.Job(display_name="s"))
    )
    assert (await jobs.GetJob(js.GetJobRequest(name=job.name))) == job
    page = await jobs.ListJobs(js.ListJobsRequest(parent=col.name))
    assert [j.name for j in page.jobs] == [job.name]
    updated = await jobs.UpdateJob(
        js.UpdateJobRequest(job=res.Job(name=job.name, display_name="t", etag=job.etag))
    )
    assert updated.display_name == "t"
    assert (await jobs.PauseJob(js.PauseJobRequest(name=job.name))).state == res.DISABLED
    assert (await jobs.ResumeJob(js.ResumeJobRequest(name=job.name))).state == res.ENABLED

    entry = await operator.RecordRun(
        ops.RecordRunRequest(
            parent=job.name,
            entry=res.HistoryEntry(status=res.HistoryEntry.COMPLETED, message="ran"),
        )
    )
    history = await jobs.ListJobHistory(js.ListJobHistoryRequest(parent=job.name))
    assert [e.name for e in history.entries] == [entry.name]
    moved = await operator.TransitionJob(
        ops.TransitionJobRequest(name=job.name, state=res.COMPLETED)
    )
    assert moved.state == res.COMPLETED

    op = await jobs.DeleteJob(js.DeleteJobRequest(name=job.name))
    got = await operations.GetOperation(operations_pb2.GetOperationRequest(name=op.name))
    assert got.name == op.name
    waited = await operations.WaitOperation(
        operations_pb2.WaitOperationRequest(name=op.name, timeout=duration_pb2.Duration(seconds=5))
    )
    assert waited.done
    listed_ops = await operations.ListOperations(operations_pb2.ListOperationsRequest())
    assert op.name in [o.name for o in listed_ops.operations]
    reply = await operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=op.name))
    assert reply == empty_pb2.Empty()

    await jobs.CreateJob(js.CreateJobRequest(parent=col.name, job_id="bulk", job=res.Job()))
    bulk = await jobs.DeleteJobs(js.DeleteJobsRequest(parent=col.name))
    await wait_done(operations, bulk.name)
    gone = await jobs.DeleteCollection(js.DeleteCollectionRequest(name=col.name))
    await wait_done(operations, gone.name)


async def exercise_batch(jobs: Any, operator: Any, operations: Any) -> None:
    """Tasks, task transitions and terminate."""
    col = await jobs.CreateCollection(
        js.CreateCollectionRequest(
            collection_id="contract-batch", collection=res.Collection(profile=res.BATCH)
        )
    )
    job = await jobs.CreateJob(
        js.CreateJobRequest(
            parent=col.name,
            job_id="b",
            job=res.Job(batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p"))),
        )
    )
    task = await jobs.CreateTask(
        js.CreateTaskRequest(parent=job.name, task_id="t", task=res.Task(command_line="run"))
    )
    assert (await jobs.GetTask(js.GetTaskRequest(name=task.name))) == task
    tasks = await jobs.ListTasks(js.ListTasksRequest(parent=job.name))
    assert [t.name for t in tasks.tasks] == [task.name]
    running = await operator.TransitionTask(
        ops.TransitionTaskRequest(name=task.name, state=res.Task.RUNNING)
    )
    assert running.state == res.Task.RUNNING
    finished = await operator.TransitionTask(
        ops.TransitionTaskRequest(name=task.name, state=res.Task.COMPLETED, result=res.Task.SUCCESS)
    )
    assert finished.state == res.Task.COMPLETED
    counts = await jobs.CountTasks(js.CountTasksRequest(parent=job.name))
    assert counts == res.TaskCounts(completed=1, succeeded=1)
    ended = await jobs.TerminateJob(js.TerminateJobRequest(name=job.name, reason="done"))
    assert ended.state == res.COMPLETED


async def exercise_backup(jobs: Any, operations: Any) -> None:
    """Start / stop / retry, and cancelling an unfinished deletion."""
    col = await jobs.CreateCollection(
        js.CreateCollectionRequest(
            collection_id="contract-backup", collection=res.Collection(profile=res.BACKUP)
        )
    )
    job = await jobs.CreateJob(
        js.CreateJobRequest(
            parent=col.name,
            job_id="k",
            job=res.Job(backup=res.BackupSpec(job_type=res.BackupSpec.BACKUP)),
        )
    )
    assert (await jobs.StartJob(js.StartJobRequest(name=job.name))).state == res.RUNNING
    stopped = await jobs.StopJob(js.StopJobRequest(name=job.name))
    assert stopped.state == res.IDLE
    assert stopped.backup.last_result == res.BackupSpec.FAILED
    assert (await jobs.RetryJob(js.RetryJobRequest(name=job.name))).state == res.RUNNING
    toggled = await jobs.ToggleJob(js.ToggleJobRequest(name=job.name))
    assert toggled.backup.schedule_enabled is True

    # a RUNNING backup job stays DELETING until its run ends: the deletion is cancellable
    op = await jobs.DeleteJob(js.DeleteJobRequest(name=job.name))
    assert not op.done
    reply = await operations.CancelOperation(operations_pb2.CancelOperationRequest(name=op.name))
    assert reply == empty_pb2.Empty()
    cancelled = await wait_done(operations, op.name)
    assert cancelled.error.code == 1  # google.rpc.Code.CANCELLED
    restored = await jobs.GetJob(js.GetJobRequest(name=job.name))
    assert restored.state == res.RUNNING


async def test_contract_every_rpc_is_served(clients: Clients) -> None:
    """Contract: every RPC of JobService, OperatorService, DiagnosticsService and
    google.longrunning.Operations answers a valid call (adding an RPC without a test fails)."""
    seen: set[str] = set()
    jobs = Recorder(clients.jobs, JOBCONTROL_SERVICES[0], seen)
    operator = Recorder(clients.operator, JOBCONTROL_SERVICES[1], seen)
    diagnostics = Recorder(clients.diag, JOBCONTROL_SERVICES[2], seen)
    operations = Recorder(clients.operations, OPERATIONS_SERVICE, seen)

    echoed = await diagnostics.Echo(diag.EchoRequest(message="ping"))
    assert echoed.message == "ping"
    await exercise_collections_and_scheduled(jobs, operator, operations)
    await exercise_batch(jobs, operator, operations)
    await exercise_backup(jobs, operations)

    expected = set().union(*(full_names(s) for s in ALL_SERVICES))
    assert seen == expected, f"never called: {sorted(expected - seen)}"


def test_contract_every_rpc_has_an_http_rule() -> None:
    """Contract: every jobcontrol.v1 RPC carries a google.api.http option (AIP-127)."""
    missing = []
    for service in JOBCONTROL_SERVICES:
        for method in service.methods:
            rule: Any = method.GetOptions().Extensions[annotations_pb2.http]  # type: ignore[index]
            pattern = rule.WhichOneof("pattern")
            if pattern is None or not getattr(rule, pattern):
                missing.append(f"{service.name}/{method.name}")
    assert missing == []
    assert sum(len(s.methods) for s in JOBCONTROL_SERVICES) > 0


def test_contract_output_only_paths_match_field_behavior() -> None:
    """Contract: the core's OUTPUT_ONLY_PATHS are the Job fields marked OUTPUT_ONLY, plus
    `name` (IDENTIFIER: it addresses the job and cannot be written)."""
    job = res.Job.DESCRIPTOR
    output_only = {
        f.name for f in job.fields if field_behavior_pb2.OUTPUT_ONLY in field_behaviors(f)
    }
    identifier = {f.name for f in job.fields if field_behavior_pb2.IDENTIFIER in field_behaviors(f)}
    assert identifier == {"name"}
    assert set(OUTPUT_ONLY_PATHS) == output_only | identifier


def test_contract_spec_output_only_paths_match_field_behavior() -> None:
    """Contract: the core's SPEC_OUTPUT_ONLY_PATHS are the spec fields marked OUTPUT_ONLY."""
    spec_fields = res.Job.DESCRIPTOR.oneofs_by_name["spec"].fields
    from_proto = {
        f"{spec.name}.{f.name}"
        for spec in spec_fields
        for f in spec.message_type.fields
        if field_behavior_pb2.OUTPUT_ONLY in field_behaviors(f)
    }
    assert set(SPEC_OUTPUT_ONLY_PATHS) == from_proto
