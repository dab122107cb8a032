"""Azure Scheduler job JSON (seed 003) <-> jobcontrol.v1 messages, as pure functions."""

from __future__ import annotations

from typing import Any

from jobcontrol.gateway.dialects import scheduler_values as v

# re-exported: the Batch codec shares the Scheduler's times and durations
from jobcontrol.gateway.dialects.scheduler_values import decode_duration, encode_time
from jobcontrol.v1 import resources_pb2 as r

__all__ = [
    "decode_duration", "decode_job", "decode_update_mask", "encode_history", "encode_job",
    "encode_time",
]  # fmt: skip

# each table is one mapping, read both ways: the JSON word <-> the proto enum value
ACTION_TYPES = {
    "http": r.JobAction.HTTP, "https": r.JobAction.HTTPS,
    "storageQueue": r.JobAction.STORAGE_QUEUE, "serviceBusQueue": r.JobAction.SERVICE_BUS_QUEUE,
    "serviceBusTopic": r.JobAction.SERVICE_BUS_TOPIC,
}  # fmt: skip
RETRY_TYPES = {"none": r.RetryPolicy.NONE, "fixed": r.RetryPolicy.FIXED}
FREQUENCIES = {
    "minute": r.Recurrence.MINUTE, "hour": r.Recurrence.HOUR, "day": r.Recurrence.DAY,
    "week": r.Recurrence.WEEK, "month": r.Recurrence.MONTH,
}  # fmt: skip
DAYS = {name.lower(): value for name, value in r.Schedule.DayOfWeek.items() if value}
STATES = {"enabled": r.ENABLED, "disabled": r.DISABLED, "completed": r.COMPLETED,
          "faulted": r.FAULTED}  # fmt: skip
HISTORY_STATUS = {"completed": r.HistoryEntry.COMPLETED, "failed": r.HistoryEntry.FAILED,
                  "postponed": r.HistoryEntry.POSTPONED}  # fmt: skip
# JSON member -> proto field, for the objects walked member by member
JOB_KEYS = {"id", "startTime", "action", "recurrence", "state", "status"}
ACTION_KEYS = {"type": "type", "request": "request", "retryPolicy": "retry_policy",
               "errorAction": "error_action", "queueMessage": "queue_message"}  # fmt: skip
REQUEST_KEYS = {"uri": "uri", "method": "method", "headers": "headers", "body": "body",
                "authentication": "authentication"}  # fmt: skip
AUTH_KEYS = {"type": "type", "username": "username", "password": "password", "pfx": "pfx",
             "secret": "secret", "tenant": "tenant", "audience": "audience",
             "clientId": "client_id"}  # fmt: skip
RETRY_KEYS = {"retryType": "retry_type", "retryInterval": "retry_interval",
              "retryCount": "retry_count"}  # fmt: skip
QUEUE_KEYS = {"storageAccount": "storage_account", "queueName": "queue_name",
              "sasToken": "sas_token", "message": "message"}  # fmt: skip
RECURRENCE_KEYS = {"frequency": "frequency", "interval": "interval", "count": "count",
                   "endTime": "end_time", "schedule": "schedule"}  # fmt: skip
SCHEDULE_KEYS = {"minutes": "minutes", "hours": "hours", "weekDays": "week_days",
                 "monthDays": "month_days",
                 "monthlyOccurrences": "monthly_occurrences"}  # fmt: skip
# the update-mask path of each top-level member of a PATCH body
_PATHS = {"startTime": "scheduled.start_time", "action": "scheduled.action",
          "recurrence": "scheduled.recurrence", "state": "state", "status": "status"}  # fmt: skip
# members whose objects a PATCH merges member by member (headers are replaced whole)
_NESTED = {"request": REQUEST_KEYS, "retryPolicy": RETRY_KEYS, "queueMessage": QUEUE_KEYS,
           "errorAction": ACTION_KEYS, "schedule": SCHEDULE_KEYS}  # fmt: skip
# --- JSON -> proto ----------------------------------------------------------------------


def decode_job(body: Any) -> r.Job:
    """A Job from the Scheduler JSON (`id` and `status` are not read here: see
    `decode_update_mask`)."""
    data = v.decode_members(v.decode_depth(body), JOB_KEYS, "job")
    job = r.Job()
    job.scheduled.SetInParent()
    if "startTime" in data:
        job.scheduled.start_time.CopyFrom(v.decode_time(data["startTime"], "startTime"))
    if "action" in data:
        _action(data["action"], job.scheduled.action, "action", nested=False)
    if "recurrence" in data:
        _recurrence(data["recurrence"], job.scheduled.recurrence)
    if "state" in data:
        job.state = v.decode_word(STATES, data["state"], "state")
    return job


