"""Resource names and identifiers: parsing and validation."""

from __future__ import annotations

import re

from jobcontrol.service.core.errors import bad_field
from jobcontrol.service.core.profiles import DEFAULT_ID

_SEGMENT = DEFAULT_ID.pattern


def _parse(value: str, field: str, pattern: re.Pattern[str], shape: str) -> tuple[str, ...]:
    match = pattern.fullmatch(value)
    if not match:
        raise bad_field(field, f"must look like {shape}, got {value[:200]!r}")
    return match.groups()


_COLLECTION = re.compile(rf"collections/({_SEGMENT})")
_JOB = re.compile(rf"collections/({_SEGMENT})/jobs/({_SEGMENT})")
_TASK = re.compile(rf"collections/({_SEGMENT})/jobs/({_SEGMENT})/tasks/({_SEGMENT})")


def collection_name(value: str, field: str = "name") -> str:
    """The collection id of `collections/{c}`."""
    return _parse(value, field, _COLLECTION, "collections/{collection}")[0]


def job_name(value: str, field: str = "name") -> tuple[str, str]:
    """(collection id, job id) of `collections/{c}/jobs/{j}`."""
    c, j = _parse(value, field, _JOB, "collections/{collection}/jobs/{job}")
    return c, j


def task_name(value: str, field: str = "name") -> tuple[str, str, str]:
    """(collection id, job id, task id) of a task name."""
    c, j, t = _parse(value, field, _TASK, "collections/{collection}/jobs/{job}/tasks/{task}")
    return c, j, t


def check_id(value: str, field: str, pattern: re.Pattern[str] = DEFAULT_ID) -> str:
    """Validate a client-chosen id."""
    if not pattern.fullmatch(value):
        raise bad_field(field, f"invalid id {value[:200]!r} (allowed: {pattern.pattern})")
    return value
