"""The one engine that walks the profile tables: pure functions over domain records."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from jobcontrol.service.core import documents, recurrence
from jobcontrol.service.core.errors import DomainError, FieldViolation, Reason, bad_field
from jobcontrol.service.core.model import (
    Action,
    Collection,
    HistoryEntry,
    Job,
    Quota,
    State,
    now_us,
)
from jobcontrol.service.core.profiles import (
    INPUT_ONLY_PATHS,
    SPEC_KEYS,
    ActionRule,
    ProfileRules,
    rules_for,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Preconditions:
    """Conditions a write is made under (HTTP If-* headers, in gRPC terms)."""

    etag: str = ""
    if_none_match: str = ""
    if_modified_since: int | None = None
    if_unmodified_since: int | None = None
    # the job's type must be one of these (JOB_TYPE_MISMATCH otherwise)
    types: tuple[str, ...] = ()


class Versioned(Protocol):
    """What conditions are checked against: a job or a collection."""

    @property
    def name(self) -> str: ...

    etag: str
    update_time: int


def new_etag(uid: str, version: int) -> str:
    """An opaque etag that changes with every version of a resource."""
    return hashlib.blake2s(f"{uid}:{version}".encode(), digest_size=8).hexdigest()


def stamp(job: Job, now: int) -> None:
    """Record a write: new version, etag and update time, and the deadline its spec and
    state give it now."""
    job.version += 1
    job.etag = new_etag(job.uid, job.version)
    job.update_time = now
    job.deadline = deadline_of(rules_for(job.profile), job)


def refused(reason: Reason, job: Job, what: str) -> DomainError:
    """A lifecycle refusal naming the job and its state."""
    return DomainError(
        reason,
        f"{what} is not allowed: job {job.name} is {job.state.value}",
        metadata={"job": job.name, "state": job.state.value},
        resource=job.name,
    )


def check_conditions(
    target: Versioned | None, pre: Preconditions, name: str = "", kind: str | None = None
) -> None:
    """The one check of a write's conditions, made inside the write's transaction:
    etag first (ETAG_MISMATCH; `*` matches any existing resource), then the none-match and
    time conditions (CONDITION_NOT_MET),
    then the job's type (JOB_TYPE_MISMATCH, `kind`). `target` None: the resource does not
    exist (a create), which meets If-None-Match and If-Modified-Since and fails the rest."""
    key = "job" if "/jobs/" in (target.name if target else name) else "collection"
    if target is None:
        if pre.etag or pre.if_unmodified_since is not None or pre.types:
            raise DomainError(
                Reason.CONDITION_NOT_MET,
                f"a condition of the request is not met: {name} does not exist",
                metadata={key: name},
                resource=name,
            )
        return
    if pre.etag and pre.etag not in ("*", target.etag):
        raise DomainError(
            Reason.ETAG_MISMATCH,
            f"etag {pre.etag!r} does not match the current etag of {target.name}",
            metadata={key: target.name, "etag": target.etag},
            resource=target.name,
        )
    seconds = target.update_time // 1_000_000 * 1_000_000
    unmet = (
        (pre.if_none_match and pre.if_none_match in ("*", target.etag))
        or (pre.if_modified_since is not None and seconds <= pre.if_modified_since)
        or (pre.if_unmodified_since is not None and seconds > pre.if_unmodified_since)
    )
    if unmet:
        raise DomainError(
            Reason.CONDITION_NOT_MET,
            f"a condition of the request is not met by {target.name}",
            metadata={key: target.name},
            resource=target.name,
        )
    if pre.types and kind not in pre.types:
        raise DomainError(
            Reason.JOB_TYPE_MISMATCH,
            f"{target.name} is of type {kind}, not {' or '.join(pre.types)}",
            metadata={"job": target.name, "type": str(kind)},
            resource=target.name,
        )


def check_not_locked(rules: ProfileRules, job: Job, what: str) -> None:
    """States in which the profile refuses every update and action."""
    reason = rules.update_refused.get(job.state)
    if reason is not None:
        raise refused(reason, job, what)


def transition(job: Job, to: State, now: int) -> None:
    """Move the job to `to`, keeping the previous state and both times."""
    if to == job.state:
        return
    job.previous_state, job.previous_state_time = job.state, job.state_time
    job.state, job.state_time = to, now
    if to is State.FAULTED:
        job.status["faulted_count"] = int(job.status.get("faulted_count", 0)) + 1


def document(rules: ProfileRules, job: Job) -> dict[str, Any]:
    """The job's client-writable fields as one document addressed by mask paths; it
    shares the job's spec (documents are changed only through set_path, which copies on
    write)."""
    doc: dict[str, Any] = {rules.spec_key: job.spec}
    if job.display_name:
        doc["display_name"] = job.display_name
    if job.labels:
        doc["labels"] = dict(job.labels)
    return doc


def check_spec_key(rules: ProfileRules, patch: dict[str, Any], field: str) -> None:
    """A spec for another profile than the collection's is refused."""
    for key in SPEC_KEYS - {rules.spec_key}:
        if key in patch:
            raise bad_field(
                f"{field}.{key}",
                f"the collection's profile is {rules.profile.value}; "
                f"send {rules.spec_key}, not {key}",
                Reason.SPEC_PROFILE_MISMATCH,
            )


