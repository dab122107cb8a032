"""Azure Scheduler job JSON (seed 003) <-> jobcontrol.v1 Job, as pure functions.

The JSON is camelCase with lower-case enum words (`"frequency": "minute"`); the proto uses
upper-case enum names. Each table below is one mapping, read both ways.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from jobcontrol.gateway.errors import bad_request
from jobcontrol.v1 import resources_pb2 as r

ACTION_TYPES = {
    "http": r.JobAction.HTTP,
    "https": r.JobAction.HTTPS,
    "storageQueue": r.JobAction.STORAGE_QUEUE,
    "serviceBusQueue": r.JobAction.SERVICE_BUS_QUEUE,
    "serviceBusTopic": r.JobAction.SERVICE_BUS_TOPIC,
}
RETRY_TYPES = {"none": r.RetryPolicy.NONE, "fixed": r.RetryPolicy.FIXED}
FREQUENCIES = {
    "minute": r.Recurrence.MINUTE,
    "hour": r.Recurrence.HOUR,
    "day": r.Recurrence.DAY,
    "week": r.Recurrence.WEEK,
    "month": r.Recurrence.MONTH,
}
DAYS = {name.lower(): value for name, value in r.Schedule.DayOfWeek.items() if value}
STATES = {
    "enabled": r.ENABLED,
    "disabled": r.DISABLED,
    "completed": r.COMPLETED,
    "faulted": r.FAULTED,
}
HISTORY_STATUS = {
    r.HistoryEntry.COMPLETED: "completed",
    r.HistoryEntry.FAILED: "failed",
    r.HistoryEntry.POSTPONED: "postponed",
}
AUTH_FIELDS = {
    "type": "type",
    "username": "username",
    "password": "password",
    "pfx": "pfx",
    "secret": "secret",
    "tenant": "tenant",
    "audience": "audience",
    "clientId": "client_id",
}
# JSON key -> proto field, for the objects that are walked field by field
JOB_KEYS = {"id", "startTime", "action", "recurrence", "state", "status"}
ACTION_KEYS = {
    "type": "type",
    "request": "request",
    "retryPolicy": "retry_policy",
    "errorAction": "error_action",
    "queueMessage": "queue_message",
}
REQUEST_KEYS = {
    "uri": "uri",
    "method": "method",
    "headers": "headers",
    "body": "body",
    "authentication": "authentication",
}
RETRY_KEYS = {
    "retryType": "retry_type",
    "retryInterval": "retry_interval",
    "retryCount": "retry_count",
}
QUEUE_KEYS = {
    "storageAccount": "storage_account",
    "queueName": "queue_name",
    "sasToken": "sas_token",
    "message": "message",
}
RECURRENCE_KEYS = {
    "frequency": "frequency",
    "interval": "interval",
    "count": "count",
    "endTime": "end_time",
    "schedule": "schedule",
}
SCHEDULE_KEYS = {
    "minutes": "minutes",
    "hours": "hours",
    "weekDays": "week_days",
    "monthDays": "month_days",
    "monthlyOccurrences": "monthly_occurrences",
}
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _bad(path: str, why: str) -> Exception:
    return bad_request("INVALID_BODY", f"{path}: {why}", field=path)


def _pick(table: dict[str, Any], value: Any, path: str) -> Any:
    if not isinstance(value, str):
        raise _bad(path, "must be a string")
    for key, mapped in table.items():
        if key.lower() == value.lower():
            return mapped
    raise _bad(path, f"unknown value {value!r} (allowed: {', '.join(table)})")


def _object(value: Any, keys: set[str] | dict[str, str], path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "must be an object")
    unknown = set(value) - set(keys)
    if unknown:
        raise _bad(path, f"unknown fields {', '.join(sorted(unknown))}")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(path, "must be an integer")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, "must be a string")
    return value


def _timestamp(value: Any, path: str) -> timestamp_pb2.Timestamp:
    text = _str(value, path)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(path, f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _duration(value: Any, path: str) -> duration_pb2.Duration:
    """`00:00:30` (TimeSpan) or `PT30S` (ISO 8601)."""
    text = _str(value, path)
    span = _TIMESPAN.match(text)
    iso = _ISO_DURATION.match(text)
    if span:
        days, hours, minutes, seconds, fraction = span.groups()
        delta = timedelta(
            days=int(days or 0),
            hours=int(hours),
            minutes=int(minutes),
            seconds=int(seconds) + float(f"0.{fraction}") if fraction else int(seconds),
        )
    elif iso and text not in ("P", "PT"):
        days, hours, minutes, seconds = iso.groups()
        delta = timedelta(
            days=int(days or 0),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    else:
        raise _bad(path, f"not a duration: {text!r} (e.g. 00:00:30)")
    out = duration_pb2.Duration()
    out.FromTimedelta(delta)
    return out


def format_time(stamp: timestamp_pb2.Timestamp) -> str:
    """RFC 3339 in UTC with `Z`, fractions only when present."""
    moment = stamp.ToDatetime(tzinfo=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def format_duration(duration: duration_pb2.Duration) -> str:
    """A TimeSpan `hh:mm:ss` (days as `d.hh:mm:ss`)."""
    total = int(duration.ToTimedelta().total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"{days}.{text}" if days else text


# --- JSON -> proto ------------------------------------------------------------------


def _action(value: Any, target: r.JobAction, path: str, nested: bool) -> None:
    keys = dict(ACTION_KEYS)
    if nested:
        keys.pop("errorAction")
    data = _object(value, keys, path)
    if "type" in data:
        target.type = _pick(ACTION_TYPES, data["type"], f"{path}.type")
    if "request" in data:
        req = _object(data["request"], REQUEST_KEYS, f"{path}.request")
        target.request.SetInParent()
        for key in ("uri", "method", "body"):
            if key in req:
                setattr(target.request, key, _str(req[key], f"{path}.request.{key}"))
        if "headers" in req:
            headers = _object(req["headers"], set(req["headers"] or {}), f"{path}.request.headers")
            for name, text in headers.items():
                target.request.headers[name] = _str(text, f"{path}.request.headers.{name}")
        if "authentication" in req:
            auth = _object(req["authentication"], AUTH_FIELDS, f"{path}.request.authentication")
            for key, field in AUTH_FIELDS.items():
                if key in auth:
                    setattr(target.request.authentication, field, _str(auth[key], key))
    if "retryPolicy" in data:
        retry = _object(data["retryPolicy"], RETRY_KEYS, f"{path}.retryPolicy")
        target.retry_policy.SetInParent()
        if "retryType" in retry:
            target.retry_policy.retry_type = _pick(RETRY_TYPES, retry["retryType"], "retryType")
        if "retryInterval" in retry:
            target.retry_policy.retry_interval.CopyFrom(
                _duration(retry["retryInterval"], f"{path}.retryPolicy.retryInterval")
            )
        if "retryCount" in retry:
            target.retry_policy.retry_count = _int(retry["retryCount"], "retryCount")
    if "queueMessage" in data:
        queue = _object(data["queueMessage"], QUEUE_KEYS, f"{path}.queueMessage")
        target.queue_message.SetInParent()
        for key, field in QUEUE_KEYS.items():
            if key in queue:
                setattr(target.queue_message, field, _str(queue[key], key))
    if "errorAction" in data:
        _action(data["errorAction"], target.error_action, f"{path}.errorAction", nested=True)


def _recurrence(value: Any, target: r.Recurrence) -> None:
    data = _object(value, RECURRENCE_KEYS, "recurrence")
    target.SetInParent()
    if "frequency" in data:
        target.frequency = _pick(FREQUENCIES, data["frequency"], "recurrence.frequency")
    for key in ("interval", "count"):
        if key in data:
            setattr(target, key, _int(data[key], f"recurrence.{key}"))
    if "endTime" in data:
        target.end_time.CopyFrom(_timestamp(data["endTime"], "recurrence.endTime"))
    if "schedule" in data:
        schedule = _object(data["schedule"], SCHEDULE_KEYS, "recurrence.schedule")
        target.schedule.SetInParent()
        for key in ("minutes", "hours", "monthDays"):
            if key in schedule:
                items = schedule[key]
                if not isinstance(items, list):
                    raise _bad(f"recurrence.schedule.{key}", "must be an array")
                getattr(target.schedule, SCHEDULE_KEYS[key]).extend(
                    _int(v, f"recurrence.schedule.{key}") for v in items
                )
        for day in schedule.get("weekDays", []):
            target.schedule.week_days.append(_pick(DAYS, day, "recurrence.schedule.weekDays"))
        for item in schedule.get("monthlyOccurrences", []):
            occ = _object(item, {"day", "occurrence"}, "recurrence.schedule.monthlyOccurrences")
            target.schedule.monthly_occurrences.add(
                day=_pick(DAYS, occ.get("day"), "monthlyOccurrences.day"),
                occurrence=_int(occ.get("occurrence", 0), "monthlyOccurrences.occurrence"),
            )


def to_job(body: Any) -> r.Job:
    """A Job from the Azure JSON (id and status are not read here: see `mask_paths`)."""
    data = _object(body, JOB_KEYS, "job")
    job = r.Job()
    job.scheduled.SetInParent()
    if "startTime" in data:
        job.scheduled.start_time.CopyFrom(_timestamp(data["startTime"], "startTime"))
    if "action" in data:
        _action(data["action"], job.scheduled.action, "action", nested=False)
    if "recurrence" in data:
        _recurrence(data["recurrence"], job.scheduled.recurrence)
    if "state" in data:
        job.state = _pick(STATES, data["state"], "state")
    return job


_PATHS = {
    "startTime": "scheduled.start_time",
    "action": "scheduled.action",
    "recurrence": "scheduled.recurrence",
    "state": "state",
    "status": "status",
}


def mask_paths(body: dict[str, Any], url_id: str) -> list[str]:
    """The update mask a PATCH body means: each present member, merged leaf by leaf for
    action and recurrence. A body `id` that differs from the URL's is an attempt to write
    the job's name, and `status` one to write an output-only field: both are sent as
    paths, so the core refuses them (FORBIDDEN_FIELD)."""
    paths: list[str] = []
    for key, value in body.items():
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


_NESTED = {
    "request": REQUEST_KEYS,
    "retryPolicy": RETRY_KEYS,
    "queueMessage": QUEUE_KEYS,
    "errorAction": ACTION_KEYS,
    "schedule": SCHEDULE_KEYS,
}


def _leaves(value: dict[str, Any], prefix: str, keys: dict[str, str]) -> list[str]:
    out: list[str] = []
    for key, item in value.items():
        field = keys.get(key, key)
        path = f"{prefix}.{field}"
        walk = key in _NESTED and key != "headers" and isinstance(item, dict) and item
        out.extend(_leaves(item, path, _NESTED[key]) if walk else [path])
    return out


# --- proto -> JSON ------------------------------------------------------------------


def _enum_name(table: dict[str, Any], value: int) -> str | None:
    for key, mapped in table.items():
        if mapped == value:
            return key
    return None


def _action_json(action: r.JobAction) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if action.HasField("request"):
        req = action.request
        request: dict[str, Any] = {}
        for key in ("uri", "method"):
            if getattr(req, key):
                request[key] = getattr(req, key)
        if req.headers:
            request["headers"] = dict(req.headers)
        if req.body:
            request["body"] = req.body
        out["request"] = request
    if action.type:
        out["type"] = _enum_name(ACTION_TYPES, action.type)
    if action.HasField("retry_policy"):
        policy = action.retry_policy
        retry: dict[str, Any] = {}
        if policy.retry_type:
            retry["retryType"] = _enum_name(RETRY_TYPES, policy.retry_type)
        if policy.HasField("retry_interval"):
            retry["retryInterval"] = format_duration(policy.retry_interval)
        if policy.HasField("retry_count"):
            retry["retryCount"] = policy.retry_count
        out["retryPolicy"] = retry
    if action.HasField("queue_message"):
        out["queueMessage"] = {
            key: getattr(action.queue_message, field)
            for key, field in QUEUE_KEYS.items()
            if getattr(action.queue_message, field)
        }
    if action.HasField("error_action"):
        out["errorAction"] = _action_json(action.error_action)
    return out


def _recurrence_json(rec: r.Recurrence) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if rec.frequency:
        out["frequency"] = _enum_name(FREQUENCIES, rec.frequency)
    if rec.HasField("count"):
        out["count"] = rec.count
    if rec.HasField("interval"):
        out["interval"] = rec.interval
    if rec.HasField("end_time"):
        out["endTime"] = format_time(rec.end_time)
    if rec.HasField("schedule"):
        s = rec.schedule
        schedule: dict[str, Any] = {}
        for key in ("minutes", "hours", "monthDays"):
            items = list(getattr(s, SCHEDULE_KEYS[key]))
            if items:
                schedule[key] = items
        if s.week_days:
            schedule["weekDays"] = [_enum_name(DAYS, d) for d in s.week_days]
        if s.monthly_occurrences:
            schedule["monthlyOccurrences"] = [
                {"day": _enum_name(DAYS, o.day), "occurrence": o.occurrence}
                for o in s.monthly_occurrences
            ]
        out["schedule"] = schedule
    return out


def from_job(job: r.Job) -> dict[str, Any]:
    """The Azure JSON of a job, in the member order of seed 003."""
    out: dict[str, Any] = {"id": job.name.rsplit("/", 1)[-1]}
    spec = job.scheduled
    if spec.HasField("start_time"):
        out["startTime"] = format_time(spec.start_time)
    if spec.HasField("action"):
        out["action"] = _action_json(spec.action)
    if spec.HasField("recurrence"):
        out["recurrence"] = _recurrence_json(spec.recurrence)
    state = _enum_name(STATES, job.state)
    if state:
        out["state"] = state
    status: dict[str, Any] = {}
    if job.status.HasField("last_execution_time"):
        status["lastExecutionTime"] = format_time(job.status.last_execution_time)
    if job.status.HasField("next_execution_time"):
        status["nextExecutionTime"] = format_time(job.status.next_execution_time)
    status["executionCount"] = job.status.execution_count
    status["failureCount"] = job.status.failure_count
    status["faultedCount"] = job.status.faulted_count
    out["status"] = status
    return out


def history_json(entry: r.HistoryEntry, job_id: str) -> dict[str, Any]:
    """A history entry (spec Decision: jobId, timestamp, startTime, endTime, state,
    status, message, retryCount, repeatCount, actionName)."""
    out: dict[str, Any] = {"jobId": job_id, "timestamp": format_time(entry.timestamp)}
    if entry.HasField("start_time"):
        out["startTime"] = format_time(entry.start_time)
    if entry.HasField("end_time"):
        out["endTime"] = format_time(entry.end_time)
    out["state"] = _enum_name(STATES, entry.state) or r.State.Name(entry.state).lower()
    out["status"] = HISTORY_STATUS.get(entry.status, "completed")
    out["message"] = entry.message
    out["retryCount"] = entry.retry_count
    out["repeatCount"] = entry.repeat_count
    out["actionName"] = entry.action_name or "MainAction"
    return out
