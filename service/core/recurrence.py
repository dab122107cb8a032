"""Next occurrence of a scheduled job, from its start time and recurrence (dateutil)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil import rrule

from jobcontrol.service.core.errors import bad_field

_FREQ = {
    "MINUTE": rrule.MINUTELY,
    "HOUR": rrule.HOURLY,
    "DAY": rrule.DAILY,
    "WEEK": rrule.WEEKLY,
    "MONTH": rrule.MONTHLY,
}
# Minutes per period, to compare a recurrence with a collection's quota.
PERIOD_MINUTES = {"MINUTE": 1, "HOUR": 60, "DAY": 1440, "WEEK": 10080, "MONTH": 43200}
_DAYS = {
    "MONDAY": rrule.MO,
    "TUESDAY": rrule.TU,
    "WEDNESDAY": rrule.WE,
    "THURSDAY": rrule.TH,
    "FRIDAY": rrule.FR,
    "SATURDAY": rrule.SA,
    "SUNDAY": rrule.SU,
}


def parse_time(value: str, field: str) -> datetime:
    """An RFC 3339 string (as proto3 JSON writes Timestamps) as an aware datetime."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad_field(field, f"not an RFC 3339 time: {value!r}") from exc


def period_minutes(recurrence: dict[str, Any]) -> int | None:
    """Length of one recurrence period in minutes, or None without a frequency."""
    freq = recurrence.get("frequency")
    if freq not in PERIOD_MINUTES:
        return None
    return PERIOD_MINUTES[freq] * int(recurrence.get("interval") or 1)


def _periods_to_skip(
    freq: str, interval: int, start: datetime, now: datetime, counted_schedule: bool
) -> int:
    """Whole fixed-length periods between start and now, so rrule does not iterate over
    years of past occurrences (months vary in length and counted schedules count
    occurrences, not periods: those are iterated)."""
    if freq == "MONTH" or counted_schedule or start >= now:
        return 0
    period = timedelta(minutes=interval * PERIOD_MINUTES[freq])
    return max(int((now - start) / period) - 1, 0)


def next_occurrence(spec: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """The first occurrence strictly after `now` (or the start time if still ahead)."""
    now = now or datetime.now(UTC)
    start_raw = spec.get("start_time")
    start = parse_time(start_raw, "scheduled.start_time") if start_raw else None
    recurrence = spec.get("recurrence") or {}
    freq = recurrence.get("frequency")
    if freq not in _FREQ:
        return start if start and start > now else None
    schedule = recurrence.get("schedule") or {}
    interval = int(recurrence.get("interval") or 1)
    dtstart = (start or now).replace(microsecond=0)
    count = int(recurrence.get("count") or 0)
    skipped = _periods_to_skip(freq, interval, dtstart, now, bool(schedule) and count > 0)
    if skipped:
        dtstart += timedelta(minutes=skipped * interval * PERIOD_MINUTES[freq])
        if count:
            count -= skipped
            if count <= 0:
                return None
    kwargs: dict[str, Any] = {"dtstart": dtstart, "interval": interval}
    if count:
        kwargs["count"] = count
    if recurrence.get("end_time"):
        kwargs["until"] = parse_time(recurrence["end_time"], "scheduled.recurrence.end_time")
    if schedule.get("minutes"):
        kwargs["byminute"] = schedule["minutes"]
    if schedule.get("hours"):
        kwargs["byhour"] = schedule["hours"]
    if schedule.get("month_days"):
        kwargs["bymonthday"] = schedule["month_days"]
    days = [_DAYS[d] for d in schedule.get("week_days", []) if d in _DAYS]
    days += [
        _DAYS[o["day"]](int(o.get("occurrence") or 1))
        for o in schedule.get("monthly_occurrences", [])
        if o.get("day") in _DAYS
    ]
    if days:
        kwargs["byweekday"] = days
    try:
        rule = rrule.rrule(_FREQ[freq], **kwargs)  # type: ignore[arg-type]
    except ValueError as exc:
        raise bad_field("scheduled.recurrence", str(exc)) from exc
    return rule.after(now)
