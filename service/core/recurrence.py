"""Next occurrence of a scheduled job, from its start time and recurrence (dateutil)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil import rrule

from jobcontrol.service.core.errors import bad_field

_FREQ = {
    "SECOND": rrule.SECONDLY,
    "MINUTE": rrule.MINUTELY,
    "HOUR": rrule.HOURLY,
    "DAY": rrule.DAILY,
    "WEEK": rrule.WEEKLY,
    "MONTH": rrule.MONTHLY,
}
# Seconds per period (a month: 30 days), to compare a recurrence with the quotas.
PERIOD_SECONDS = {
    "SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800, "MONTH": 2592000,
}  # fmt: skip
# Minutes per period, to compare a recurrence with a collection's quota.
PERIOD_MINUTES = {freq: seconds / 60 for freq, seconds in PERIOD_SECONDS.items()}
_DAYS = {
    "MONDAY": rrule.MO,
    "TUESDAY": rrule.TU,
    "WEDNESDAY": rrule.WE,
    "THURSDAY": rrule.TH,
    "FRIDAY": rrule.FR,
    "SATURDAY": rrule.SA,
    "SUNDAY": rrule.SU,
}
_FIELD = "scheduled.recurrence"
# the values a schedule may list (0 is no day of a month; rrule refuses or ignores others)
_SCHEDULE_RANGES = {"minutes": (0, 59), "hours": (0, 23), "month_days": (-31, 31)}
# a schedule with a count is counted occurrence by occurrence from its start (its periods
# cannot be skipped), so the count bounds the work of every next-occurrence computation
MAX_COUNTED_OCCURRENCES = 10_000
_WEEK = 7 * 1440


def parse_time(value: str, field: str) -> datetime:
    """An RFC 3339 string (as proto3 JSON writes Timestamps) as an aware datetime."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_field(field, f"not an RFC 3339 time: {value!r}") from exc


def period_minutes(recurrence: dict[str, Any]) -> float | None:
    """Length of one recurrence period in minutes, or None without a frequency."""
    seconds = period_seconds(recurrence)
    if seconds is None:
        return None
    return seconds // 60 if seconds % 60 == 0 else seconds / 60


def period_seconds(recurrence: dict[str, Any]) -> int | None:
    """Length of one recurrence period in seconds, or None without a frequency."""
    freq = recurrence.get("frequency")
    if freq not in PERIOD_SECONDS:
        return None
    return PERIOD_SECONDS[freq] * int(recurrence.get("interval") or 1)


def check(recurrence: dict[str, Any]) -> None:
    """Refuse a recurrence whose numbers no schedule has (a field violation naming the
    field): a negative interval or count, minutes, hours and month days out of their
    ranges, occurrences other than 1..5 and -1..-5, a counted schedule over the bound."""
    for key in ("interval", "count"):
        if int(recurrence.get(key) or 0) < 0:
            raise bad_field(f"{_FIELD}.{key}", "must not be negative")
    schedule = recurrence.get("schedule") or {}
    for key, (low, high) in _SCHEDULE_RANGES.items():
        for value in schedule.get(key) or ():
            if not low <= int(value) <= high or (key == "month_days" and value == 0):
                raise bad_field(f"{_FIELD}.schedule.{key}", f"{value} is not in {low}..{high}")
    for i, item in enumerate(schedule.get("monthly_occurrences") or ()):
        if not 1 <= abs(int(item.get("occurrence") or 1)) <= 5:
            path = f"{_FIELD}.schedule.monthly_occurrences[{i}].occurrence"
            raise bad_field(path, "must be 1..5 or -1..-5")
    if schedule and int(recurrence.get("count") or 0) > MAX_COUNTED_OCCURRENCES:
        raise bad_field(
            f"{_FIELD}.count", f"a schedule counts at most {MAX_COUNTED_OCCURRENCES} occurrences"
        )


