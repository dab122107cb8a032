"""The Batch dialect's row functions: pure builds of the one request, renders of its reply."""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime
from typing import Any

import grpc
import orjson
from google.protobuf import field_mask_pb2, timestamp_pb2

from jobcontrol.gateway import conditional
from jobcontrol.gateway.dialects import batch_codec as codec
from jobcontrol.gateway.dialects import batch_query as query
from jobcontrol.gateway.dialects.batch_filter import JOB_FIELDS, TASK_FIELDS, decode_filter
from jobcontrol.gateway.dialects.batch_values import bad_member, check_members, etag_in, etag_out
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error
from jobcontrol.gateway.http import Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

JSON = "application/json;odata=minimalmetadata"
DISPOSITIONS = {"requeue": pb.REQUEUE, "terminate": pb.TERMINATE, "wait": pb.WAIT}


def collection_id(account: str) -> str:
    """The jobcontrol collection of a Batch account."""
    return f"batch-{account.lower()}"


def _parent(incoming: Incoming) -> str:
    return f"collections/{collection_id(incoming.state['account'])}"


def _job_name(incoming: Incoming) -> str:
    return f"{_parent(incoming)}/jobs/{incoming.params['job']}"


def _params(incoming: Incoming) -> dict[str, str]:
    return incoming.query_map(lower=True)


def _body(incoming: Incoming) -> dict[str, Any]:
    """The body as a JSON object; else 400 InvalidRequestBody with the reason."""
    try:
        return incoming.json()
    except GatewayError as error:
        raise bad_request(error.reason, error.message, Reason=error.message) from None


def _entity(response: Response, etag: str, modified: timestamp_pb2.Timestamp, url: str) -> Response:
    """ETag, Last-Modified and DataServiceId, from the call's own reply."""
    response.header("etag", etag_out(etag))
    when = modified.ToDatetime(tzinfo=UTC)
    response.header("last-modified", format_datetime(when, usegmt=True))
    return response.header("dataserviceid", url)


def _job_url(incoming: Incoming, job: r.Job) -> str:
    return f"{incoming.base_url()}/jobs/{job.name.rsplit('/', 1)[-1]}"


def render_written(incoming: Incoming, job: r.Job) -> Response:
    """An empty success (the row's status) with the written job's entity headers."""
    return _entity(Response(incoming.status, b"", None), job.etag, job.update_time,
                   _job_url(incoming, job))  # fmt: skip


def render_empty(incoming: Incoming, reply: Any) -> Response:
    """An empty success without entity headers (Delete)."""
    return Response(incoming.status, b"", None)


def build_add_job(incoming: Incoming) -> pb.CreateJobRequest:
    """CreateJob, creating the account's collection on its first job (same transaction)."""
    job_id, job = codec.decode_job(_body(incoming))
    account = incoming.state["account"]
    template = r.Collection(profile=r.BATCH, labels={"dialect": "batch", "account": account})
    return pb.CreateJobRequest(
        parent=_parent(incoming), job_id=job_id, job=job, collection_template=template
    )


def _read_options(incoming: Incoming, members: frozenset[str], expands: bool) -> None:
    """Query and header checks of a read, before its call (bad ones cost no call)."""
    params = _params(incoming)
    query.decode_select(params, members)
    if expands:
        query.decode_expand(params)
    incoming.conditions()


def build_get_job(incoming: Incoming) -> pb.GetJobRequest:
    """GetJob ($select, $expand and the If-* headers checked first)."""
    _read_options(incoming, query.JOB_MEMBERS, expands=True)
    return pb.GetJobRequest(name=_job_name(incoming), view=_view(incoming))


def _view(incoming: Incoming) -> pb.JobView.ValueType:
    """FULL (the core's task statistics) only when `$expand=stats` asks for them."""
    return pb.JOB_VIEW_FULL if query.decode_expand(_params(incoming)) else pb.JOB_VIEW_BASIC


def _job_json(incoming: Incoming, job: r.Job, stats: bool) -> dict[str, Any]:
    body = codec.encode_job(job, incoming.base_url())
    if stats:
        body["stats"] = codec.encode_stats(job, body["url"])
    return body


