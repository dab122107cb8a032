"""What the service does when a job's tasks end or overrun, by the profile's WorkRule:
the job's reactions (terminate once every task completed; the exit options' job action
on a task's final end), a task's own retry limit, and its wall-clock limit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import isodate

# modules, not names: actions -> jobs -> task_end -> actions is a cycle
from jobcontrol.service.core import actions, documents
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.errors import bad_field
from jobcontrol.service.core.model import Action, Job, Task, TaskResult
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.profiles import WORK_KINDS, TaskEndRule, WorkRule, rules_for


def _rule_of(job: Job) -> WorkRule | None:
    return next((r for r in WORK_KINDS.values() if r.profile is job.profile and r.per_task), None)


def _switched(job: Job, switch: tuple[str, object]) -> bool:
    return bool(documents.get_path(job.spec, switch[0]) == switch[1])


def ends_when_done(job: Job) -> bool:
    """Whether the job's spec tells it to end once no task is left waiting or running."""
    work = _rule_of(job)
    rule = work.job_reactions if work is not None else None
    return rule is not None and _switched(job, rule.all_done)


def _exit_options(conditions: Any, exit_code: int | None, failed: bool) -> Any:
    """The exit options matching an exit code (its code, then its range), else the
    default ones for a failure; None when none apply."""
    if not isinstance(conditions, dict):
        return None
    if exit_code is not None:
        for item in conditions.get("exitCodes") or ():
            if isinstance(item, dict) and _integer(item.get("code")) == exit_code:
                return item.get("exitOptions")
        for item in conditions.get("exitCodeRanges") or ():
            if not isinstance(item, dict):
                continue
            start, end = _integer(item.get("start")), _integer(item.get("end"))
            if start is not None and end is not None and start <= exit_code <= end:
                return item.get("exitOptions")
    return conditions.get("default") if failed else None


def exit_action(rule: TaskEndRule, task: Task) -> tuple[Action, str] | None:
    """The job action (and its reason) a task's final end asks for, if any."""
    failed = task.result is TaskResult.FAILURE
    conditions = documents.get_path(task.properties, rule.exit_conditions_key)
    options = _exit_options(conditions, task.exit_code, failed)
    word = options.get("jobAction") if isinstance(options, dict) else None
    if word is None:
        word = rule.failure_action if failed else "none"
    return rule.job_actions.get(str(word).lower())


async def react(ctx: Context, tx: Tx, job: Job, ended: Task | None, now: int) -> None:
    """After a task of `job` ended (`ended`, on its final end) or left (None): the job's
    reaction, if its spec asks for one and its state allows it."""
    work = _rule_of(job)
    rule = work.job_reactions if work is not None else None
    if rule is None or job.state not in rule.live:
        return
    decided = None
    if ended is not None and _switched(job, rule.exit_options):
        decided = exit_action(rule, ended)
    if decided is None and _switched(job, rule.all_done):
        counts = await tx.count_tasks(job.pk or 0)
        if counts.active + counts.running == 0:
            decided = (Action.TERMINATE, rule.all_done_reason)
    if decided is None:
        return
    action, reason = decided
    allowed = rules_for(job.profile).actions.get(action)
    if allowed is not None and job.state in allowed.allowed_from:
        await actions.apply_action(ctx, tx, job, action, now, reason=reason)


def _integer(value: object) -> int | None:
    """A whole number (a Struct holds every number as a float), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def task_retry_limit(rule: WorkRule, job: Job, task: Task) -> int:
    """The retries a task may have (-1: unlimited): its own constraint, else its job's."""
    own = _integer(documents.get_path(task.properties, rule.task_retries_key or ""))
    if own is not None:
        return own
    limit = documents.get_path(job.spec, rule.max_retries_path) if rule.max_retries_path else 0
    return int(limit or 0)


def _duration(value: object) -> dt.timedelta | None:
    """An ISO 8601 duration without years or months (those have no fixed length)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = isodate.parse_duration(value)
    except (isodate.ISO8601Error, ValueError):
        return None
    return parsed if isinstance(parsed, dt.timedelta) and parsed >= dt.timedelta(0) else None


def wall_clock_us(rule: WorkRule, task: Task) -> int:
    """How long (µs) an attempt of the task may run from its start; 0: no limit."""
    limit = _duration(documents.get_path(task.properties, rule.task_wall_clock_key or ""))
    return 0 if limit is None else int(limit / dt.timedelta(microseconds=1))


def check_task_limits(rule: WorkRule, properties: dict[str, Any]) -> None:
    """A task's own limits are well formed: INVALID_FIELD names the property."""
    if rule.task_wall_clock_key:
        value = documents.get_path(properties, rule.task_wall_clock_key)
        if value is not None and _duration(value) is None:
            raise bad_field(
                f"task.properties.{rule.task_wall_clock_key}",
                f"{value!r} is not an ISO 8601 duration (e.g. PT1H30M)",
            )
    if rule.task_retries_key:
        value = documents.get_path(properties, rule.task_retries_key)
        number = _integer(value)
        if value is not None and (number is None or number < -1):
            raise bad_field(
                f"task.properties.{rule.task_retries_key}", "must be an integer, -1 or more"
            )