def _action(value: Any, target: r.JobAction, path: str, nested: bool) -> None:
    # an error action has no error action of its own
    keys = {k: v for k, v in ACTION_KEYS.items() if not (nested and k == "errorAction")}
    data = v.decode_members(value, keys, path)
    if "type" in data:
        target.type = v.decode_word(ACTION_TYPES, data["type"], f"{path}.type")
    if "request" in data:
        _request(data["request"], target.request, f"{path}.request")
    if "retryPolicy" in data:
        _retry(data["retryPolicy"], target.retry_policy, f"{path}.retryPolicy")
    if "queueMessage" in data:
        queue = v.decode_members(data["queueMessage"], QUEUE_KEYS, f"{path}.queueMessage")
        target.queue_message.SetInParent()
        for key, field in QUEUE_KEYS.items():
            if key in queue:
                setattr(target.queue_message, field, v.decode_str(queue[key], f"{path}.{key}"))
    if "errorAction" in data:
        _action(data["errorAction"], target.error_action, f"{path}.errorAction", nested=True)


def _request(value: Any, target: r.HttpRequest, path: str) -> None:
    req = v.decode_members(value, REQUEST_KEYS, path)
    target.SetInParent()
    for key in ("uri", "method", "body"):
        if key in req:
            setattr(target, key, v.decode_str(req[key], f"{path}.{key}"))
    if "headers" in req:
        headers = req["headers"]
        for name, text in v.decode_members(headers, set(headers or {}), f"{path}.headers").items():
            target.headers[name] = v.decode_str(text, f"{path}.headers.{name}")
    if "authentication" in req:
        auth = v.decode_members(req["authentication"], AUTH_KEYS, f"{path}.authentication")
        for key, field in AUTH_KEYS.items():
            if key in auth:
                setattr(target.authentication, field, v.decode_str(auth[key], f"{path}.{key}"))


def _retry(value: Any, target: r.RetryPolicy, path: str) -> None:
    retry = v.decode_members(value, RETRY_KEYS, path)
    target.SetInParent()
    if "retryType" in retry:
        target.retry_type = v.decode_word(RETRY_TYPES, retry["retryType"], f"{path}.retryType")
    if "retryInterval" in retry:
        interval = v.decode_duration(retry["retryInterval"], f"{path}.retryInterval")
        target.retry_interval.CopyFrom(interval)
    if "retryCount" in retry:
        target.retry_count = v.decode_int(retry["retryCount"], f"{path}.retryCount")


def _recurrence(value: Any, target: r.Recurrence) -> None:
    data = v.decode_members(value, RECURRENCE_KEYS, "recurrence")
    target.SetInParent()
    if "frequency" in data:
        target.frequency = v.decode_word(FREQUENCIES, data["frequency"], "recurrence.frequency")
    for key in ("interval", "count"):
        if key in data:
            setattr(target, key, v.decode_int(data[key], f"recurrence.{key}"))
    if "endTime" in data:
        target.end_time.CopyFrom(v.decode_time(data["endTime"], "recurrence.endTime"))
    if "schedule" not in data:
        return
    path = "recurrence.schedule"
    schedule = v.decode_members(data["schedule"], SCHEDULE_KEYS, path)
    target.schedule.SetInParent()
    for key in ("minutes", "hours", "monthDays"):
        items = v.decode_list(schedule.get(key, []), f"{path}.{key}")
        getattr(target.schedule, SCHEDULE_KEYS[key]).extend(
            v.decode_int(item, f"{path}.{key}") for item in items
        )
    for day in v.decode_list(schedule.get("weekDays", []), f"{path}.weekDays"):
        target.schedule.week_days.append(v.decode_word(DAYS, day, f"{path}.weekDays"))
    where = f"{path}.monthlyOccurrences"
    for item in v.decode_list(schedule.get("monthlyOccurrences", []), where):
        occ = v.decode_members(item, {"day", "occurrence"}, where)
        target.schedule.monthly_occurrences.add(
            day=v.decode_word(DAYS, occ.get("day"), f"{where}.day"),
            occurrence=v.decode_int(occ.get("occurrence", 0), f"{where}.occurrence"),
        )


def decode_update_mask(body: dict[str, Any], url_id: str) -> list[str]:
    """The update mask a PATCH body means (seed 003, merge): each present member, action
    and recurrence merged member by member. An `id` other than the URL's is an attempt to
    write the job's name, and `status` one to write an output-only field: both travel as
    paths, so that the core refuses them (FORBIDDEN_FIELD@name, @status)."""
    paths: list[str] = []
    for key, value in v.decode_members(body, JOB_KEYS, "job").items():
        if key == "id":
            if value != url_id:
                paths.append("name")
            continue
        base = _PATHS[key]
        if key in ("action", "recurrence") and isinstance(value, dict) and value:
            paths.extend(_leaves(value, base, ACTION_KEYS if key == "action" else RECURRENCE_KEYS))
        else:
            paths.append(base)
    return paths