def check_required(rules: ProfileRules, doc: dict[str, Any]) -> None:
    """Fields a job of this profile must hold (after a create and after every update)."""
    missing = [p for p in rules.required_fields if documents.get_path(doc, p) in (None, {})]
    if missing:
        raise DomainError(
            Reason.REQUIRED_FIELD_MISSING,
            f"required: {', '.join(missing)}",
            metadata={"fields": ",".join(missing)},
            violations=[FieldViolation(f"job.{p}", "required") for p in missing],
        )


def check_values(
    rules: ProfileRules, doc: dict[str, Any], old: dict[str, Any] | None = None
) -> None:
    """The profile's value rules for every field the write sets (`old` None: a create) or
    changes; stored values an update leaves alone are not re-judged."""
    for path, rule in rules.values.items():
        value = documents.get_path(doc, path)
        if value is None or (old is not None and documents.get_path(old, path) == value):
            continue
        if not rule.admits(value):
            raise bad_field(
                f"job.{path}",
                f"{value!r} is not allowed; must be {rule.describe()}",
                Reason.FIELD_VALUE_NOT_ALLOWED,
            )


def check_client_state(rules: ProfileRules, job: Job, target: State, doc: dict[str, Any]) -> None:
    """A client-requested state change: settable target, allowed source, requirements."""
    sources = rules.client_states.get(target)
    if sources is None:
        raise bad_field(
            "job.state",
            f"{target.value} cannot be set by clients of a {rules.profile.value} job",
            Reason.STATE_NOT_SETTABLE,
        )
    if job.state not in sources:
        raise refused(Reason.INVALID_STATE_TRANSITION, job, f"moving to {target.value}")
    needed = [p for p in rules.state_requires.get(target, ()) if not documents.get_path(doc, p)]
    if needed:
        raise DomainError(
            Reason.SHIPPING_INFO_REQUIRED,
            f"{target.value} needs {', '.join(needed)}",
            metadata={"fields": ",".join(needed)},
            resource=job.name,
        )


def check_field_changes(
    rules: ProfileRules, job: Job, old: dict[str, Any], new: dict[str, Any], paths: list[str]
) -> None:
    """Immutable, value-restricted and state-dependent fields, for values that change."""
    for path in paths:
        if path == "state":
            continue
        key = documents.governing_field(rules, path)
        rule = rules.fields[key]
        before, after = documents.get_path(old, key), documents.get_path(new, key)
        if before == after:
            continue
        if rule.immutable:
            raise bad_field(f"job.{key}", "is fixed at creation", Reason.FIELD_IMMUTABLE)
        if rule.only_values is not None and after not in rule.only_values:
            raise bad_field(
                f"job.{key}",
                f"may only be set to {', '.join(map(str, rule.only_values))}",
                Reason.FIELD_VALUE_NOT_ALLOWED,
            )
        if rule.states is not None and job.state not in rule.states:
            raise DomainError(
                Reason.FIELD_NOT_MUTABLE_IN_STATE,
                f"{key} cannot change while {job.name} is {job.state.value}",
                metadata={"field": key, "state": job.state.value},
                resource=job.name,
            )


