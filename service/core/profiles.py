"""The four lifecycle profiles as tables: the only place a lifecycle rule is written."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from jobcontrol.service.core.errors import Reason
from jobcontrol.service.core.model import Action, Profile, Quota, State, TaskState

S = State


class DeleteMode(enum.Enum):
    """Whether DeleteJob removes the job at once or through DELETING and an Operation."""

    IMMEDIATE = "IMMEDIATE"
    ASYNC = "ASYNC"


@dataclass(frozen=True)
class ActionRule:
    """A client action: the states it may start from and where it leads. With `via`, the
    job waits in `via` while it has work in flight, then settles in `to`. `to=None` leaves
    the state alone (the action only sets `sets`)."""

    allowed_from: frozenset[State]
    to: State | None = None
    via: State | None = None
    # spec fields the action sets, as (path, value)
    sets: tuple[tuple[str, object], ...] = ()
    # the action needs this spec field to hold this value, else RETRY_NOT_ALLOWED
    requires: tuple[str, object] | None = None
    # the request's task disposition (requeue / terminate / wait) applies to running tasks
    disposes_tasks: bool = False
    # spec field that records the request's reason (e.g. a terminate reason)
    reason_path: str | None = None
    # a boolean spec field the action inverts (the backup schedule toggle)
    flips: str | None = None


@dataclass(frozen=True)
class FieldRule:
    """Who may change a field: `states` None means whenever the job may be updated at all;
    `immutable` fields are fixed at creation; `only_values` restricts what may be set."""

    states: frozenset[State] | None = None
    immutable: bool = False
    only_values: tuple[object, ...] | None = None


@dataclass(frozen=True)
class ValueRule:
    """What values a field may hold, whenever a create or an update writes it: one of
    `allowed`, or within one of the inclusive `ranges` (None: unbounded on that side)."""

    allowed: tuple[object, ...] | None = None
    ranges: tuple[tuple[int | None, int | None], ...] = ()

    def admits(self, value: object) -> bool:
        """Whether `value` may be stored."""
        if self.allowed is not None and value not in self.allowed:
            return False
        if self.ranges:
            if isinstance(value, bool) or not isinstance(value, int):
                return False
            return any(
                (low is None or value >= low) and (high is None or value <= high)
                for low, high in self.ranges
            )
        return True

    def describe(self) -> str:
        """The rule in words, for the error message."""
        if self.allowed is not None:
            return "one of " + ", ".join(map(str, self.allowed))
        spans = []
        for low, high in self.ranges:
            if low == high:
                spans.append(str(low))
            elif high is None:
                spans.append(f">= {low}")
            elif low is None:
                spans.append(f"<= {high}")
            else:
                spans.append(f"{low}..{high}")
        return " or ".join(spans)


@dataclass(frozen=True)
class ProfileRules:
    """Everything the engine needs to know about one profile."""

    profile: Profile
    spec_key: str
    states: frozenset[State]
    initial: State
    # states that do not count as active (quota) and end a job's journey
    final: frozenset[State]
    # client-settable states through UpdateJob: target -> states it may be set from
    client_states: Mapping[State, frozenset[State]]
    # a client-settable target that needs these spec fields present
    state_requires: Mapping[State, tuple[str, ...]]
    # operator/system transitions: from -> allowed targets
    operator_transitions: Mapping[State, frozenset[State]]
    actions: Mapping[Action, ActionRule]
    # states in which update, replace and every action are refused, with the reason
    update_refused: Mapping[State, Reason]
    # states in which operators (OperatorService) may not move the job either
    operator_refused: Mapping[State, Reason]
    # states in which delete is refused, with the reason (None: see delete_allowed_in)
    delete_refused: Mapping[State, Reason]
    # when set, delete is allowed only in these states (else JOB_NOT_DELETABLE_IN_STATE)
    delete_allowed_in: frozenset[State] | None
    delete_mode: DeleteMode
    delete_cancellable: bool
    # states in which the job itself has work in flight (a run)
    busy_states: frozenset[State]
    # when a run ends (RecordRun): state -> state
    run_end: Mapping[State, State]
    # spec field that records the last run's result (RecordRun)
    run_result_path: str | None
    # updatable spec/job paths and their rules; paths not listed are not updatable
    fields: Mapping[str, FieldRule]
    # fields a job must hold after every create and every update (a replace included)
    required_fields: tuple[str, ...]
    # the values fields may hold (checked when a write sets or changes them)
    values: Mapping[str, ValueRule]
    # creating over an existing job replaces it while it is in one of these states
    replace_existing_in: frozenset[State]
    case_insensitive_ids: bool
    id_pattern: re.Pattern[str]
    client_tasks: bool
    default_quota: Quota = field(default_factory=Quota)
    # spec path holding the job's type (filterable as `type`), and types DeleteJob refuses
    type_path: str | None = None
    not_deletable_types: frozenset[str] = frozenset()
    # status.next_execution_time follows the spec's start time and recurrence
    schedules_runs: bool = False
    # spec paths (string values) that ListJobs filters may compare, e.g.
    # `batch.pool_info.pool_id`
    filter_paths: frozenset[str] = frozenset()
    # the job's own time limit: past it (from its creation) the service applies the action
    time_limit: TimeLimit | None = None
    # the spec field a FULL read (JobView) fills with the job's task statistics, computed
    # when read and never stored (None: the profile's jobs have none)
    statistics_path: str | None = None


@dataclass(frozen=True)
class TimeLimit:
    """A job's time limit: the spec path of a duration counted from the job's creation, the
    states it holds in, and the client action (with its reason) the service applies once
    it passed."""

    path: str
    live: frozenset[State]
    action: Action
    reason: str


# Paths every job has that clients may never write (AIP OUTPUT_ONLY), besides per-profile
# output-only spec paths below. `name` addresses the job and cannot be changed.
OUTPUT_ONLY_PATHS = frozenset(
    {
        "name",
        "uid",
        "previous_state",
        "state_transition_time",
        "previous_state_transition_time",
        "create_time",
        "update_time",
        "delete_time",
        "profile",
        "delete_operation",
        "status",
    }
)
SPEC_OUTPUT_ONLY_PATHS = frozenset(
    {
        "batch.execution_info",
        "batch.statistics",
        "transfer.percent_complete",
        "backup.last_result",
    }
)
# Stored, never returned (AIP INPUT_ONLY).
INPUT_ONLY_PATHS = (
    ("scheduled", "action", "request", "authentication"),
    ("scheduled", "action", "error_action", "request", "authentication"),
    ("transfer", "drives", "[]", "bit_locker_key"),
)

DEFAULT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]{0,127}")
# "no state": for tables that name none (no busy states, nothing replaceable, ...)
NO_STATES = frozenset[State]()

_sched_live = frozenset({S.ENABLED, S.DISABLED})
SCHEDULED = ProfileRules(
    profile=Profile.SCHEDULED,
    spec_key="scheduled",
    states=frozenset({S.ENABLED, S.DISABLED, S.COMPLETED, S.FAULTED}),
    initial=S.ENABLED,
    final=frozenset({S.COMPLETED, S.FAULTED}),
    client_states={S.ENABLED: _sched_live, S.DISABLED: _sched_live},
    state_requires={},
    operator_transitions={
        S.ENABLED: frozenset({S.DISABLED, S.COMPLETED, S.FAULTED}),
        S.DISABLED: frozenset({S.ENABLED, S.COMPLETED, S.FAULTED}),
    },
    actions={
        Action.PAUSE: ActionRule(_sched_live, to=S.DISABLED),
        Action.RESUME: ActionRule(_sched_live, to=S.ENABLED),
    },
    update_refused={S.COMPLETED: Reason.JOB_COMPLETED, S.FAULTED: Reason.JOB_FAULTED},
    operator_refused={},
    delete_refused={},
    delete_allowed_in=None,
    delete_mode=DeleteMode.IMMEDIATE,
    delete_cancellable=False,
    busy_states=NO_STATES,
    run_end={},
    run_result_path=None,
    fields={
        "display_name": FieldRule(),
        "labels": FieldRule(),
        "scheduled.start_time": FieldRule(),
        "scheduled.action": FieldRule(),
        "scheduled.recurrence": FieldRule(),
    },
    required_fields=(),
    values={
        # SECOND: for services whose --scheduler-min-interval is under a minute
        "scheduled.recurrence.frequency": ValueRule(
            allowed=("SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH")
        ),
        # Azure Scheduler's documented bound on retries
        "scheduled.action.retry_policy.retry_count": ValueRule(ranges=((0, 20),)),
        "scheduled.action.error_action.retry_policy.retry_count": ValueRule(ranges=((0, 20),)),
    },
    replace_existing_in=NO_STATES,
    case_insensitive_ids=False,
    id_pattern=DEFAULT_ID,
    client_tasks=False,
    schedules_runs=True,
)

_batch_live = frozenset({S.ACTIVE, S.DISABLING, S.DISABLED, S.ENABLING})
BATCH = ProfileRules(
    profile=Profile.BATCH,
    spec_key="batch",
    states=_batch_live | {S.TERMINATING, S.COMPLETED, S.DELETING},
    initial=S.ACTIVE,
    final=frozenset({S.COMPLETED}),
    client_states={},
    state_requires={},
    operator_transitions={
        S.ACTIVE: frozenset({S.COMPLETED}),
        S.DISABLING: frozenset({S.DISABLED}),
        S.DISABLED: frozenset({S.ENABLING}),
        S.ENABLING: frozenset({S.ACTIVE}),
        S.TERMINATING: frozenset({S.COMPLETED}),
    },
    actions={
        Action.PAUSE: ActionRule(
            frozenset({S.ACTIVE, S.DISABLING, S.DISABLED}),
            to=S.DISABLED,
            via=S.DISABLING,
            disposes_tasks=True,
        ),
        Action.RESUME: ActionRule(frozenset({S.DISABLED}), to=S.ACTIVE),
        Action.TERMINATE: ActionRule(
            _batch_live,
            to=S.COMPLETED,
            via=S.TERMINATING,
            reason_path="batch.execution_info.terminate_reason",
        ),
    },
    update_refused={
        S.COMPLETED: Reason.JOB_COMPLETED,
        S.TERMINATING: Reason.JOB_BEING_TERMINATED,
        S.DELETING: Reason.JOB_BEING_DELETED,
    },
    operator_refused={S.DELETING: Reason.JOB_BEING_DELETED},
    delete_refused={S.DELETING: Reason.JOB_BEING_DELETED},
    delete_allowed_in=None,
    delete_mode=DeleteMode.ASYNC,
    delete_cancellable=False,
    busy_states=NO_STATES,
    run_end={},
    run_result_path=None,
    fields={
        "display_name": FieldRule(),
        "labels": FieldRule(),
        "batch.priority": FieldRule(),
        "batch.max_parallel_tasks": FieldRule(),
        "batch.allow_task_preemption": FieldRule(),
        "batch.constraints": FieldRule(),
        "batch.pool_info": FieldRule(states=frozenset({S.DISABLED})),
        "batch.on_all_tasks_complete": FieldRule(),
        "batch.on_task_failure": FieldRule(immutable=True),
        "batch.metadata": FieldRule(),
        "batch.network_configuration": FieldRule(),
        "batch.uses_task_dependencies": FieldRule(immutable=True),
        "batch.job_manager_task": FieldRule(immutable=True),
        "batch.job_preparation_task": FieldRule(immutable=True),
        "batch.job_release_task": FieldRule(immutable=True),
        "batch.common_environment_settings": FieldRule(immutable=True),
    },
    required_fields=("batch.pool_info",),
    values={
        "batch.priority": ValueRule(ranges=((-1000, 1000),)),
        "batch.max_parallel_tasks": ValueRule(ranges=((-1, -1), (1, None))),
        "batch.constraints.max_task_retry_count": ValueRule(ranges=((-1, None),)),
    },
    replace_existing_in=NO_STATES,
    case_insensitive_ids=True,
    id_pattern=re.compile(r"[A-Za-z0-9_-]{1,64}"),
    client_tasks=True,
    filter_paths=frozenset({"batch.pool_info.pool_id"}),
    time_limit=TimeLimit(
        path="constraints.max_wall_clock_time",
        live=_batch_live,
        action=Action.TERMINATE,
        reason="MaxWallClockTimeExpiry",
    ),
    statistics_path="statistics",
)

_to_packaging = frozenset({S.CREATING, S.SHIPPING, S.RECEIVED, S.TRANSFERRING})
_transfer_live = _to_packaging | {S.PACKAGING}
TRANSFER = ProfileRules(
    profile=Profile.TRANSFER,
    spec_key="transfer",
    states=_transfer_live | {S.COMPLETED, S.CLOSED, S.FAULTED},
    initial=S.CREATING,
    final=frozenset({S.COMPLETED, S.CLOSED}),
    client_states={S.SHIPPING: frozenset({S.CREATING})},
    state_requires={S.SHIPPING: ("transfer.return_address", "transfer.delivery_package")},
    operator_transitions={
        S.CREATING: frozenset({S.FAULTED}),
        S.SHIPPING: frozenset({S.RECEIVED, S.FAULTED}),
        S.RECEIVED: frozenset({S.TRANSFERRING, S.FAULTED}),
        S.TRANSFERRING: frozenset({S.PACKAGING, S.FAULTED}),
        S.PACKAGING: frozenset({S.COMPLETED, S.CLOSED, S.FAULTED}),
    },
    actions={},
    update_refused={},
    operator_refused={},
    delete_refused={},
    delete_allowed_in=frozenset({S.CREATING, S.COMPLETED}),
    delete_mode=DeleteMode.IMMEDIATE,
    delete_cancellable=False,
    busy_states=NO_STATES,
    run_end={},
    run_result_path=None,
    fields={
        "display_name": FieldRule(states=_transfer_live),
        "labels": FieldRule(states=_transfer_live),
        "transfer.type": FieldRule(immutable=True),
        "transfer.location": FieldRule(immutable=True),
        "transfer.return_address": FieldRule(states=_to_packaging),
        "transfer.return_shipping": FieldRule(states=_to_packaging),
        "transfer.delivery_package": FieldRule(states=frozenset({S.CREATING, S.SHIPPING})),
        "transfer.cancel_requested": FieldRule(
            states=frozenset({S.CREATING, S.SHIPPING, S.TRANSFERRING}), only_values=(True,)
        ),
        "transfer.description": FieldRule(states=_transfer_live),
        "transfer.drives": FieldRule(states=frozenset({S.CREATING})),
    },
    required_fields=("transfer.type", "transfer.location"),
    values={},
    replace_existing_in=frozenset({S.CREATING}),
    case_insensitive_ids=False,
    id_pattern=DEFAULT_ID,
    client_tasks=False,
    default_quota=Quota(max_active_jobs=20),
    type_path="transfer.type",
)

_backup_live = frozenset({S.IDLE, S.RUNNING})
BACKUP = ProfileRules(
    profile=Profile.BACKUP,
    spec_key="backup",
    states=_backup_live | {S.DELETING},
    initial=S.IDLE,
    final=NO_STATES,
    client_states={},
    state_requires={},
    operator_transitions={S.IDLE: frozenset({S.RUNNING}), S.RUNNING: frozenset({S.IDLE})},
    actions={
        Action.START: ActionRule(frozenset({S.IDLE}), to=S.RUNNING),
        Action.STOP: ActionRule(
            frozenset({S.RUNNING}), to=S.IDLE, sets=(("backup.last_result", "FAILED"),)
        ),
        Action.RETRY: ActionRule(
            frozenset({S.IDLE}), to=S.RUNNING, requires=("backup.last_result", "FAILED")
        ),
        Action.PAUSE: ActionRule(_backup_live, sets=(("backup.schedule_enabled", False),)),
        Action.RESUME: ActionRule(_backup_live, sets=(("backup.schedule_enabled", True),)),
        Action.TOGGLE: ActionRule(_backup_live, flips="backup.schedule_enabled"),
    },
    update_refused={S.DELETING: Reason.JOB_BEING_DELETED},
    operator_refused={S.DELETING: Reason.JOB_BEING_DELETED},
    delete_refused={S.DELETING: Reason.JOB_BEING_DELETED},
    delete_allowed_in=None,
    delete_mode=DeleteMode.ASYNC,
    delete_cancellable=True,
    busy_states=frozenset({S.RUNNING}),
    run_end={S.RUNNING: S.IDLE},
    run_result_path="backup.last_result",
    fields={
        "display_name": FieldRule(),
        "labels": FieldRule(),
        "backup.job_type": FieldRule(immutable=True),
        "backup.platform": FieldRule(immutable=True),
        "backup.schedule_enabled": FieldRule(),
        "backup.description": FieldRule(),
    },
    required_fields=("backup.job_type",),
    values={},
    replace_existing_in=NO_STATES,
    # job ids are GUIDs, which Enterprise Manager matches in any case
    case_insensitive_ids=True,
    id_pattern=DEFAULT_ID,
    client_tasks=False,
    type_path="backup.job_type",
    not_deletable_types=frozenset({"NAS", "AGENT"}),
)

# Task transitions (operators and workers): from -> allowed targets.
TASK_TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    TaskState.ACTIVE: frozenset({TaskState.RUNNING, TaskState.COMPLETED}),
    TaskState.RUNNING: frozenset({TaskState.COMPLETED, TaskState.ACTIVE}),
}

PROFILES: Mapping[Profile, ProfileRules] = {
    p.profile: p for p in (SCHEDULED, BATCH, TRANSFER, BACKUP)
}
SPEC_KEYS = frozenset(p.spec_key for p in PROFILES.values())


def rules_for(profile: Profile) -> ProfileRules:
    """The rules of a profile."""
    return PROFILES[profile]


@dataclass(frozen=True)
class WorkRule:
    """A kind of work that workers lease (WorkerService): the profile whose jobs hold it,
    whether an item is a task of the job (else a run of the job itself, made by the
    `started_by` actions), the job states its items may be leased in, the job states in
    which a heartbeat asks the worker to stop, and the spec field bounding retries of
    failed attempts (-1: unlimited; unset: none)."""

    profile: Profile
    per_task: bool
    lease_job_states: frozenset[State]
    cancel_job_states: frozenset[State]
    max_retries_path: str | None = None
    started_by: frozenset[Action] = frozenset()
    # a task's own limits in its properties, over the job's: its retry count, and the
    # time (ISO 8601) an attempt may run from its start before the service ends it
    task_retries_key: str | None = None
    task_wall_clock_key: str | None = None
    # what the job does when its tasks end (None: nothing)
    job_reactions: TaskEndRule | None = None


@dataclass(frozen=True)
class TaskEndRule:
    """How a job reacts to its tasks ending, each reaction switched on by a spec field
    holding a value: once no task is left waiting or running (`all_done`), and on each
    task's final end by the exit options in its properties (`exit_options`), whose job
    action for a matching exit code wins, else `failure_action` for a failure. A
    reaction is a client action (with its reason) of the profile's action table."""

    all_done: tuple[str, object]
    all_done_reason: str
    exit_options: tuple[str, object]
    exit_conditions_key: str
    failure_action: str
    # an exit option's job action -> (the action, its reason); "none" does nothing
    job_actions: Mapping[str, tuple[Action, str]]
    # the job states in which a reaction applies
    live: frozenset[State]


