"""Conditional requests (RFC 9110 If-* headers), written once for every dialect.

A dialect states its rules as data (`ConditionRules`): which header pairs it accepts and
which header of a pair decides, and whether an unmet read condition is 304 or 412.
Reads are decided here against the resource's etag and last-modified time; writes are
handed to the core as an etag plus Preconditions, so that check and write are atomic there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

IF_MATCH = "if-match"
IF_NONE_MATCH = "if-none-match"
IF_MODIFIED_SINCE = "if-modified-since"
IF_UNMODIFIED_SINCE = "if-unmodified-since"
HEADERS = (IF_MATCH, IF_NONE_MATCH, IF_MODIFIED_SINCE, IF_UNMODIFIED_SINCE)


class Outcome(enum.Enum):
    """What an unmet condition means."""

    NOT_MODIFIED = 304
    PRECONDITION_FAILED = 412


class ConditionError(Exception):
    """Headers present in a combination the dialect does not accept."""

    def __init__(self, present: tuple[str, ...]) -> None:
        super().__init__(f"condition headers not supported together: {', '.join(present)}")
        self.present = present


@dataclass(frozen=True)
class ConditionRules:
    """A dialect's conditional-request rules."""

    # pairs allowed together, each with the header that decides
    allowed_pairs: tuple[tuple[frozenset[str], str], ...] = (
        (frozenset({IF_NONE_MATCH, IF_MODIFIED_SINCE}), IF_NONE_MATCH),
        (frozenset({IF_MATCH, IF_UNMODIFIED_SINCE}), IF_MATCH),
    )
    # an unmet If-None-Match / If-Modified-Since on GET or HEAD is 304 (else 412)
    read_not_modified: bool = True


@dataclass(frozen=True)
class Conditions:
    """The one condition that decides a request (or none)."""

    header: str | None = None
    etags: tuple[str, ...] = ()  # "*" alone means any
    when: datetime | None = None

    @property
    def any(self) -> bool:
        return self.etags == ("*",)


def _etags(value: str) -> tuple[str, ...]:
    tags = []
    for raw in value.split(","):
        tag = raw.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            tags.append(tag)
    return tuple(tags)


def _date(value: str) -> datetime | None:
    """An HTTP-date in UTC; an invalid one is ignored, as RFC 9110 asks. That includes a
    date whose zone offset carries it past the calendar (`31 Dec 9999 23:59:59 -2359`)."""
    try:
        parsed = parsedate_to_datetime(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def parse(headers: dict[str, str], rules: ConditionRules) -> Conditions:
    """The deciding condition of a request, or ConditionError for a refused combination."""
    present = tuple(h for h in HEADERS if h in headers)
    if not present:
        return Conditions()
    decider = present[0]
    if len(present) > 1:
        for pair, deciding in rules.allowed_pairs:
            if set(present) == pair:
                decider = deciding
                break
        else:
            raise ConditionError(present)
    value = headers[decider]
    if decider in (IF_MATCH, IF_NONE_MATCH):
        return Conditions(decider, etags=_etags(value))
    when = _date(value)
    return Conditions(decider if when else None, when=when)


def _seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


def met(conditions: Conditions, etag: str | None, last_modified: datetime | None) -> bool:
    """Whether the condition holds for a resource (etag None: it does not exist)."""
    header = conditions.header
    if header is None:
        return True
    if header == IF_MATCH:
        return etag is not None and (conditions.any or etag in conditions.etags)
    if header == IF_NONE_MATCH:
        return etag is None or not (conditions.any or etag in conditions.etags)
    if last_modified is None or conditions.when is None:
        return header == IF_MODIFIED_SINCE
    if header == IF_MODIFIED_SINCE:
        return _seconds(last_modified) > _seconds(conditions.when)
    return _seconds(last_modified) <= _seconds(conditions.when)


def outcome(
    conditions: Conditions,
    method: str,
    etag: str | None,
    last_modified: datetime | None,
    rules: ConditionRules,
) -> Outcome | None:
    """None when the request may proceed, else 304 or 412 (RFC 9110 13.2)."""
    if met(conditions, etag, last_modified):
        return None
    reading = method in ("GET", "HEAD")
    if (
        reading
        and rules.read_not_modified
        and conditions.header
        in (
            IF_NONE_MATCH,
            IF_MODIFIED_SINCE,
        )
    ):
        return Outcome.NOT_MODIFIED
    return Outcome.PRECONDITION_FAILED


def for_write(conditions: Conditions) -> dict[str, object]:
    """Fields of a write request that let the core check the condition atomically:
    `etag` (If-Match with one tag, or `*`: the resource must exist, which decides a
    create-or-replace) and `preconditions` (the others). Several If-Match tags cannot be
    checked atomically and raise ValueError."""
    header = conditions.header
    if header == IF_MATCH:
        if conditions.any:
            return {"etag": "*"}
        if len(conditions.etags) != 1:
            raise ValueError("If-Match with several entity tags on a write")
        return {"etag": conditions.etags[0]}
    if header == IF_NONE_MATCH:
        if len(conditions.etags) != 1:
            raise ValueError("If-None-Match with several entity tags on a write")
        return {"preconditions": {"if_none_match": conditions.etags[0]}}
    if header == IF_MODIFIED_SINCE and conditions.when:
        return {"preconditions": {"if_modified_since": conditions.when}}
    if header == IF_UNMODIFIED_SINCE and conditions.when:
        return {"preconditions": {"if_unmodified_since": conditions.when}}
    return {}