def _skip(
    freq: str, interval: int, dtstart: datetime, now: datetime, schedule: dict[str, Any], count: int
) -> tuple[datetime, int, dict[str, Any]]:
    """The start moved by whole periods to just before now, so that rrule does not iterate
    over centuries of past occurrences; the periods skipped; and the rule that keeps a
    monthly start's day. Counted schedules count occurrences, not periods, and months from
    day 29-31 skip the months without that day: counting those, the start stays."""
    if (schedule and count) or dtstart >= now:
        return dtstart, 0, {}
    if freq != "MONTH":
        period = timedelta(seconds=interval * PERIOD_SECONDS[freq])
        skipped = max(int((now - dtstart) / period) - 1, 0)
        return dtstart + skipped * period, skipped, {}
    if count and dtstart.day > 28:
        return dtstart, 0, {}
    months = (now.year - dtstart.year) * 12 + now.month - dtstart.month
    skipped = max(months // interval - 1, 0)
    index = dtstart.year * 12 + dtstart.month - 1 + skipped * interval
    moved = dtstart.replace(year=index // 12, month=index % 12 + 1, day=1)
    rules = _by_rules(schedule)
    keep = {} if {"bymonthday", "byweekday"} & rules.keys() else {"bymonthday": dtstart.day}
    return moved, skipped, keep


def _by_rules(schedule: dict[str, Any]) -> dict[str, Any]:
    """rrule's by* arguments of a schedule."""
    kwargs: dict[str, Any] = {}
    for key, name in (("minutes", "byminute"), ("hours", "byhour"), ("month_days", "bymonthday")):
        if schedule.get(key):
            kwargs[name] = schedule[key]
    days = [_DAYS[d] for d in schedule.get("week_days", []) if d in _DAYS]
    days += [
        _DAYS[o["day"]](int(o.get("occurrence") or 1))
        for o in schedule.get("monthly_occurrences", [])
        if o.get("day") in _DAYS
    ]
    if days:
        kwargs["byweekday"] = days
    return kwargs


def _misses_every_day(freq: str, interval: int, start: datetime, schedule: dict[str, Any]) -> bool:
    """Whether a minute, hour or day recurrence only lands on weekdays its schedule excludes
    (a Tuesday every 7 days from a Monday): rrule would look for one until year 9999."""
    names = [
        *schedule.get("week_days", ()),
        *(o.get("day") for o in schedule.get("monthly_occurrences", ())),
    ]
    wanted = {list(_DAYS).index(d) for d in names if d in _DAYS}
    if freq not in ("MINUTE", "HOUR", "DAY") or not wanted:
        return False
    stride = int(interval * PERIOD_MINUTES[freq]) % _WEEK
    position = start.weekday() * 1440 + start.hour * 60 + start.minute
    for _ in range(_WEEK // math.gcd(stride, _WEEK)):  # the minutes of the week it visits
        if position // 1440 in wanted:
            return False
        position = (position + stride) % _WEEK
    return True


def next_occurrence(spec: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """The first occurrence strictly after `now` (or the start time if still ahead); None
    when there is none (or none before year 10000)."""
    now = now or datetime.now(UTC)
    start_raw = spec.get("start_time")
    start = parse_time(start_raw, "scheduled.start_time") if start_raw else None
    recurrence = spec.get("recurrence") or {}
    freq = recurrence.get("frequency")
    if freq not in _FREQ:
        return start if start and start > now else None
    check(recurrence)
    schedule = recurrence.get("schedule") or {}
    interval = int(recurrence.get("interval") or 1)
    dtstart = (start or now).replace(microsecond=0)
    count = int(recurrence.get("count") or 0)
    try:
        dtstart, skipped, keep = _skip(freq, interval, dtstart, now, schedule, count)
    except OverflowError:  # one period is longer than the calendar: only the start
        return start if start and start > now else None
    if skipped and count:
        count -= skipped
        if count <= 0:
            return None
    if _misses_every_day(freq, interval, dtstart, schedule):
        return None
    kwargs: dict[str, Any] = {"dtstart": dtstart, "interval": interval, **keep}
    kwargs.update(_by_rules(schedule))
    try:
        if recurrence.get("end_time"):
            kwargs["until"] = parse_time(recurrence["end_time"], f"{_FIELD}.end_time")
        rule = rrule.rrule(_FREQ[freq], **kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise bad_field(_FIELD, str(exc)) from exc
    return _first_after(rule, now, count)


def _first_after(rule: rrule.rrule, now: datetime, count: int) -> datetime | None:
    """The first of the rule's occurrences after `now`, if it is among the first `count`
    (0: any); rrule takes no count beside an end (RFC 5545), so it is counted here."""
    try:
        for index, when in enumerate(rule):
            if count and index >= count:
                return None
            if when > now:
                return when
    except (OverflowError, ValueError):  # the next one would be past year 9999
        return None
    return None


def next_run(
    spec: dict[str, Any], status: dict[str, Any], created: datetime, now: datetime
) -> datetime | None:
    """When the job's next occurrence is expected (whole seconds), from its definition and
    what has run (`status.occurrence_count`, `status.last_start_time`), or None when no
    occurrence is left.

    - No recurrence: once, at the start time, or at creation without one or when it had
      passed at creation (at once). Planned again with the same time until it has run, so replanning
      never makes a second occurrence.
    - A recurrence without a start time starts at creation.
    - Without a schedule the next occurrence is the last actual start + the interval (as
      Azure Scheduler recorded it), skipping instances already past; with a schedule,
      the first instance after now; a past start time skips past instances.
    - `count` occurrences or the `end_time` end it."""
    runs = int(status.get("occurrence_count") or 0)
    start_raw = spec.get("start_time")
    start = parse_time(start_raw, "scheduled.start_time") if start_raw else None
    first = (start or created).replace(microsecond=0)
    recurrence = spec.get("recurrence") or {}
    freq = recurrence.get("frequency")
    if freq not in _FREQ:  # a start time that had passed at creation: at once
        return None if runs else max(first, created.replace(microsecond=0))
    check(recurrence)
    count = int(recurrence.get("count") or 0)
    if count and runs >= count:
        return None
    end = recurrence.get("end_time")
    until = parse_time(end, f"{_FIELD}.end_time") if end else None
    last_raw = status.get("last_start_time")
    if runs == 0 and (start is None or start > now):
        nxt: datetime | None = first
    elif last_raw and not recurrence.get("schedule"):
        last = parse_time(last_raw, "status.last_start_time").replace(microsecond=0)
        every = {"frequency": freq, "interval": recurrence.get("interval")}
        nxt = next_occurrence({"start_time": _rfc3339(last), "recurrence": every}, max(now, last))
    else:
        nxt = next_occurrence(spec, now)
    if nxt is not None and until is not None and nxt > until:
        return None
    return nxt


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