def effective_quota(rules: ProfileRules, collection: Collection) -> Quota:
    """The collection's quota with the profile's defaults for unset limits."""
    q, d = collection.quota, rules.default_quota
    return Quota(
        max_job_count=q.max_job_count if q.max_job_count is not None else d.max_job_count,
        max_active_jobs=q.max_active_jobs if q.max_active_jobs is not None else d.max_active_jobs,
        max_recurrence_frequency=q.max_recurrence_frequency,
        max_recurrence_interval=q.max_recurrence_interval,
    )


def quota_error(collection: Collection, limit: str, value: int) -> DomainError:
    """QUOTA_EXCEEDED for one of the collection's limits."""
    return DomainError(
        Reason.QUOTA_EXCEEDED,
        f"collection {collection.name} allows at most {value} ({limit})",
        metadata={"quota": limit, "limit": str(value)},
        resource=collection.name,
    )


# Azure Scheduler's shortest retry interval; a lower --scheduler-min-interval lowers it too
RETRY_INTERVAL_FLOOR = 30.0


def check_min_intervals(spec: dict[str, Any], min_seconds: float, collection: Collection) -> None:
    """The server's floor (`--scheduler-min-interval`) on a scheduled job's recurrence
    period (RECURRENCE_QUOTA_EXCEEDED, like the collection's quota; a SECOND frequency at
    all only below a minute, else it is a quota unit only, C31) and on the retry
    interval of its action and error action (a field violation; at most 30 s)."""
    every = spec.get("recurrence") or {}
    recurrence.check(every)  # its numbers first: a negative interval is bad input
    if every.get("frequency") == "SECOND" and min_seconds >= 60:
        raise bad_field(
            "job.scheduled.recurrence.frequency",
            f"'SECOND' is not allowed: jobs recur at most every {min_seconds:g} s here",
            Reason.FIELD_VALUE_NOT_ALLOWED,
        )
    period = recurrence.period_seconds(every)
    if period is not None and period < min_seconds:
        raise DomainError(
            Reason.RECURRENCE_QUOTA_EXCEEDED,
            f"recurrence every {period} s is more frequent than this service allows "
            f"({min_seconds:g} s)",
            metadata={"quota": "min_recurrence_interval", "limit_seconds": f"{min_seconds:g}"},
            resource=collection.name,
        )
    action = spec.get("action") or {}
    floor = min(min_seconds, RETRY_INTERVAL_FLOOR)
    for path, act in (("action", action), ("action.error_action", action.get("error_action"))):
        policy = (act or {}).get("retry_policy") or {}
        if "retry_interval" in policy and policy.get("retry_type") != "NONE":
            seconds = duration_seconds(policy["retry_interval"])
            if seconds < floor:
                raise bad_field(
                    f"scheduled.{path}.retry_policy.retry_interval",
                    f"{seconds:g} s is shorter than this service allows ({floor:g} s)",
                )


def duration_seconds(value: str) -> float:
    """A proto3 JSON Duration ("90s", "1.5s") in seconds."""
    return float(str(value).removesuffix("s") or 0)


def deadline_of(rules: ProfileRules, job: Job) -> int:
    """When the service ends the job by its profile's time limit (µs; 0: no limit)."""
    limit = rules.time_limit
    if limit is None or job.state not in limit.live:
        return 0
    value = documents.get_path(job.spec, limit.path)
    if not value:
        return 0
    return job.create_time + int(duration_seconds(value) * 1_000_000)