def _read_verdict(incoming: Incoming, etag: str, modified: timestamp_pb2.Timestamp) -> bool:
    """Whether an unmet If-* header makes a read 304 (True); 412 raises."""
    verdict = incoming.read_outcome(etag, modified.ToDatetime(tzinfo=UTC), etag_in)
    if verdict is conditional.Outcome.PRECONDITION_FAILED:
        raise gateway_error(grpc.StatusCode.ABORTED, "CONDITION_NOT_MET", "condition not met")
    return verdict is conditional.Outcome.NOT_MODIFIED


def render_job(incoming: Incoming, job: r.Job) -> Response:
    """The BatchJob as read (304 / 412 by the If-* headers)."""
    url = _job_url(incoming, job)
    if _read_verdict(incoming, job.etag, job.update_time):
        return _entity(Response(304, b"", None), job.etag, job.update_time, url)
    params = _params(incoming)
    body = {"odata.metadata": f"{incoming.base_url()}/$metadata#jobs/@Element"}
    body.update(_job_json(incoming, job, query.decode_expand(params)))
    body = query.project(body, query.decode_select(params, query.JOB_MEMBERS))
    return _entity(Response(200, orjson.dumps(body), JSON), job.etag, job.update_time, url)


def build_list_jobs(incoming: Incoming) -> pb.ListJobsRequest:
    """ListJobs: a missing collection lists as empty; `$filter` as a structured filter."""
    _read_options(incoming, query.JOB_MEMBERS, expands=True)
    params = _params(incoming)
    request = pb.ListJobsRequest(
        parent=_parent(incoming),
        page_size=query.decode_page_size(params),
        page_token=params.get("$skiptoken", ""),
        allow_missing=True,
        view=_view(incoming),
    )
    found = decode_filter(params.get("$filter", ""), JOB_FIELDS)
    if found is not None:
        request.structured_filter.CopyFrom(found)
    return request


def _page(incoming: Incoming, kind: str, value: list[Any], token: str) -> Response:
    base = incoming.base_url()
    body: dict[str, Any] = {"odata.metadata": f"{base}/$metadata#{kind}", "value": value}
    if token:
        url = base + incoming.request.path
        body["odata.nextLink"] = query.encode_next_link(url, incoming.query(), token)
    return Response(200, orjson.dumps(body), JSON)


def render_job_list(incoming: Incoming, reply: pb.ListJobsResponse) -> Response:
    """A page of BatchJobs with odata.nextLink."""
    params = _params(incoming)
    select, stats = query.decode_select(params, query.JOB_MEMBERS), query.decode_expand(params)
    value = [query.project(_job_json(incoming, j, stats), select) for j in reply.jobs]
    return _page(incoming, "jobs", value, reply.next_page_token)


def _update(incoming: Incoming, spec: r.BatchSpec, paths: list[str]) -> pb.UpdateJobRequest:
    job = r.Job(name=_job_name(incoming))
    request = pb.UpdateJobRequest(job=job)
    # no members: an update of nothing, which the core still checks (conditions, states)
    if paths:
        request.job.batch.CopyFrom(spec)
        request.update_mask.CopyFrom(field_mask_pb2.FieldMask(paths=paths))
    return incoming.condition(request, etag_in)


def build_patch_job(incoming: Incoming) -> pb.UpdateJobRequest:
    """UpdateJob of the members present (merge)."""
    return _update(incoming, *codec.decode_job_update(_body(incoming), replace=False))


def build_replace_job(incoming: Incoming) -> pb.UpdateJobRequest:
    """UpdateJob of every writable member (absent ones reset)."""
    return _update(incoming, *codec.decode_job_update(_body(incoming), replace=True))


def build_disable_job(incoming: Incoming) -> pb.PauseJobRequest:
    """PauseJob with the task disposition (requeue when absent)."""
    body = _body(incoming)
    check_members(body, ("disableTasks",), "BatchJobDisableOptions")
    word = body.get("disableTasks", "requeue")
    if not isinstance(word, str) or word.lower() not in DISPOSITIONS:
        raise bad_member(
            "disableTasks", f"unknown value {word!r} (one of requeue, terminate, wait)"
        )
    request = pb.PauseJobRequest(name=_job_name(incoming), disable_tasks=DISPOSITIONS[word.lower()])
    return incoming.condition(request, etag_in)


def build_enable_job(incoming: Incoming) -> pb.ResumeJobRequest:
    """ResumeJob."""
    return incoming.condition(pb.ResumeJobRequest(name=_job_name(incoming)), etag_in)


