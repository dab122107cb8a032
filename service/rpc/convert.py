"""Pure proto <-> domain conversion (the core never sees a *_pb2 message)."""

from __future__ import annotations

import functools
from typing import Any

import grpc
import orjson
from google.longrunning import operations_pb2
from google.protobuf import (
    any_pb2,
    descriptor,
    empty_pb2,
    json_format,
    struct_pb2,
    timestamp_pb2,
)
from google.protobuf.message import Message
from google.rpc import status_pb2

from jobcontrol.service.core import filters, model
from jobcontrol.service.core.engine import Preconditions
from jobcontrol.service.core.errors import Reason, bad_field
from jobcontrol.service.core.ports import TaskCounts
from jobcontrol.service.core.profiles import PROFILES
from jobcontrol.v1 import job_service_pb2, resources_pb2

_SPEC_KEYS = tuple(p.spec_key for p in PROFILES.values())
_WELL_KNOWN = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.Struct"}
)
# Top-level Job fields that address the job or carry a precondition, never written.
_NOT_WRITTEN = frozenset({"name", "etag"})
# proto3 JSON's ranges of Timestamp (0001-01-01 to 9999-12-31) and Duration (+-10000
# years): beyond them a value cannot be written as JSON, a date or a database time
_SECONDS = {
    "google.protobuf.Timestamp": (-62_135_596_800, 253_402_300_799),
    "google.protobuf.Duration": (-315_576_000_000, 315_576_000_000),
}
_RANGES = {
    "Timestamp": "from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z",
    "Duration": "within +-315576000000s, seconds and nanos of one sign",
}
_STRUCTS = frozenset(
    {"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"}
)
# how deep Struct fields (Batch's autoPoolSpecification, task properties) may nest
# objects and arrays: stored documents are rendered by recursive encoders (JSON, XML)
MAX_STRUCT_DEPTH = 20


