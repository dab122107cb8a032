"""jobcontrol.v1.JobService: thin translation onto the core's use-cases."""

from __future__ import annotations

from typing import Any

from jobcontrol.service.core import filters
from jobcontrol.service.core.model import Action, TaskDisposition
from jobcontrol.service.core.service import Core
from jobcontrol.service.rpc import convert
from jobcontrol.service.rpc.guard import guarded
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import job_service_pb2_grpc, resources_pb2

Ctx = Any  # grpc.aio.ServicerContext
_DISPOSITION = {
    0: TaskDisposition.REQUEUE,
    pb.REQUEUE: TaskDisposition.REQUEUE,
    pb.TERMINATE: TaskDisposition.TERMINATE,
    pb.WAIT: TaskDisposition.WAIT,
}


class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    """Each method converts the request, calls one use-case, converts the reply."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # collections -------------------------------------------------------------------

    @guarded
    async def CreateCollection(self, request: pb.CreateCollectionRequest, context: Ctx) -> Any:
        collection = convert.collection_from_proto(request.collection)
        created = await self.core.collections.create(
            request.collection_id, collection, request.request_id
        )
        return convert.collection_to_proto(created)

    @guarded
    async def GetCollection(self, request: pb.GetCollectionRequest, context: Ctx) -> Any:
        return convert.collection_to_proto(await self.core.collections.get(request.name))

    @guarded
    async def ListCollections(self, request: pb.ListCollectionsRequest, context: Ctx) -> Any:
        page = await self.core.collections.list_page(
            request.page_size,
            request.page_token,
            request.filter,
            convert.structured_filter(request, filters.COLLECTION_FIELDS),
        )
        return pb.ListCollectionsResponse(
            collections=[convert.collection_to_proto(c) for c in page.collections],
            next_page_token=page.next_page_token,
        )

    @guarded
    async def UpdateCollection(self, request: pb.UpdateCollectionRequest, context: Ctx) -> Any:
        convert.check_enums(request.collection, "collection")
        # with allow_missing the profile is what a missing collection is created with
        fixed = ("name", "etag", "profile") if request.allow_missing else ("name", "etag")
        paths = list(request.update_mask.paths) or [
            p.split(".")[0]
            for p in convert.present_paths(request.collection)
            if p.split(".")[0] not in fixed
        ]
        given = convert.collection_from_proto(_with_profile(request.collection))
        patch = {
            "display_name": given.display_name,
            "plan": given.plan,
            "quota": given.quota,
            "labels": given.labels,
        }
        create_as = (
            convert.collection_from_proto(request.collection) if request.allow_missing else None
        )
        updated = await self.core.collections.update(
            request.collection.name,
            patch,
            paths,
            convert.preconditions(request.collection.etag, request),
            request.request_id,
            create_as,
        )
        return convert.collection_to_proto(updated)

    @guarded
    async def DeleteCollection(self, request: pb.DeleteCollectionRequest, context: Ctx) -> Any:
        op = await self.core.deletions.delete_collection(
            request.name,
            convert.preconditions(request.etag, request),
            request.allow_missing,
            request.request_id,
        )
        return convert.operation_to_proto(op)

    # jobs --------------------------------------------------------------------------

    @guarded
    async def CreateJob(self, request: pb.CreateJobRequest, context: Ctx) -> Any:
        doc = convert.job_document(request.job)
        template = (
            convert.collection_from_proto(request.collection_template, "collection_template")
            if request.HasField("collection_template")
            else None
        )
        job = await self.core.jobs.create(
            request.parent,
            request.job_id,
            doc,
            request.request_id,
            convert.preconditions(request.job.etag, request),
            template,
        )
        return convert.job_to_proto(job)

    @guarded
    async def GetJob(self, request: pb.GetJobRequest, context: Ctx) -> Any:
        full = request.view == pb.JOB_VIEW_FULL
        return convert.job_to_proto(await self.core.jobs.get(request.name, full))

    @guarded
    async def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> Any:
        page = await self.core.jobs.list_page(
            request.parent,
            request.page_size,
            request.page_token,
            request.filter,
            request.order_by,
            request.skip,
            convert.structured_filter(request, filters.JOB_FIELDS),
            request.allow_missing,
            request.view == pb.JOB_VIEW_FULL,
        )
        return pb.ListJobsResponse(
            jobs=[convert.job_to_proto(j) for j in page.jobs],
            next_page_token=page.next_page_token,
        )

    @guarded
    async def UpdateJob(self, request: pb.UpdateJobRequest, context: Ctx) -> Any:
        doc = convert.job_document(request.job)
        paths = convert.update_paths(request.job, list(request.update_mask.paths))
        pre = convert.preconditions(request.job.etag, request)
        job = await self.core.jobs.update(
            request.job.name, doc, paths, pre, request.allow_missing, request.request_id
        )
        return convert.job_to_proto(job)

    @guarded
    async def DeleteJob(self, request: pb.DeleteJobRequest, context: Ctx) -> Any:
        pre = convert.preconditions(request.etag, request)
        op = await self.core.jobs.delete(
            request.name, pre, request.force, request.allow_missing, request.request_id
        )
        return convert.operation_to_proto(op)

    @guarded
    async def DeleteJobs(self, request: pb.DeleteJobsRequest, context: Ctx) -> Any:
        op = await self.core.deletions.delete_jobs(
            request.parent,
            request.filter,
            request.force,
            request.request_id,
            convert.structured_filter(request, filters.JOB_FIELDS),
        )
        return convert.operation_to_proto(op)

    async def _act(self, action: Action, request: Any, **extra: Any) -> resources_pb2.Job:
        pre = convert.preconditions(request.etag, request)
        job = await self.core.actions.act(action, request.name, pre, request.request_id, **extra)
        return convert.job_to_proto(job)

    @guarded
    async def PauseJob(self, request: pb.PauseJobRequest, context: Ctx) -> Any:
        disposition = _DISPOSITION.get(request.disable_tasks)
        if disposition is None:
            convert.enum_name(pb.TaskDisposition, request.disable_tasks, "disable_tasks")
        return await self._act(
            Action.PAUSE, request, disposition=disposition or TaskDisposition.REQUEUE
        )

    @guarded
    async def ResumeJob(self, request: pb.ResumeJobRequest, context: Ctx) -> Any:
        return await self._act(Action.RESUME, request)

    @guarded
    async def ToggleJob(self, request: pb.ToggleJobRequest, context: Ctx) -> Any:
        return await self._act(Action.TOGGLE, request)

    @guarded
    async def TerminateJob(self, request: pb.TerminateJobRequest, context: Ctx) -> Any:
        return await self._act(Action.TERMINATE, request, reason=request.reason)

    @guarded
    async def StartJob(self, request: pb.StartJobRequest, context: Ctx) -> Any:
        return await self._act(Action.START, request)

    @guarded
    async def StopJob(self, request: pb.StopJobRequest, context: Ctx) -> Any:
        return await self._act(Action.STOP, request)

    @guarded
    async def RetryJob(self, request: pb.RetryJobRequest, context: Ctx) -> Any:
        return await self._act(Action.RETRY, request)

    @guarded
    async def ListJobHistory(self, request: pb.ListJobHistoryRequest, context: Ctx) -> Any:
        page = await self.core.history.list_page(
            request.parent,
            request.page_size,
            request.page_token,
            request.filter,
            request.skip,
            convert.structured_filter(request, filters.HISTORY_FIELDS),
        )
        return pb.ListJobHistoryResponse(
            entries=[convert.history_to_proto(e) for e in page.entries],
            next_page_token=page.next_page_token,
        )

    # tasks -------------------------------------------------------------------------

    @guarded
    async def CreateTask(self, request: pb.CreateTaskRequest, context: Ctx) -> Any:
        task = convert.task_from_proto(request.task)
        created = await self.core.tasks.create(
            request.parent, request.task_id, task, request.request_id
        )
        return convert.task_to_proto(created)

    @guarded
    async def GetTask(self, request: pb.GetTaskRequest, context: Ctx) -> Any:
        return convert.task_to_proto(await self.core.tasks.get(request.name))

    @guarded
    async def ListTasks(self, request: pb.ListTasksRequest, context: Ctx) -> Any:
        page = await self.core.tasks.list_page(
            request.parent,
            request.page_size,
            request.page_token,
            request.filter,
            convert.structured_filter(request, filters.TASK_FIELDS),
        )
        return pb.ListTasksResponse(
            tasks=[convert.task_to_proto(t) for t in page.tasks],
            next_page_token=page.next_page_token,
        )

    @guarded
    async def CountTasks(self, request: pb.CountTasksRequest, context: Ctx) -> Any:
        return convert.task_counts_to_proto(await self.core.tasks.count(request.parent))


def _with_profile(collection: resources_pb2.Collection) -> resources_pb2.Collection:
    """A copy with some profile set, so conversion of a partial update does not refuse
    the (immutable, usually omitted) profile."""
    copy = resources_pb2.Collection()
    copy.CopyFrom(collection)
    if not copy.profile:
        copy.profile = resources_pb2.SCHEDULED
    return copy
