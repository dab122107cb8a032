"""Azure Batch job and task JSON <-> jobcontrol.v1, and OData $filter -> AIP-160."""

from __future__ import annotations

import re
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from jobcontrol.gateway.dialects.scheduler_json import _duration, format_time

__all__ = ["etag_in", "etag_out", "format_time", "job_json", "odata_filter", "task_json", "to_spec"]
from jobcontrol.gateway.errors import bad_request
from jobcontrol.v1 import resources_pb2 as r

STATES = {
    r.ACTIVE: "active",
    r.DISABLING: "disabling",
    r.DISABLED: "disabled",
    r.ENABLING: "enabling",
    r.TERMINATING: "terminating",
    r.COMPLETED: "completed",
    r.DELETING: "deleting",
}
ALL_TASKS = {r.BatchSpec.NO_ACTION: "noaction", r.BatchSpec.TERMINATE_JOB: "terminatejob"}
TASK_FAILURE = {
    r.BatchSpec.TASK_FAILURE_NO_ACTION: "noaction",
    r.BatchSpec.PERFORM_EXIT_OPTIONS_JOB_ACTION: "performexitoptionsjobaction",
}
TASK_STATES = {r.Task.ACTIVE: "active", r.Task.RUNNING: "running", r.Task.COMPLETED: "completed"}
# updatable members of a job (PATCH merges them, PUT replaces them)
UPDATABLE = {
    "priority": "batch.priority",
    "maxParallelTasks": "batch.max_parallel_tasks",
    "allowTaskPreemption": "batch.allow_task_preemption",
    "constraints": "batch.constraints",
    "poolInfo": "batch.pool_info",
    "onAllTasksComplete": "batch.on_all_tasks_complete",
    "metadata": "batch.metadata",
}
CREATE_ONLY = {"id", "displayName", "onTaskFailure", "usesTaskDependencies",
               "jobManagerTask", "jobPreparationTask", "jobReleaseTask",
               "commonEnvironmentSettings", "networkConfiguration"}  # fmt: skip


def _bad(path: str, why: str, reason: str = "INVALID_BODY") -> Exception:
    return bad_request(reason, f"{path}: {why}", field=path)


def _pick(table: dict[Any, str], value: Any, path: str) -> Any:
    for number, word in table.items():
        if isinstance(value, str) and word == value.lower():
            return number
    raise _bad(path, f"unknown value {value!r}")


def iso_duration(duration: duration_pb2.Duration) -> str:
    """An ISO 8601 duration (`PT1H30M`)."""
    total = int(duration.ToTimedelta().total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "P" + (f"{days}D" if days else "") + "T"
    text += (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{seconds}S" if seconds or text.endswith("T") else "")


def to_spec(body: dict[str, Any], spec: r.BatchSpec, keys: set[str]) -> None:
    """Fill a BatchSpec from the members of `keys` present in `body`."""
    if "priority" in keys and "priority" in body:
        spec.priority = _int(body["priority"], "priority")
    if "maxParallelTasks" in keys and "maxParallelTasks" in body:
        spec.max_parallel_tasks = _int(body["maxParallelTasks"], "maxParallelTasks")
    if "allowTaskPreemption" in keys and "allowTaskPreemption" in body:
        if not isinstance(body["allowTaskPreemption"], bool):
            raise _bad("allowTaskPreemption", "must be a boolean")
        spec.allow_task_preemption = body["allowTaskPreemption"]
    if "constraints" in keys and body.get("constraints") is not None:
        c = _obj(body["constraints"], "constraints")
        spec.constraints.SetInParent()
        if "maxWallClockTime" in c:
            spec.constraints.max_wall_clock_time.CopyFrom(
                _duration(c["maxWallClockTime"], "constraints.maxWallClockTime")
            )
        if "maxTaskRetryCount" in c:
            spec.constraints.max_task_retry_count = _int(
                c["maxTaskRetryCount"], "maxTaskRetryCount"
            )
    if "poolInfo" in keys and body.get("poolInfo") is not None:
        pool = _obj(body["poolInfo"], "poolInfo")
        spec.pool_info.SetInParent()
        if "poolId" in pool:
            spec.pool_info.pool_id = str(pool["poolId"])
        if isinstance(pool.get("autoPoolSpecification"), dict):
            auto = struct_pb2.Struct()
            auto.update(pool["autoPoolSpecification"])
            spec.pool_info.auto_pool_specification.CopyFrom(auto)
    if "onAllTasksComplete" in keys and "onAllTasksComplete" in body:
        spec.on_all_tasks_complete = _pick(
            ALL_TASKS, body["onAllTasksComplete"], "onAllTasksComplete"
        )
    if "onTaskFailure" in keys and "onTaskFailure" in body:
        spec.on_task_failure = _pick(TASK_FAILURE, body["onTaskFailure"], "onTaskFailure")
    if "metadata" in keys and body.get("metadata") is not None:
        if not isinstance(body["metadata"], list):
            raise _bad("metadata", "must be an array")
        for item in body["metadata"]:
            pair = _obj(item, "metadata[]")
            spec.metadata.add(name=str(pair.get("name", "")), value=str(pair.get("value", "")))


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "must be an object")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, "must be an integer")
    return value


def etag_out(etag: str) -> str:
    """Batch-style entity tag for a jobcontrol etag."""
    return f"0x{etag.upper()}"