def _repeated(field: descriptor.FieldDescriptor) -> bool:
    # protobuf 7 drops FieldDescriptor.label; older runtimes lack is_repeated
    flag = getattr(field, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(getattr(field, "label") == field.LABEL_REPEATED)  # noqa: B009


def micros(ts: timestamp_pb2.Timestamp) -> int:
    """A Timestamp as microseconds."""
    return ts.seconds * 1_000_000 + ts.nanos // 1000


def timestamp(value: int | None) -> timestamp_pb2.Timestamp | None:
    """Microseconds as a Timestamp (None stays unset)."""
    if value is None:
        return None
    return timestamp_pb2.Timestamp(seconds=value // 1_000_000, nanos=value % 1_000_000 * 1000)


def check_values(message: Message, prefix: str) -> None:
    """Refuse values the contract does not define: enum numbers it does not name (they
    would be stored as ints), Timestamps and Durations out of their ranges, Structs nested
    deeper than MAX_STRUCT_DEPTH."""
    for field, value in message.ListFields():
        path = f"{prefix}.{field.name}" if prefix else field.name
        items = value if _repeated(field) else [value]
        if field.enum_type is not None:
            for number in items:
                if field.enum_type.values_by_number.get(number) is None:
                    raise bad_field(path, f"unknown {field.enum_type.name} value {number}")
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in items:
                _check_message(item, path)


# the old name, still used by the servicers
check_enums = check_values


def _check_message(item: Message, path: str) -> None:
    kind = item.DESCRIPTOR.full_name
    if kind in _SECONDS:
        problem = time_problem(item)
        if problem:
            raise bad_field(path, problem)
    elif kind in _STRUCTS:
        if _struct_depth(item) > MAX_STRUCT_DEPTH:
            raise bad_field(path, f"objects and arrays nest deeper than {MAX_STRUCT_DEPTH}")
    else:
        check_values(item, path)


def time_problem(item: Message) -> str:
    """Why a Timestamp or Duration is out of its range (proto3 JSON's: years 0001-9999,
    +-10000 years), or "" when it is not."""
    kind = item.DESCRIPTOR.name
    seconds, nanos = item.seconds, item.nanos  # type: ignore[attr-defined]
    low, high = _SECONDS[item.DESCRIPTOR.full_name]
    if kind == "Timestamp":
        fits = low <= seconds <= high and 0 <= nanos < 1_000_000_000
    else:
        same_sign = seconds == 0 or nanos == 0 or (seconds > 0) == (nanos > 0)
        fits = low <= seconds <= high and abs(nanos) < 1_000_000_000 and same_sign
    if fits:
        return ""
    return f"{kind} out of range (seconds {seconds}, nanos {nanos}); {_RANGES[kind]}"


def _struct_depth(item: Message) -> int:
    """How deep a Struct, ListValue or Value nests objects and arrays (iteratively, so that
    a deep one costs no recursion; it stops once past the limit)."""
    deepest, stack = 0, [(item, 0)]
    while stack and deepest <= MAX_STRUCT_DEPTH:
        node, depth = stack.pop()
        if isinstance(node, struct_pb2.Value):
            kind = node.WhichOneof("kind")
            if kind in ("struct_value", "list_value"):
                stack.append((getattr(node, kind), depth))
            continue
        deepest = max(deepest, depth + 1)
        children = node.fields.values() if isinstance(node, struct_pb2.Struct) else node.values  # type: ignore[attr-defined]
        stack.extend((child, depth + 1) for child in children)
    return deepest


def present_paths(message: Message, prefix: str = "") -> list[str]:
    """Leaf paths of the fields set in `message`: singular messages are walked, maps,
    lists, scalars and well-known types are leaves (the inferred update mask)."""
    paths: list[str] = []
    for field, value in message.ListFields():
        path = f"{prefix}.{field.name}" if prefix else field.name
        walk = (
            field.message_type is not None
            and not _repeated(field)
            and field.message_type.full_name not in _WELL_KNOWN
        )
        sub = present_paths(value, path) if walk else []
        paths.extend(sub or [path])
    return paths


def job_document(job: resources_pb2.Job, field: str = "job") -> dict[str, Any]:
    """The client-supplied part of a Job as a document (snake_case, proto3 JSON values)."""
    check_values(job, field)
    doc = json_format.MessageToDict(job, preserving_proto_field_name=True)
    for key in _NOT_WRITTEN:
        doc.pop(key, None)
    return doc


def update_paths(job: resources_pb2.Job, mask_paths: list[str]) -> list[str]:
    """The explicit mask, or the fields present in the request (merge)."""
    if mask_paths:
        return mask_paths
    return [p for p in present_paths(job) if p.split(".")[0] not in _NOT_WRITTEN]


def preconditions(etag: str, request: Message) -> Preconditions:
    """A request's etag and its `preconditions` field (if it has one) as the core's
    record."""
    has = "preconditions" in request.DESCRIPTOR.fields_by_name and request.HasField("preconditions")
    if not has:
        return Preconditions(etag=etag)
    pre: job_service_pb2.Preconditions = request.preconditions  # type: ignore[attr-defined]
    check_values(pre, "preconditions")
    return Preconditions(
        etag=etag,
        if_none_match=pre.if_none_match,
        if_modified_since=micros(pre.if_modified_since)
        if pre.HasField("if_modified_since")
        else None,
        if_unmodified_since=micros(pre.if_unmodified_since)
        if pre.HasField("if_unmodified_since")
        else None,
        types=tuple(pre.types),
    )


_OPERATORS = {
    resources_pb2.Comparison.EQUAL: "=",
    resources_pb2.Comparison.NOT_EQUAL: "!=",
    resources_pb2.Comparison.LESS: "<",
    resources_pb2.Comparison.LESS_OR_EQUAL: "<=",
    resources_pb2.Comparison.GREATER: ">",
    resources_pb2.Comparison.GREATER_OR_EQUAL: ">=",
    resources_pb2.Comparison.STARTS_WITH: filters.STARTS_WITH,
}
MAX_FILTER_NODES = 256


def structured_filter(
    request: Message, fields: dict[str, object], field: str = "structured_filter"
) -> filters.Node | None:
    """A request's `structured_filter` as the core's filter tree (None when absent), each
    comparison checked like a parsed one."""
    if not request.HasField(field):
        return None
    budget = [MAX_FILTER_NODES]
    return _filter_node(getattr(request, field), fields, field, budget, 0)


def _filter_node(
    node: resources_pb2.Filter,
    fields: dict[str, object],
    path: str,
    budget: list[int],
    depth: int,
) -> filters.Node:
    budget[0] -= 1
    if budget[0] < 0:
        raise bad_field(path, f"more than {MAX_FILTER_NODES} nodes", Reason.INVALID_FILTER)
    kind = node.WhichOneof("node")
    if kind in ("all", "any", "negation") and depth >= filters.MAX_DEPTH:
        raise bad_field(path, f"nests deeper than {filters.MAX_DEPTH}", Reason.INVALID_FILTER)
    if kind in ("all", "any"):
        items = tuple(
            _filter_node(f, fields, f"{path}.{kind}", budget, depth + 1)
            for f in getattr(node, kind).filters
        )
        if not items:
            raise bad_field(f"{path}.{kind}", "needs at least one filter", Reason.INVALID_FILTER)
        return filters.And(items) if kind == "all" else filters.Or(items)
    if kind == "negation":
        inner = _filter_node(node.negation, fields, f"{path}.negation", budget, depth + 1)
        return filters.Not(inner)
    if kind != "comparison":
        raise bad_field(path, "an empty filter node", Reason.INVALID_FILTER)
    cmp = node.comparison
    op = _OPERATORS.get(cmp.operator)
    if op is None:
        raise bad_field(f"{path}.comparison.operator", "unknown operator", Reason.INVALID_FILTER)
    which = cmp.WhichOneof("value")
    if which is None:
        raise bad_field(f"{path}.comparison", "needs a value", Reason.INVALID_FILTER)
    problem = time_problem(cmp.time) if which == "time" else ""
    if problem:
        raise bad_field(f"{path}.comparison.time", problem, Reason.INVALID_FILTER)
    raw: str | int = cmp.text if which == "text" else micros(cmp.time)
    return filters.comparison(cmp.field, op, raw, fields)


def task_counts_to_proto(counts: TaskCounts) -> resources_pb2.TaskCounts:
    """The core's task counts as the TaskCounts message."""
    return resources_pb2.TaskCounts(
        active=counts.active,
        running=counts.running,
        completed=counts.completed,
        succeeded=counts.succeeded,
        failed=counts.failed,
    )


def enum_name(enum_type: Any, number: int, field: str) -> str:
    """The name of an enum number, refusing unknown and UNSPECIFIED values."""
    value = enum_type.DESCRIPTOR.values_by_number.get(number)
    if value is None or number == 0:
        raise bad_field(field, f"unknown or unspecified {enum_type.DESCRIPTOR.name} {number}")
    return str(value.name)


_STATE = {s: resources_pb2.State.Value(s.value) for s in model.State}
_PROFILE = {p: resources_pb2.Profile.Value(p.value) for p in model.Profile}


def _set_time(ts: timestamp_pb2.Timestamp, value: int) -> None:
    """Microseconds into a (parent's) Timestamp field; setting it marks it present."""
    ts.seconds = value // 1_000_000
    ts.nanos = value % 1_000_000 * 1000


def job_to_proto(job: model.Job) -> resources_pb2.Job:
    """A domain job as the Job message. Built field by field: the constructor's keyword
    form initialises the labels map and each Timestamp through a generic merge, three
    times the cost on every read and write reply (bench/README, "Conversions")."""
    msg = resources_pb2.Job(
        name=job.name,
        uid=job.uid,
        display_name=job.display_name,
        state=_STATE[job.state],
        etag=job.etag,
        profile=_PROFILE[job.profile],
    )
    if job.previous_state is not None:
        msg.previous_state = _STATE[job.previous_state]
    if job.delete_operation:
        msg.delete_operation = job.delete_operation
    _set_time(msg.state_transition_time, job.state_time)
    if job.previous_state_time is not None:
        _set_time(msg.previous_state_transition_time, job.previous_state_time)
    _set_time(msg.create_time, job.create_time)
    _set_time(msg.update_time, job.update_time)
    if job.delete_time is not None:
        _set_time(msg.delete_time, job.delete_time)
    if job.labels:
        msg.labels.update(job.labels)
    spec_key = PROFILES[job.profile].spec_key
    getattr(msg, spec_key).MergeFromString(_document(spec_key, orjson.dumps(job.spec)))
    if job.status:
        msg.status.MergeFromString(_document("status", orjson.dumps(job.status)))
    return msg


@functools.lru_cache(maxsize=8192)
def _document(field: str, text: bytes) -> bytes:
    """A stored JSON document as its message's wire form (`field`: the Job field the
    document fills). json_format is slow and jobs of a collection tend to share documents,
    so conversions are cached by their text. Stored documents may hold fields a
    rolled-back binary does not know: they are skipped."""
    message: Message = getattr(resources_pb2.Job(), field)
    json_format.Parse(text, message, ignore_unknown_fields=True)
    return message.SerializeToString()


def collection_from_proto(
    c: resources_pb2.Collection, field: str = "collection"
) -> model.Collection:
    """The client-supplied part of a Collection."""
    check_values(c, field)
    q = c.quota
    frequency = (
        resources_pb2.Recurrence.Frequency.Name(q.max_recurrence_frequency)
        if q.max_recurrence_frequency
        else None
    )
    return model.Collection(
        collection_id="",
        profile=model.Profile(enum_name(resources_pb2.Profile, c.profile, f"{field}.profile")),
        display_name=c.display_name,
        plan=c.plan,
        quota=model.Quota(
            max_job_count=q.max_job_count if q.HasField("max_job_count") else None,
            max_active_jobs=q.max_active_jobs if q.HasField("max_active_jobs") else None,
            max_recurrence_frequency=frequency,
            max_recurrence_interval=q.max_recurrence_interval
            if q.HasField("max_recurrence_interval")
            else None,
        ),
        labels=dict(c.labels),
    )


def collection_to_proto(c: model.Collection) -> resources_pb2.Collection:
    """A domain collection as the Collection message."""
    q = c.quota
    quota = resources_pb2.Quota(
        max_job_count=q.max_job_count,
        max_active_jobs=q.max_active_jobs,
        max_recurrence_frequency=resources_pb2.Recurrence.Frequency.Value(
            q.max_recurrence_frequency or "FREQUENCY_UNSPECIFIED"
        ),
        max_recurrence_interval=q.max_recurrence_interval,
    )
    return resources_pb2.Collection(
        name=c.name,
        uid=c.uid,
        display_name=c.display_name,
        profile=resources_pb2.Profile.Value(c.profile.value),
        plan=c.plan,
        quota=quota,
        labels=c.labels,
        create_time=timestamp(c.create_time),
        update_time=timestamp(c.update_time),
        etag=c.etag,
        owner=c.owner,
    )


def task_from_proto(t: resources_pb2.Task) -> model.Task:
    """The client-supplied part of a Task."""
    check_values(t, "task")
    return model.Task(
        job_pk=0,
        job_name="",
        task_id="",
        display_name=t.display_name,
        command_line=t.command_line,
        properties=json_format.MessageToDict(t.properties),
    )


def task_to_proto(t: model.Task) -> resources_pb2.Task:
    """A domain task as the Task message."""
    msg = resources_pb2.Task(
        name=t.name,
        uid=t.uid,
        display_name=t.display_name,
        command_line=t.command_line,
        state=resources_pb2.Task.State.Value(t.state.value),
        result=resources_pb2.Task.Result.Value(
            t.result.value if t.result else "RESULT_UNSPECIFIED"
        ),
        create_time=timestamp(t.create_time),
        update_time=timestamp(t.update_time),
        state_transition_time=timestamp(t.state_time),
        etag=t.etag,
        exit_code=t.exit_code,
        retry_count=t.retry_count,
    )
    if t.properties:
        msg.properties.update(t.properties)
    return msg


def history_from_proto(e: resources_pb2.HistoryEntry) -> model.HistoryEntry:
    """The operator-supplied part of a history entry."""
    check_values(e, "entry")
    return model.HistoryEntry(
        job_pk=0,
        job_name="",
        status=enum_name(resources_pb2.HistoryEntry.Status, e.status, "entry.status"),
        state=model.State.ENABLED,
        start_time=micros(e.start_time) if e.HasField("start_time") else None,
        end_time=micros(e.end_time) if e.HasField("end_time") else None,
        message=e.message,
        retry_count=e.retry_count,
        repeat_count=e.repeat_count,
        action_name=e.action_name,
    )


def history_to_proto(e: model.HistoryEntry) -> resources_pb2.HistoryEntry:
    """A domain history entry as the HistoryEntry message."""
    return resources_pb2.HistoryEntry(
        name=e.name,
        timestamp=timestamp(e.timestamp),
        start_time=timestamp(e.start_time),
        end_time=timestamp(e.end_time),
        state=resources_pb2.State.Value(e.state.value),
        status=resources_pb2.HistoryEntry.Status.Value(e.status),
        message=e.message,
        retry_count=e.retry_count,
        repeat_count=e.repeat_count,
        action_name=e.action_name,
        expected_execution_time=timestamp(e.expected_time),
    )


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def operation_to_proto(op: model.Operation) -> Any:
    """A domain operation as google.longrunning.Operation."""
    metadata = resources_pb2.OperationMetadata(
        target=op.target,
        verb=op.verb,
        create_time=timestamp(op.create_time),
        end_time=timestamp(op.end_time),
        purged_count=op.purged_count,
        cancellable=op.cancellable and not op.done,
    )
    msg = operations_pb2.Operation(name=op.name, done=op.done, metadata=_pack(metadata))
    if op.done and op.error is not None:
        msg.error.CopyFrom(
            status_pb2.Status(
                code=grpc.StatusCode[op.error.code].value[0], message=op.error.message
            )
        )
    elif op.done:
        result: Message = (
            job_service_pb2.DeleteJobsResponse(deleted_count=op.total_count)
            if op.result_kind == "delete_jobs"
            else empty_pb2.Empty()
        )
        msg.response.CopyFrom(_pack(result))
    return msg
