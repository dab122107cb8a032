"""Azure Batch job and task JSON <-> jobcontrol.v1 messages, as pure functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf import struct_pb2

from jobcontrol.gateway.dialects.batch_values import (
    bad_member,
    check_kept,
    check_members,
    decode_bool,
    decode_duration,
    decode_int,
    decode_object,
    decode_str,
    decode_struct,
    decode_word,
    encode_duration,
    encode_struct,
    encode_time,
    etag_out,
)
from jobcontrol.gateway.errors import bad_request
from jobcontrol.v1 import resources_pb2 as r

__all__ = [
    "CREATE_MEMBERS", "PATCH_PATHS", "READ_ONLY", "REPLACE_PATHS", "TASK_MEMBERS",
    "decode_job", "decode_job_update", "decode_task", "encode_job", "encode_stats",
    "encode_task", "encode_task_counts",
]  # fmt: skip

STATES = {
    r.ACTIVE: "active", r.DISABLING: "disabling", r.DISABLED: "disabled",
    r.ENABLING: "enabling", r.TERMINATING: "terminating", r.COMPLETED: "completed",
    r.DELETING: "deleting",
}  # fmt: skip
ALL_TASKS = {r.BatchSpec.NO_ACTION: "noaction", r.BatchSpec.TERMINATE_JOB: "terminatejob"}
TASK_FAILURE = {
    r.BatchSpec.TASK_FAILURE_NO_ACTION: "noaction",
    r.BatchSpec.PERFORM_EXIT_OPTIONS_JOB_ACTION: "performexitoptionsjobaction",
}
TASK_STATES = {r.Task.ACTIVE: "active", r.Task.RUNNING: "running", r.Task.COMPLETED: "completed"}
# BatchJob's writable members, and the mask path of each: a replace (PUT) sets them all
REPLACE_PATHS = {
    "priority": "batch.priority",
    "maxParallelTasks": "batch.max_parallel_tasks",
    "allowTaskPreemption": "batch.allow_task_preemption",
    "constraints": "batch.constraints",
    "poolInfo": "batch.pool_info",
    "onAllTasksComplete": "batch.on_all_tasks_complete",
    "metadata": "batch.metadata",
}
# BatchJobUpdateOptions (PATCH) also carries the network configuration
PATCH_PATHS = {**REPLACE_PATHS, "networkConfiguration": "batch.network_configuration"}
CREATE_MEMBERS = frozenset({
    "id", "displayName", *PATCH_PATHS, "onTaskFailure", "usesTaskDependencies",
    "jobManagerTask", "jobPreparationTask", "jobReleaseTask", "commonEnvironmentSettings",
})  # fmt: skip
# BatchJob's read-only members: a replace may carry them (a job as read) and they are ignored
READ_ONLY = frozenset({
    "id", "displayName", "usesTaskDependencies", "url", "eTag", "lastModified",
    "creationTime", "state", "stateTransitionTime", "previousState",
    "previousStateTransitionTime", "jobManagerTask", "jobPreparationTask", "jobReleaseTask",
    "commonEnvironmentSettings", "onTaskFailure", "networkConfiguration", "executionInfo",
    "stats", "odata.metadata",
})  # fmt: skip
# BatchTaskCreateOptions members kept whole in Task.properties
TASK_MEMBERS = frozenset({
    "exitConditions", "containerSettings", "resourceFiles", "outputFiles",
    "environmentSettings", "affinityInfo", "constraints", "requiredSlots", "userIdentity",
    "multiInstanceSettings", "dependsOn", "applicationPackageReferences",
})  # fmt: skip
# --- job members -> BatchSpec --------------------------------------------------------------


def _constraints(spec: r.BatchSpec, value: Any, path: str) -> None:
    given = decode_object(value, path)
    check_members(given, ("maxWallClockTime", "maxTaskRetryCount"), "BatchJobConstraints")
    spec.constraints.SetInParent()
    if given.get("maxWallClockTime") is not None:
        limit = decode_duration(given["maxWallClockTime"], f"{path}.maxWallClockTime")
        if limit is not None:
            spec.constraints.max_wall_clock_time.CopyFrom(limit)
    if given.get("maxTaskRetryCount") is not None:
        count = decode_int(given["maxTaskRetryCount"], f"{path}.maxTaskRetryCount")
        spec.constraints.max_task_retry_count = count


def _pool(spec: r.BatchSpec, value: Any, path: str) -> None:
    given = decode_object(value, path)
    check_members(given, ("poolId", "autoPoolSpecification"), "BatchPoolInfo")
    spec.pool_info.SetInParent()
    if given.get("poolId") is not None:
        spec.pool_info.pool_id = decode_str(given["poolId"], f"{path}.poolId")
    if given.get("autoPoolSpecification") is not None:
        auto = decode_struct(given["autoPoolSpecification"], f"{path}.autoPoolSpecification")
        spec.pool_info.auto_pool_specification.CopyFrom(auto)


def _pairs(value: Any, path: str) -> list[tuple[str, str]]:
    """`[{name, value}]` (metadata, environment settings)."""
    if not isinstance(value, list):
        raise bad_member(path, "must be an array")
    out = []
    for i, item in enumerate(value):
        pair = decode_object(item, f"{path}[{i}]")
        check_members(pair, ("name", "value"), "a name/value pair")
        name = decode_str(pair.get("name"), f"{path}[{i}].name")
        given = pair.get("value")
        out.append((name, "" if given is None else decode_str(given, f"{path}[{i}].value")))
    return out


def _set(field: str, convert: Callable[[Any, str], Any]) -> Callable[[r.BatchSpec, Any, str], None]:
    def setter(spec: r.BatchSpec, value: Any, path: str) -> None:
        converted = convert(value, path)
        if isinstance(converted, struct_pb2.Struct):
            getattr(spec, field).CopyFrom(converted)
        else:
            setattr(spec, field, converted)

    return setter


def _metadata(spec: r.BatchSpec, value: Any, path: str) -> None:
    spec.metadata.extend(r.MetadataItem(name=n, value=v) for n, v in _pairs(value, path))


def _environment(spec: r.BatchSpec, value: Any, path: str) -> None:
    pairs = _pairs(value, path)
    spec.common_environment_settings.extend(r.EnvironmentSetting(name=n, value=v) for n, v in pairs)


SETTERS: dict[str, Callable[[r.BatchSpec, Any, str], None]] = {
    "priority": _set("priority", decode_int),
    "maxParallelTasks": _set("max_parallel_tasks", decode_int),
    "allowTaskPreemption": _set("allow_task_preemption", decode_bool),
    "constraints": _constraints,
    "poolInfo": _pool,
    "onAllTasksComplete": _set("on_all_tasks_complete", lambda v, p: decode_word(ALL_TASKS, v, p)),
    "onTaskFailure": _set("on_task_failure", lambda v, p: decode_word(TASK_FAILURE, v, p)),
    "metadata": _metadata,
    "usesTaskDependencies": _set("uses_task_dependencies", decode_bool),
    "jobManagerTask": _set("job_manager_task", decode_struct),
    "jobPreparationTask": _set("job_preparation_task", decode_struct),
    "jobReleaseTask": _set("job_release_task", decode_struct),
    "commonEnvironmentSettings": _environment,
    "networkConfiguration": _set("network_configuration", decode_struct),
}


def _spec(body: dict[str, Any]) -> r.BatchSpec:
    spec = r.BatchSpec()
    for key, value in body.items():
        if key in SETTERS and value is not None:  # null: as if absent
            SETTERS[key](spec, value, key)
    return spec


def decode_job(body: dict[str, Any]) -> tuple[str, r.Job]:
    """A BatchJobCreateOptions body as (job id, Job); an unknown member or a missing id
    is 400. Required members beyond the id and value ranges are the core's rules."""
    check_members(body, CREATE_MEMBERS, "BatchJobCreateOptions")
    job_id = body.get("id")
    if not isinstance(job_id, str) or not job_id:
        raise bad_request("REQUIRED_FIELD_MISSING", "The property id is required.",
                          PropertyName="id")  # fmt: skip
    display = body.get("displayName")
    job = r.Job(display_name="" if display is None else decode_str(display, "displayName"))
    job.batch.CopyFrom(_spec(body))
    return job_id, job