def check_recurrence_quota(quota: Quota, spec: dict[str, Any], collection: Collection) -> None:
    """A recurrence more frequent than the collection allows."""
    if not quota.max_recurrence_frequency:
        return
    allowed = recurrence.period_minutes(
        {
            "frequency": quota.max_recurrence_frequency,
            "interval": quota.max_recurrence_interval or 1,
        }
    )
    period = recurrence.period_minutes(spec.get("recurrence") or {})
    if allowed is not None and period is not None and period < allowed:
        raise DomainError(
            Reason.RECURRENCE_QUOTA_EXCEEDED,
            f"recurrence every {period} min is more frequent than collection "
            f"{collection.name} allows ({allowed} min)",
            metadata={"quota": "max_recurrence", "limit_minutes": str(allowed)},
            resource=collection.name,
        )


def refresh_schedule(rules: ProfileRules, job: Job) -> None:
    """Recompute the next execution time from the current definition (scheduled)."""
    if not rules.schedules_runs:
        return
    created = datetime.fromtimestamp((job.create_time or now_us()) / 1_000_000, UTC)
    nxt = recurrence.next_run(job.spec, job.status, created, datetime.now(UTC))
    if nxt is None:
        job.status.pop("next_execution_time", None)
    else:
        job.status["next_execution_time"] = nxt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def action_rule(rules: ProfileRules, job: Job, action: Action) -> ActionRule:
    """The rule of an action, refusing unsupported actions, locked and wrong states."""
    rule = rules.actions.get(action)
    if rule is None:
        raise DomainError(
            Reason.OPERATION_NOT_SUPPORTED,
            f"{action.value.lower()} is not an operation of {rules.profile.value} jobs",
            metadata={"profile": rules.profile.value, "operation": action.value},
            resource=job.name,
        )
    check_not_locked(rules, job, action.value.lower())
    if job.state not in rule.allowed_from:
        raise refused(Reason.OPERATION_INVALID_FOR_STATE, job, action.value.lower())
    if rule.requires is not None:
        path, value = rule.requires
        if documents.get_path({rules.spec_key: job.spec}, path) != value:
            raise DomainError(
                Reason.RETRY_NOT_ALLOWED,
                f"{action.value.lower()} needs {path} = {value}",
                metadata={"field": path},
                resource=job.name,
            )
    return rule


def flip(rules: ProfileRules, job: Job, path: str) -> None:
    """Invert a boolean spec field (unset counts as false)."""
    current = documents.get_path({rules.spec_key: job.spec}, path)
    apply_sets(rules, job, ((path, not bool(current)),))


def apply_sets(rules: ProfileRules, job: Job, sets: tuple[tuple[str, object], ...]) -> None:
    """Set spec fields named by profile paths (e.g. `backup.last_result`)."""
    for path, value in sets:
        prefix, _, rest = path.partition(".")
        if prefix == rules.spec_key:
            documents.set_path(job.spec, rest, value)


def settle_target(rules: ProfileRules, state: State) -> State | None:
    """Where a transient (`via`) state settles once no work is in flight."""
    for rule in rules.actions.values():
        if rule.via is state:
            return rule.to
    return None


def work_in_flight(rules: ProfileRules, job: Job, running_tasks: int) -> bool:
    """Running tasks, or a run of the job itself (before deletion, for DELETING jobs)."""
    own = job.previous_state if job.state is State.DELETING else job.state
    return running_tasks > 0 or own in rules.busy_states


def delete_refusal(rules: ProfileRules, state: State, job_type: str | None) -> Reason | None:
    """Why the profile refuses to delete a job in `state` of `job_type` (None: it may go).
    The one place the delete rules are read: check_delete and the bulk deletions."""
    reason = rules.delete_refused.get(state)
    if reason is not None:
        return reason
    if rules.delete_allowed_in is not None and state not in rules.delete_allowed_in:
        return Reason.JOB_NOT_DELETABLE_IN_STATE
    if job_type in rules.not_deletable_types:
        return Reason.JOB_TYPE_NOT_DELETABLE
    return None


