"""Azure Batch OData `$filter` -> the core's structured `Filter` (values stay data)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2

from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.v1 import resources_pb2 as r

__all__ = ["JOB_FIELDS", "TASK_FIELDS", "FilterField", "decode_filter"]

C = r.Comparison
EQUALITY = {"eq": C.EQUAL, "ne": C.NOT_EQUAL}
ORDERING = {
    **EQUALITY,
    "gt": C.GREATER,
    "ge": C.GREATER_OR_EQUAL,
    "lt": C.LESS,
    "le": C.LESS_OR_EQUAL,
}
MAX_LENGTH = 4096
# the core refuses larger trees; nesting is bounded so parsing cannot exhaust the stack
MAX_NODES = 256
MAX_DEPTH = 32


@dataclass(frozen=True)
class FilterField:
    """A Batch property a filter may name: the core's field, its operators, and the Batch
    words it takes (lower-case) with their enum names (None: text or time values)."""

    field: str
    operators: Mapping[str, int]
    words: dict[str, str] | None = None
    time: bool = False
    startswith: bool = False
    # `executionInfo/endTime`: rendered as the completion time, so only completed jobs have one
    completed_only: bool = False


def _time(field: str) -> FilterField:
    return FilterField(field, ORDERING, time=True)


def _words(*words: str) -> dict[str, str]:
    """Batch's lower-case enum words and the contract's enum names."""
    return {word: word.upper() for word in words}


_JOB_STATES = _words("active", "disabling", "disabled", "enabling", "terminating", "completed",
                     "deleting")  # fmt: skip


JOB_FIELDS: dict[str, FilterField] = {
    "id": FilterField("id", ORDERING, startswith=True),
    "state": FilterField("state", EQUALITY, _JOB_STATES),
    "previousstate": FilterField("previous_state", EQUALITY, _JOB_STATES),
    "displayname": FilterField("display_name", EQUALITY),
    "creationtime": _time("create_time"),
    "lastmodified": _time("update_time"),
    "statetransitiontime": _time("state_transition_time"),
    # a job's execution starts when it is created (that is how startTime is rendered)
    "executioninfo/starttime": _time("create_time"),
    "executioninfo/endtime": FilterField(
        "state_transition_time", ORDERING, time=True, completed_only=True
    ),
    # the core orders only `id`; poolId takes equality and prefixes
    "executioninfo/poolid": FilterField("batch.pool_info.pool_id", EQUALITY, startswith=True),
}
TASK_FIELDS: dict[str, FilterField] = {
    "id": FilterField("id", ORDERING, startswith=True),
    # Batch's `preparing` has no counterpart in the contract: refused as unsupported
    "state": FilterField("state", EQUALITY, _words("active", "running", "completed")),
    "creationtime": _time("create_time"),
    "lastmodified": _time("update_time"),
    "statetransitiontime": _time("state_transition_time"),
    "executioninfo/result": FilterField("result", EQUALITY, _words("success", "failure")),
}

_TOKEN = re.compile(
    r"\s*(?:(?P<punct>[(),])|(?P<time>datetime'[^']*')|(?P<text>'(?:[^']|'')*')"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_/]*))",
    re.IGNORECASE,
)


def _tokens(text: str, fail: _Fail) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if m is None:
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            raise fail(f"unexpected input at position {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "time":
            value = value[value.index("'") + 1 : -1]
        elif kind == "text":
            value = value[1:-1].replace("''", "'")
        out.append((kind, value))
        pos = m.end()
    return out


class _Fail:
    """Builds the 400 InvalidQueryParameterValue of one `$filter` value."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __call__(self, why: str) -> GatewayError:
        return bad_request(
            "INVALID_QUERY",
            f"$filter: {why}",
            QueryParameterName="$filter",
            QueryParameterValue=self.text,
            Reason=why,
        )