def decode_job_update(body: dict[str, Any], replace: bool) -> tuple[r.BatchSpec, list[str]]:
    """The spec and mask of a PATCH (the BatchJobUpdateOptions members present) or of a PUT
    (`replace`: every writable BatchJob member, absent ones reset; read-only members, as
    `get_job` returns them, are ignored)."""
    if replace:
        check_members(body, set(REPLACE_PATHS) | READ_ONLY, "BatchJob")
        given = {k: v for k, v in body.items() if k in REPLACE_PATHS}
        return _spec(given), list(REPLACE_PATHS.values())
    check_members(body, PATCH_PATHS, "BatchJobUpdateOptions")
    return _spec(body), [PATCH_PATHS[k] for k, v in body.items() if v is not None]


# --- Job -> BatchJob ------------------------------------------------------------------------


def _id(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _spec_json(spec: r.BatchSpec) -> dict[str, Any]:
    out: dict[str, Any] = {
        "usesTaskDependencies": spec.uses_task_dependencies,
        "priority": spec.priority if spec.HasField("priority") else 0,
        "allowTaskPreemption": spec.allow_task_preemption,
        "maxParallelTasks": spec.max_parallel_tasks if spec.HasField("max_parallel_tasks") else -1,
    }
    constraints: dict[str, Any] = {"maxTaskRetryCount": spec.constraints.max_task_retry_count}
    if spec.constraints.HasField("max_wall_clock_time"):
        constraints["maxWallClockTime"] = encode_duration(spec.constraints.max_wall_clock_time)
    out["constraints"] = constraints
    # the job's own tasks, kept whole as Batch JSON
    kept = (
        ("jobManagerTask", spec.HasField("job_manager_task"), spec.job_manager_task),
        ("jobPreparationTask", spec.HasField("job_preparation_task"), spec.job_preparation_task),
        ("jobReleaseTask", spec.HasField("job_release_task"), spec.job_release_task),
    )
    out.update({key: encode_struct(value) for key, present, value in kept if present})
    if spec.common_environment_settings:
        out["commonEnvironmentSettings"] = [_pair(s) for s in spec.common_environment_settings]
    pool: dict[str, Any] = {}
    if spec.pool_info.pool_id:
        pool["poolId"] = spec.pool_info.pool_id
    if spec.pool_info.HasField("auto_pool_specification"):
        pool["autoPoolSpecification"] = encode_struct(spec.pool_info.auto_pool_specification)
    out["poolInfo"] = pool
    out["onAllTasksComplete"] = ALL_TASKS.get(spec.on_all_tasks_complete, "noaction")
    out["onTaskFailure"] = TASK_FAILURE.get(spec.on_task_failure, "noaction")
    if spec.HasField("network_configuration"):
        out["networkConfiguration"] = encode_struct(spec.network_configuration)
    if spec.metadata:
        out["metadata"] = [{"name": m.name, "value": m.value} for m in spec.metadata]
    return out


def _pair(setting: r.EnvironmentSetting) -> dict[str, str]:
    return (
        {"name": setting.name, "value": setting.value} if setting.value else {"name": setting.name}
    )


def encode_job(job: r.Job, base: str) -> dict[str, Any]:
    """A BatchJob (`base`: the account URL the client addressed)."""
    job_id = _id(job.name)
    out: dict[str, Any] = {"id": job_id}
    if job.display_name:
        out["displayName"] = job.display_name
    out["url"] = f"{base}/jobs/{job_id}"
    out["eTag"] = etag_out(job.etag)
    out["lastModified"] = encode_time(job.update_time)
    out["creationTime"] = encode_time(job.create_time)
    out["state"] = STATES.get(job.state, "active")
    out["stateTransitionTime"] = encode_time(job.state_transition_time)
    if job.previous_state:
        out["previousState"] = STATES.get(job.previous_state, "active")
        out["previousStateTransitionTime"] = encode_time(job.previous_state_transition_time)
    spec = job.batch
    out.update(_spec_json(spec))
    # execution starts at creation and ends at completion (what the filters assume too)
    info: dict[str, Any] = {"startTime": encode_time(job.create_time)}
    if job.state == r.COMPLETED:
        info["endTime"] = encode_time(job.state_transition_time)
    if spec.pool_info.pool_id:
        info["poolId"] = spec.pool_info.pool_id
    if spec.execution_info.terminate_reason:
        info["terminateReason"] = spec.execution_info.terminate_reason
    out["executionInfo"] = info
    return out


def encode_stats(job: r.Job, url: str) -> dict[str, Any]:
    """BatchJobStatistics: the task figures are the core's (`batch.statistics`, read with
    JOB_VIEW_FULL). No compute runs here, so every usage figure is zero; wallClockTime
    too, as the core keeps no start time of a task's attempts to sum their run time."""
    zero = "PT0S"
    figures = job.batch.statistics
    return {"url": url, "startTime": encode_time(job.create_time),
            "lastUpdateTime": encode_time(job.update_time), "userCPUTime": zero,
            "kernelCPUTime": zero, "wallClockTime": zero, "readIOps": 0, "writeIOps": 0,
            "readIOGiB": 0.0, "writeIOGiB": 0.0,
            "numSucceededTasks": figures.num_succeeded_tasks,
            "numFailedTasks": figures.num_failed_tasks,
            "numTaskRetries": figures.num_task_retries, "waitTime": zero}  # fmt: skip


# --- tasks ---------------------------------------------------------------------------------


def decode_task(body: dict[str, Any]) -> tuple[str, r.Task]:
    """A BatchTaskCreateOptions body as (task id, Task): the members beyond id,
    displayName and commandLine are kept whole in `properties`."""
    check_members(body, TASK_MEMBERS | {"id", "displayName", "commandLine"},
                  "BatchTaskCreateOptions")  # fmt: skip
    task_id = body.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise bad_request("REQUIRED_FIELD_MISSING", "The property id is required.",
                          PropertyName="id")  # fmt: skip
    task = r.Task()
    for key, field in (("displayName", "display_name"), ("commandLine", "command_line")):
        if body.get(key) is not None:
            setattr(task, field, decode_str(body[key], key))
    rest = {k: v for k, v in body.items() if k in TASK_MEMBERS and v is not None}
    for key, value in rest.items():
        check_kept(value, key)
    if rest:
        task.properties.update(rest)
    return task_id, task


def encode_task(task: r.Task, base: str, job_id: str) -> dict[str, Any]:
    """A BatchTask (the job id as the client addressed it)."""
    task_id = _id(task.name)
    out: dict[str, Any] = {"id": task_id}
    if task.display_name:
        out["displayName"] = task.display_name
    out["url"] = f"{base}/jobs/{job_id}/tasks/{task_id}"
    out["eTag"] = etag_out(task.etag)
    out["creationTime"] = encode_time(task.create_time)
    out["lastModified"] = encode_time(task.update_time)
    out["state"] = TASK_STATES.get(task.state, "active")
    out["stateTransitionTime"] = encode_time(task.state_transition_time)
    out["commandLine"] = task.command_line
    if task.HasField("properties"):
        out.update(encode_struct(task.properties))
    if task.state == r.Task.COMPLETED:
        result = "success" if task.result == r.Task.SUCCESS else "failure"
        info = {"result": result, "retryCount": task.retry_count, "requeueCount": 0}
        if task.HasField("exit_code"):
            info["exitCode"] = task.exit_code
        out["executionInfo"] = info
    return out


def encode_task_counts(counts: r.TaskCounts) -> dict[str, Any]:
    """BatchTaskCounts; each task takes one slot, so the slot counts are the same."""
    out = {"active": counts.active, "running": counts.running, "completed": counts.completed,
           "succeeded": counts.succeeded, "failed": counts.failed}  # fmt: skip
    return {"taskCounts": out, "taskSlotCounts": dict(out)}