def deletable_states(rules: ProfileRules) -> frozenset[State]:
    """The states the profile lets a job be deleted in (the bulk deletions' page condition,
    with `rules.not_deletable_types` for the type)."""
    return frozenset(s for s in rules.states if delete_refusal(rules, s, None) is None)


def check_delete(rules: ProfileRules, job: Job) -> None:
    """Whether the profile lets the job be deleted in its state and of its type."""
    job_type = job_type_of(rules, job)
    reason = delete_refusal(rules, job.state, job_type)
    if reason is None:
        return
    if reason is not Reason.JOB_TYPE_NOT_DELETABLE:
        raise refused(reason, job, "delete")
    raise DomainError(
        Reason.JOB_TYPE_NOT_DELETABLE,
        f"{job_type} jobs cannot be deleted through DeleteJob",
        metadata={"job": job.name, "type": job_type or ""},
        resource=job.name,
    )


def job_type_of(rules: ProfileRules, job: Job) -> str | None:
    """The job's type (transfer type, backup job type), stored for filtering."""
    if rules.type_path is None:
        return None
    value = documents.get_path({rules.spec_key: job.spec}, rules.type_path)
    return str(value) if value is not None else None


def check_job_conditions(rules: ProfileRules, job: Job, pre: Preconditions) -> None:
    """`check_conditions` for an existing job, its type taken from the profile."""
    check_conditions(job, pre, kind=job_type_of(rules, job) if pre.types else None)


def _strip(node: Any, path: tuple[str, ...], remove: bool = True) -> bool:
    """Remove the value at `path` ("[]" walks every list item); True if anything went
    (with `remove` False: True if there is anything to remove, nothing changed)."""
    if not path or not isinstance(node, dict | list):
        return False
    head, rest = path[0], path[1:]
    if head == "[]":
        if not isinstance(node, list):
            return False
        return any([_strip(item, rest, remove) for item in node])
    if not isinstance(node, dict) or head not in node:
        return False
    if not rest:
        if remove:
            del node[head]
        return True
    return _strip(node[head], rest, remove)


def strip_input_only(rules: ProfileRules, job: Job) -> Job:
    """The job without the fields that are stored but never returned: a copy if it holds
    any (copied only then: most jobs hold none, and reads return them as they are)."""
    paths = [p[1:] for p in INPUT_ONLY_PATHS if p[0] == rules.spec_key]
    if not any([_strip(job.spec, p, remove=False) for p in paths]):
        return job
    spec = copy.deepcopy(job.spec)
    for path in paths:
        _strip(spec, path)
    return dataclasses.replace(job, spec=spec)


def utc_string(micros: int) -> str:
    """RFC 3339 form of a stored time (integer arithmetic: a float rounds
    9999-12-31T23:59:59.999999 up into year 10000)."""
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# a run's history status -> the result the profile records (backup.last_result)
_RUN_RESULT = {"COMPLETED": "SUCCESS", "FAILED": "FAILED"}


def count_run(
    rules: ProfileRules, job: Job, entry: HistoryEntry, now: int, result: str | None = None
) -> None:
    """What a recorded run changes on its job: the counters, the last execution time, the
    run's result (backup: `result`, else by the entry's status) and the end of the run (the
    profile's run_end)."""
    status = job.status
    status["execution_count"] = int(status.get("execution_count", 0)) + 1
    if entry.status == "FAILED":
        status["failure_count"] = int(status.get("failure_count", 0)) + 1
    status["last_execution_time"] = utc_string(entry.end_time or now)
    result = result or _RUN_RESULT.get(entry.status)
    if rules.run_result_path and result:
        apply_sets(rules, job, ((rules.run_result_path, result),))
    if job.state in rules.run_end:
        transition(job, rules.run_end[job.state], now)
    elif job.state is State.DELETING and job.previous_state in rules.run_end:
        job.previous_state = rules.run_end[job.previous_state or job.state]


def job_key(rules: ProfileRules, job_id: str) -> str:
    """The stored lookup key: ids are case-insensitive in some profiles."""
    return job_id.lower() if rules.case_insensitive_ids else job_id