def _leaves(value: dict[str, Any], prefix: str, keys: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, item in value.items():
        path = f"{prefix}.{keys.get(key, key)}"
        walk = key in _NESTED and isinstance(item, dict) and item
        out.extend(_leaves(item, path, _NESTED[key]) if walk else [path])
    return out


# --- proto -> JSON ----------------------------------------------------------------------


def encode_job(job: r.Job) -> dict[str, Any]:
    """The Scheduler JSON of a job, in the member order of seed 003; secrets
    (`authentication`) are never part of it."""
    out: dict[str, Any] = {"id": job.name.rsplit("/", 1)[-1]}
    spec = job.scheduled
    if spec.HasField("start_time"):
        out["startTime"] = v.encode_time(spec.start_time)
    if spec.HasField("action"):
        out["action"] = _action_json(spec.action)
    if spec.HasField("recurrence"):
        out["recurrence"] = _recurrence_json(spec.recurrence)
    state = v.encode_word(STATES, job.state)
    if state:
        out["state"] = state
    status: dict[str, Any] = {}
    if job.status.HasField("last_execution_time"):
        status["lastExecutionTime"] = v.encode_time(job.status.last_execution_time)
    if job.status.HasField("next_execution_time"):
        status["nextExecutionTime"] = v.encode_time(job.status.next_execution_time)
    status["executionCount"] = job.status.execution_count
    status["failureCount"] = job.status.failure_count
    status["faultedCount"] = job.status.faulted_count
    out["status"] = status
    return out


def _action_json(action: r.JobAction) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if action.HasField("request"):
        req = action.request
        request: dict[str, Any] = {k: getattr(req, k) for k in ("uri", "method") if getattr(req, k)}
        if req.headers:
            request["headers"] = dict(req.headers)
        if req.body:
            request["body"] = req.body
        out["request"] = request
    if action.type:
        out["type"] = v.encode_word(ACTION_TYPES, action.type)
    if action.HasField("retry_policy"):
        policy = action.retry_policy
        retry: dict[str, Any] = {}
        if policy.retry_type:
            retry["retryType"] = v.encode_word(RETRY_TYPES, policy.retry_type)
        if policy.HasField("retry_interval"):
            retry["retryInterval"] = v.encode_duration(policy.retry_interval)
        if policy.HasField("retry_count"):
            retry["retryCount"] = policy.retry_count
        out["retryPolicy"] = retry
    if action.HasField("queue_message"):
        queue = action.queue_message
        out["queueMessage"] = {
            k: getattr(queue, f) for k, f in QUEUE_KEYS.items() if getattr(queue, f)
        }
    if action.HasField("error_action"):
        out["errorAction"] = _action_json(action.error_action)
    return out


def _recurrence_json(rec: r.Recurrence) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rec.frequency:
        out["frequency"] = v.encode_word(FREQUENCIES, rec.frequency)
    for key in ("count", "interval"):
        if rec.HasField(key):
            out[key] = getattr(rec, key)
    if rec.HasField("end_time"):
        out["endTime"] = v.encode_time(rec.end_time)
    if rec.HasField("schedule"):
        s = rec.schedule
        schedule: dict[str, Any] = {}
        for key in ("minutes", "hours", "monthDays"):
            if items := list(getattr(s, SCHEDULE_KEYS[key])):
                schedule[key] = items
        if s.week_days:
            schedule["weekDays"] = [v.encode_word(DAYS, d) for d in s.week_days]
        if s.monthly_occurrences:
            schedule["monthlyOccurrences"] = [
                {"day": v.encode_word(DAYS, o.day), "occurrence": o.occurrence}
                for o in s.monthly_occurrences
            ]
        out["schedule"] = schedule
    return out


def encode_history(entry: r.HistoryEntry, job_id: str) -> dict[str, Any]:
    """A history entry (spec Decision: jobId, timestamp, startTime, endTime, state,
    status, message, retryCount, repeatCount, actionName)."""
    out: dict[str, Any] = {"jobId": job_id, "timestamp": v.encode_time(entry.timestamp)}
    if entry.HasField("start_time"):
        out["startTime"] = v.encode_time(entry.start_time)
    if entry.HasField("end_time"):
        out["endTime"] = v.encode_time(entry.end_time)
    out["state"] = v.encode_word(STATES, entry.state) or r.State.Name(entry.state).lower()
    out["status"] = v.encode_word(HISTORY_STATUS, entry.status) or "completed"
    out["message"] = entry.message
    out["retryCount"] = entry.retry_count
    out["repeatCount"] = entry.repeat_count
    out["actionName"] = entry.action_name or "MainAction"
    return out
