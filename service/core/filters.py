"""Filters: a parser for the AIP-160 subset of List and bulk-delete `filter` strings, and
the checks that the structured form (`structured_filter`) goes through too. Both end as one
tree of `Cmp`/`And`/`Or`/`Not` whose values are converted (State, microseconds, str, bool)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Union

from jobcontrol.service.core.errors import Reason, bad_field
from jobcontrol.service.core.model import Profile, State, TaskResult, TaskState
from jobcontrol.service.core.profiles import PROFILES

OPS = ("=", "!=", "<", "<=", ">", ">=")
# only in structured filters: a string field starts with the value
STARTS_WITH = "starts_with"


@dataclass(frozen=True)
class Cmp:
    """`field op value`, the value already converted (State, microseconds or str)."""

    field: str
    op: str
    value: object


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Union[Cmp, And, Or, Not]  # noqa: UP007 - used at runtime by dataclasses

# field kinds: "state", "time", "string", "bool", or a frozenset of allowed enum names;
# LABELS in a table admits `labels.KEY` (a string)
LABELS = "labels.*"
JOB_FIELDS: dict[str, object] = {
    "id": "string",
    "state": "state",
    "previous_state": "state",
    "type": "string",
    "display_name": "string",
    "create_time": "time",
    "update_time": "time",
    "state_transition_time": "time",
    LABELS: "string",
    # spec paths the profiles make filterable (a job of another profile has no value)
    **{path: "string" for rules in PROFILES.values() for path in rules.filter_paths},
}
HISTORY_FIELDS: dict[str, object] = {
    "status": frozenset({"COMPLETED", "FAILED", "POSTPONED"}),
    "state": "state",
    "timestamp": "time",
}
TASK_FIELDS: dict[str, object] = {
    "id": "string",
    "state": frozenset(s.value for s in TaskState),
    "result": frozenset(r.value for r in TaskResult),
    "display_name": "string",
    "create_time": "time",
    "update_time": "time",
    "state_transition_time": "time",
}
COLLECTION_FIELDS: dict[str, object] = {
    "id": "string",
    "profile": frozenset(p.value for p in Profile),
    LABELS: "string",
}
OPERATION_FIELDS: dict[str, object] = {
    "name": "string",
    "done": "bool",
    "verb": "string",
    "target": "string",
}
# string fields that also order (<, <=, >, >=), e.g. Batch's `id ge 'a'`
ORDERED_STRINGS = frozenset({"id"})
# parentheses and NOTs nest at most this deep (text and structured filters alike): the
# parser and the storage's query compiler recurse once per level
MAX_DEPTH = 32

_LABEL_KEY = re.compile(r"[A-Za-z0-9_./-]{1,63}")
_TOKEN = re.compile(
    r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<op>!=|<=|>=|=|<|>)|(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<word>[^\s()"'=<>!]+))"""
)


def _fail(message: str) -> Exception:
    return bad_field("filter", message, Reason.INVALID_FILTER)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise _fail(f"unexpected input at {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str, fields: dict[str, object]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.fields = fields
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _fail("unexpected end of filter")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.and_expr()
        if self.peek() is not None:
            raise _fail(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def and_expr(self) -> Node:
        items = [self.or_expr()]
        while (tok := self.peek()) is not None and tok != ("rp", ")"):
            if tok == ("word", "AND"):
                self.take()
            items.append(self.or_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def or_expr(self) -> Node:
        items = [self.unary()]
        while self.peek() == ("word", "OR"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def unary(self) -> Node:
        if self.peek() not in (("word", "NOT"), ("lp", "(")):
            return self.comparison()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _fail(f"parentheses and NOT nest deeper than {MAX_DEPTH}")
        if self.take() == ("word", "NOT"):
            node: Node = Not(self.unary())
        else:
            node = self.and_expr()
            if self.take() != ("rp", ")"):
                raise _fail("missing )")
        self.depth -= 1
        return node

    def comparison(self) -> Node:
        kind, field = self.take()
        if kind != "word" or field in ("AND", "OR", "NOT"):
            raise _fail(f"expected a field name, got {field!r}")
        op_kind, op = self.take()
        if op_kind != "op":
            raise _fail(f"expected an operator after {field}, got {op!r}")
        value_kind, raw = self.take()
        if value_kind not in ("word", "str"):
            raise _fail(f"expected a value after {field} {op}")
        return comparison(field, op, raw, self.fields)


def _kind(field: str, fields: dict[str, object]) -> object:
    if field.startswith("labels.") and LABELS in fields:
        if not _LABEL_KEY.fullmatch(field[len("labels.") :]):
            raise _fail(f"label keys in filters are 1-63 of [A-Za-z0-9_./-]: {field!r}")
        return "string"
    kind = fields.get(field) if field != LABELS else None
    if kind is None:
        raise _fail(f"unknown field {field!r}")
    return kind


def comparison(field: str, op: str, raw: str | int, fields: dict[str, object]) -> Cmp:
    """One checked comparison: the field is one of `fields`, the operator suits its kind
    and the value converts (times: RFC 3339 text or microseconds). The parser and the
    structured form both end here."""
    kind = _kind(field, fields)
    if op not in (*OPS, STARTS_WITH):
        raise _fail(f"unknown operator {op!r}")
    if op == STARTS_WITH and kind != "string":
        raise _fail(f"{field} does not support starts_with")
    if kind == "time":
        return Cmp(field, op, _micros(field, raw))
    if isinstance(raw, int):
        raise _fail(f"{field}: expected a text value, not a time")
    ordered = kind == "string" and field in ORDERED_STRINGS
    if op not in ("=", "!=", STARTS_WITH) and not ordered:
        raise _fail(f"{field} supports only = and !=")
    if kind == "state":
        try:
            return Cmp(field, op, State[raw])
        except KeyError as exc:
            raise _fail(f"{field}: unknown state {raw!r}") from exc
    if kind == "bool":
        if raw not in ("true", "false"):
            raise _fail(f"{field}: expected true or false, got {raw!r}")
        return Cmp(field, op, raw == "true")
    if isinstance(kind, frozenset) and raw not in kind:
        raise _fail(f"{field}: unknown value {raw!r}")
    return Cmp(field, op, raw)


def _micros(field: str, raw: str | int) -> int:
    if isinstance(raw, int):
        return raw
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _fail(f"{field}: not an RFC 3339 time: {raw!r}") from exc
    if when.tzinfo is None:
        raise _fail(f"{field}: the time needs a zone offset")
    return int(when.timestamp() * 1_000_000)


def both(first: Node | None, second: Node | None) -> Node | None:
    """Two filters that must both hold (either may be absent)."""
    if first is None or second is None:
        return first or second
    return And((first, second))


def parse(text: str, fields: dict[str, object] = JOB_FIELDS) -> Node | None:
    """The filter's syntax tree, or None for an empty filter."""
    if not text.strip():
        return None
    if len(text) > 4096:
        raise _fail("longer than 4096 characters")
    return _Parser(text, fields).parse()