def build_terminate_job(incoming: Incoming) -> pb.TerminateJobRequest:
    """TerminateJob with the reason (UserTerminate when absent)."""
    body = _body(incoming)
    check_members(body, ("terminateReason",), "BatchJobTerminateOptions")
    reason = body.get("terminateReason")
    if reason is not None and not isinstance(reason, str):
        raise bad_member("terminateReason", "must be a string")
    request = pb.TerminateJobRequest(name=_job_name(incoming), reason=reason or "UserTerminate")
    return incoming.condition(request, etag_in)


def build_delete_job(incoming: Incoming) -> pb.DeleteJobRequest:
    """DeleteJob (`force`); the job shows deleting until the core purges it."""
    force = query.decode_force(_params(incoming))
    return incoming.condition(pb.DeleteJobRequest(name=_job_name(incoming), force=force), etag_in)


# --- tasks ---------------------------------------------------------------------------------


def _task_url(incoming: Incoming, task: r.Task) -> str:
    task_id = task.name.rsplit("/", 1)[-1]
    return f"{incoming.base_url()}/jobs/{incoming.params['job']}/tasks/{task_id}"


def build_add_task(incoming: Incoming) -> pb.CreateTaskRequest:
    """CreateTask; the members beyond id, displayName and commandLine are kept whole."""
    task_id, task = codec.decode_task(_body(incoming))
    return pb.CreateTaskRequest(parent=_job_name(incoming), task_id=task_id, task=task)


def render_task_created(incoming: Incoming, task: r.Task) -> Response:
    """201 with the task's entity headers."""
    response = Response(201, b"", None)
    return _entity(response, task.etag, task.update_time, _task_url(incoming, task))


def build_list_tasks(incoming: Incoming) -> pb.ListTasksRequest:
    """ListTasks, one page (`maxresults`, `$skiptoken`) with `$filter` structured."""
    _read_options(incoming, query.TASK_MEMBERS, expands=False)
    params = _params(incoming)
    request = pb.ListTasksRequest(
        parent=_job_name(incoming),
        page_size=query.decode_page_size(params),
        page_token=params.get("$skiptoken", ""),
    )
    found = decode_filter(params.get("$filter", ""), TASK_FIELDS)
    if found is not None:
        request.structured_filter.CopyFrom(found)
    return request


def render_task_list(incoming: Incoming, reply: pb.ListTasksResponse) -> Response:
    """A page of BatchTasks with odata.nextLink."""
    select = query.decode_select(_params(incoming), query.TASK_MEMBERS)
    base, job_id = incoming.base_url(), incoming.params["job"]
    value = [query.project(codec.encode_task(t, base, job_id), select) for t in reply.tasks]
    return _page(incoming, "tasks", value, reply.next_page_token)


def build_get_task(incoming: Incoming) -> pb.GetTaskRequest:
    """GetTask ($select and the If-* headers checked first)."""
    _read_options(incoming, query.TASK_MEMBERS, expands=False)
    return pb.GetTaskRequest(name=f"{_job_name(incoming)}/tasks/{incoming.params['task']}")


def render_task(incoming: Incoming, task: r.Task) -> Response:
    """The BatchTask as read (304 / 412 by the If-* headers)."""
    url = _task_url(incoming, task)
    if _read_verdict(incoming, task.etag, task.update_time):
        return _entity(Response(304, b"", None), task.etag, task.update_time, url)
    body = {"odata.metadata": f"{incoming.base_url()}/$metadata#tasks/@Element"}
    body.update(codec.encode_task(task, incoming.base_url(), incoming.params["job"]))
    body = query.project(body, query.decode_select(_params(incoming), query.TASK_MEMBERS))
    return _entity(Response(200, orjson.dumps(body), JSON), task.etag, task.update_time, url)


def build_count_tasks(incoming: Incoming) -> pb.CountTasksRequest:
    """CountTasks."""
    return pb.CountTasksRequest(parent=_job_name(incoming))


def render_task_counts(incoming: Incoming, counts: r.TaskCounts) -> Response:
    """BatchTaskCountsResult."""
    body = {"odata.metadata": f"{incoming.base_url()}/$metadata#taskcounts/@Element"}
    body.update(codec.encode_task_counts(counts))
    return Response(200, orjson.dumps(body), JSON)