BATCH_TASK = "batch.task"
BACKUP_RUN = "backup.run"
WORK_KINDS: Mapping[str, WorkRule] = {
    BATCH_TASK: WorkRule(
        Profile.BATCH,
        per_task=True,
        lease_job_states=frozenset({S.ACTIVE}),
        cancel_job_states=frozenset({S.TERMINATING, S.DELETING}),
        max_retries_path="constraints.max_task_retry_count",
        task_retries_key="constraints.maxTaskRetryCount",
        task_wall_clock_key="constraints.maxWallClockTime",
        job_reactions=TaskEndRule(
            all_done=("on_all_tasks_complete", "TERMINATE_JOB"),
            all_done_reason="AllTasksComplete",
            exit_options=("on_task_failure", "PERFORM_EXIT_OPTIONS_JOB_ACTION"),
            exit_conditions_key="exitConditions",
            failure_action="terminate",
            # Decision: a disable by exit options requeues running tasks (Batch's
            # DisableJob with disableTasks=requeue, as its ExitOptions documents)
            job_actions={
                "terminate": (Action.TERMINATE, "TaskFailed"),
                "disable": (Action.PAUSE, ""),
            },
            live=frozenset({S.ACTIVE, S.DISABLING, S.DISABLED, S.ENABLING}),
        ),
    ),
    # a run of a backup job: its end (CompleteWork, a non-retryable FailWork) ends the run
    # as RecordRun does; a DELETING job waits for it (K6)
    BACKUP_RUN: WorkRule(
        Profile.BACKUP,
        per_task=False,
        lease_job_states=frozenset({S.RUNNING}),
        cancel_job_states=NO_STATES,
        started_by=frozenset({Action.START, Action.RETRY}),
    ),
}
# a run's CompleteWork result (`result.result`, else by exit code) -> the job's last result
RUN_RESULTS = ("SUCCESS", "WARNING", "FAILED")