def etag_in(value: str) -> str:
    """A jobcontrol etag from a Batch-style entity tag (quotes and 0x optional)."""
    value = value.strip().strip('"')
    return value[2:].lower() if value[:2].lower() == "0x" else value.lower()


def job_json(job: r.Job, base: str) -> dict[str, Any]:
    """A BatchJob."""
    job_id = job.name.rsplit("/", 1)[-1]
    spec = job.batch
    out: dict[str, Any] = {"id": job_id}
    if job.display_name:
        out["displayName"] = job.display_name
    out.update(
        {
            "url": f"{base}/jobs/{job_id}",
            "eTag": etag_out(job.etag),
            "lastModified": format_time(job.update_time),
            "creationTime": format_time(job.create_time),
            "state": STATES.get(job.state, "active"),
            "stateTransitionTime": format_time(job.state_transition_time),
        }
    )
    if job.previous_state:
        out["previousState"] = STATES.get(job.previous_state, "active")
        out["previousStateTransitionTime"] = format_time(job.previous_state_transition_time)
    out["priority"] = spec.priority if spec.HasField("priority") else 0
    out["maxParallelTasks"] = spec.max_parallel_tasks if spec.HasField("max_parallel_tasks") else -1
    out["allowTaskPreemption"] = spec.allow_task_preemption
    constraints: dict[str, Any] = {"maxTaskRetryCount": spec.constraints.max_task_retry_count}
    if spec.constraints.HasField("max_wall_clock_time"):
        constraints["maxWallClockTime"] = iso_duration(spec.constraints.max_wall_clock_time)
    out["constraints"] = constraints
    pool: dict[str, Any] = {}
    if spec.pool_info.pool_id:
        pool["poolId"] = spec.pool_info.pool_id
    if spec.pool_info.HasField("auto_pool_specification"):
        from google.protobuf import json_format

        pool["autoPoolSpecification"] = json_format.MessageToDict(
            spec.pool_info.auto_pool_specification
        )
    out["poolInfo"] = pool
    out["onAllTasksComplete"] = ALL_TASKS.get(spec.on_all_tasks_complete, "noaction")
    out["onTaskFailure"] = TASK_FAILURE.get(spec.on_task_failure, "noaction")
    if spec.metadata:
        out["metadata"] = [{"name": m.name, "value": m.value} for m in spec.metadata]
    info: dict[str, Any] = {"startTime": format_time(job.create_time)}
    if spec.pool_info.pool_id:
        info["poolId"] = spec.pool_info.pool_id
    if spec.execution_info.terminate_reason:
        info["terminateReason"] = spec.execution_info.terminate_reason
    if job.state == r.COMPLETED:
        info["endTime"] = format_time(job.state_transition_time)
    out["executionInfo"] = info
    return out


def task_json(task: r.Task, base: str, job_id: str) -> dict[str, Any]:
    """A BatchTask."""
    task_id = task.name.rsplit("/", 1)[-1]
    out: dict[str, Any] = {"id": task_id}
    if task.display_name:
        out["displayName"] = task.display_name
    out.update(
        {
            "url": f"{base}/jobs/{job_id}/tasks/{task_id}",
            "eTag": etag_out(task.etag),
            "creationTime": format_time(task.create_time),
            "lastModified": format_time(task.update_time),
            "state": TASK_STATES.get(task.state, "active"),
            "stateTransitionTime": format_time(task.state_transition_time),
            "commandLine": task.command_line,
        }
    )
    if task.state == r.Task.COMPLETED:
        out["executionInfo"] = {
            "result": "success" if task.result == r.Task.SUCCESS else "failure",
            "retryCount": 0,
            "requeueCount": 0,
        }
    return out


_FIELDS = {
    "id": "id",
    "state": "state",
    "previousstate": "previous_state",
    "displayname": "display_name",
    "creationtime": "create_time",
    "lastmodified": "update_time",
    "statetransitiontime": "state_transition_time",
}
_OPS = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_TOKEN = re.compile(
    r"\s*(?:(?P<p>[()])|(?P<s>'(?:[^']|'')*')|(?P<d>datetime'[^']*')|(?P<w>[A-Za-z0-9_.:+-]+))"
)


def odata_filter(text: str) -> str:
    """Translate the OData $filter subset Batch supports for jobs (eq/ne/gt/ge/lt/le,
    and/or/not, parentheses) into the core's AIP-160 filter."""
    out: list[str] = []
    pos = 0
    expect_value_for: str | None = None
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            raise bad_request("INVALID_QUERY", f"$filter: unexpected {text[pos : pos + 20]!r}")
        pos = m.end()
        if m.group("p"):
            out.append(m.group("p"))
        elif m.group("d") or m.group("s"):
            raw = m.group("d") or m.group("s")
            value = raw[raw.index("'") + 1 : -1].replace("''", "'")
            if expect_value_for == "state" or expect_value_for == "previous_state":
                value = value.upper()
            out.append(
                f'"{value}"' if expect_value_for not in ("state", "previous_state") else value
            )
            expect_value_for = None
        else:
            word = m.group("w")
            low = word.lower()
            if low in ("and", "or", "not"):
                out.append(low.upper())
            elif low in _OPS:
                out.append(_OPS[low])
            elif low in _FIELDS:
                expect_value_for = _FIELDS[low]
                out.append(_FIELDS[low])
            elif expect_value_for:
                out.append(f'"{word}"')
                expect_value_for = None
            else:
                raise bad_request("INVALID_QUERY", f"$filter: unsupported term {word!r}")
    return " ".join(out)
