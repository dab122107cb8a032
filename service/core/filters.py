"""A parser for the AIP-160 subset used by List and bulk-delete filters."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Union

from jobcontrol.service.core.errors import Reason, bad_field
from jobcontrol.service.core.model import State

OPS = ("=", "!=", "<", "<=", ">", ">=")


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

# field kinds: "state", "time", "string", or a frozenset of allowed enum names
JOB_FIELDS: dict[str, object] = {
    "id": "string",
    "state": "state",
    "previous_state": "state",
    "type": "string",
    "display_name": "string",
    "create_time": "time",
    "update_time": "time",
    "state_transition_time": "time",
}
HISTORY_FIELDS: dict[str, object] = {
    "status": frozenset({"COMPLETED", "FAILED", "POSTPONED"}),
    "timestamp": "time",
}

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
        if self.peek() == ("word", "NOT"):
            self.take()
            return Not(self.unary())
        if self.peek() == ("lp", "("):
            self.take()
            node = self.and_expr()
            if self.take() != ("rp", ")"):
                raise _fail("missing )")
            return node
        return self.comparison()

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
        return Cmp(field, op, self.convert(field, op, raw))

    def convert(self, field: str, op: str, raw: str) -> object:
        if field.startswith("labels.") and not _LABEL_KEY.fullmatch(field[len("labels.") :]):
            raise _fail(f"label keys in filters are 1-63 of [A-Za-z0-9_./-]: {field!r}")
        kind = "string" if field.startswith("labels.") else self.fields.get(field)
        if kind is None:
            raise _fail(f"unknown field {field!r}")
        if kind == "time":
            try:
                when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError as exc:
                raise _fail(f"{field}: not an RFC 3339 time: {raw!r}") from exc
            if when.tzinfo is None:
                raise _fail(f"{field}: the time needs a zone offset")
            return int(when.timestamp() * 1_000_000)
        if op not in ("=", "!="):
            raise _fail(f"{field} supports only = and !=")
        if kind == "state":
            try:
                return State[raw]
            except KeyError as exc:
                raise _fail(f"{field}: unknown state {raw!r}") from exc
        if isinstance(kind, frozenset) and raw not in kind:
            raise _fail(f"{field}: unknown value {raw!r}")
        return raw


def parse(text: str, fields: dict[str, object] = JOB_FIELDS) -> Node | None:
    """The filter's syntax tree, or None for an empty filter."""
    if not text.strip():
        return None
    if len(text) > 4096:
        raise _fail("longer than 4096 characters")
    return _Parser(text, fields).parse()