class _Parser:
    """OData precedence: `not` binds tightest, then `and`, then `or`."""

    def __init__(self, text: str, fields: dict[str, FilterField]) -> None:
        self.fail = _Fail(text)
        self.toks = _tokens(text, self.fail)
        self.i = 0
        self.fields = fields
        self.nodes = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def peek_word(self) -> str | None:
        tok = self.peek()
        return tok[1].lower() if tok is not None and tok[0] == "word" else None

    def take(self, what: str) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.fail(f"expected {what} at the end of the filter")
        self.i += 1
        return tok

    def expect(self, punct: str) -> None:
        kind, value = self.take(f"'{punct}'")
        if (kind, value) != ("punct", punct):
            raise self.fail(f"expected '{punct}', got {value!r}")

    def parse(self) -> r.Filter:
        node = self.or_expr()
        tok = self.peek()
        if tok is not None:
            raise self.fail(f"unexpected {tok[1]!r}")
        return node

    def or_expr(self) -> r.Filter:
        items = [self.and_expr()]
        while self.peek_word() == "or":
            self.i += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else self.node(any=r.FilterList(filters=items))

    def and_expr(self) -> r.Filter:
        items = [self.unary()]
        while self.peek_word() == "and":
            self.i += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else self.node(all=r.FilterList(filters=items))

    def unary(self) -> r.Filter:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested more than {MAX_DEPTH} deep")
        try:
            if self.peek_word() == "not":
                self.i += 1
                return self.node(negation=self.unary())
            if self.peek() == ("punct", "("):
                self.i += 1
                node = self.or_expr()
                self.expect(")")
                return node
            if self.peek_word() == "startswith":
                return self.startswith()
            return self.comparison()
        finally:
            self.depth -= 1

    def node(self, **kwargs: object) -> r.Filter:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(f"more than {MAX_NODES} terms")
        return r.Filter(**kwargs)  # type: ignore[arg-type]

    def field(self) -> tuple[str, FilterField]:
        kind, name = self.take("a property name")
        spec = self.fields.get(name.lower()) if kind == "word" else None
        if spec is None:
            raise self.fail(f"{name!r} is not a property this filter supports")
        return name, spec

    def comparison(self) -> r.Filter:
        name, spec = self.field()
        kind, word = self.take(f"an operator after {name}")
        operator = spec.operators.get(word.lower()) if kind == "word" else None
        if operator is None:
            supported = ", ".join(spec.operators)
            raise self.fail(f"{word!r} is not an operator of {name} (supported: {supported})")
        kind, raw = self.take(f"a value after {name} {word}")
        return self.compare(name, spec, operator, kind, raw)

    def startswith(self) -> r.Filter:
        self.i += 1
        self.expect("(")
        name, spec = self.field()
        if not spec.startswith:
            raise self.fail(f"startswith does not apply to {name}")
        self.expect(",")
        kind, raw = self.take("a value")
        if kind != "text":
            raise self.fail(f"startswith takes a quoted string, got {raw!r}")
        self.expect(")")
        node = self.compare(name, spec, C.STARTS_WITH, kind, raw)
        if self.peek_word() != "eq":
            return node
        self.i += 1
        truth = self.peek_word()
        if truth not in ("true", "false"):
            raise self.fail("startswith(...) eq takes true or false")
        self.i += 1
        return node if truth == "true" else self.node(negation=node)

    def compare(self, name: str, spec: FilterField, op: int, kind: str, raw: str) -> r.Filter:
        cmp = C(field=spec.field, operator=op)  # type: ignore[arg-type]
        if spec.time:
            if kind not in ("time", "text"):
                raise self.fail(f"{name} takes a datetime'...' value, got {raw!r}")
            cmp.time.CopyFrom(self.timestamp(name, raw))
        elif kind != "text":
            raise self.fail(f"{name} takes a quoted string value, got {raw!r}")
        elif spec.words is not None:
            found = spec.words.get(raw.lower())
            if found is None:
                raise self.fail(f"{raw!r} is not a {name} value this service supports")
            cmp.text = found
        else:
            cmp.text = raw
        node = self.node(comparison=cmp)
        if not spec.completed_only:
            return node
        done = self.node(comparison=C(field="state", operator=C.EQUAL, text="COMPLETED"))
        return self.node(all=r.FilterList(filters=[done, node]))

    def timestamp(self, name: str, raw: str) -> timestamp_pb2.Timestamp:
        try:
            moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise self.fail(f"{name}: {raw!r} is not an ISO 8601 time") from None
        stamp = timestamp_pb2.Timestamp()
        try:
            # Batch times are UTC; a time without an offset is read as UTC
            stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        except (OverflowError, ValueError):
            raise self.fail(f"{name}: {raw!r} is out of range") from None
        return stamp


def decode_filter(text: str, fields: dict[str, FilterField] = JOB_FIELDS) -> r.Filter | None:
    """An OData `$filter` (eq/ne/gt/ge/lt/le, and/or/not, parentheses, `startswith`,
    `'it''s'` strings, `datetime'...'` times) over Batch property names as the core's
    structured filter; None when empty. Anything else: 400 InvalidQueryParameterValue."""
    if not text.strip():
        return None
    if len(text) > MAX_LENGTH:
        raise _Fail(text[:200])(f"longer than {MAX_LENGTH} characters")
    return _Parser(text, fields).parse()
