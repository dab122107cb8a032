"""Path templates (google.api.http syntax, AIP-127): parse once, match cheaply.

    Template = "/" Segments [ ":" Verb ]
    Segment  = "*" | "**" | LITERAL | "{" FieldPath [ "=" Segments ] "}"

The same compiler serves the legacy dialects, whose templates are the simple case
(`/jobs/{jobId}`); they may ask for case-insensitive literal segments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class TemplateError(ValueError):
    """A malformed path template (a programming error, found at start-up)."""


@dataclass(frozen=True)
class Template:
    """A compiled template: literal, `*` and `**` segments, variables over spans."""

    source: str
    segments: tuple[str, ...]
    # (field path, first segment index, end index exclusive)
    variables: tuple[tuple[str, int, int], ...]
    verb: str | None
    case_insensitive: bool = False

    @property
    def fixed_length(self) -> bool:
        return "**" not in self.segments

    @property
    def literal_count(self) -> int:
        """How specific the template is (more literals win on ties)."""
        return sum(1 for s in self.segments if s not in ("*", "**"))

    def match(self, segments: list[str], verb: str | None) -> dict[str, str] | None:
        """Variable values (percent-decoded) if `segments` + `verb` fit, else None."""
        if verb != self.verb:
            return None
        if self.fixed_length:
            if len(segments) != len(self.segments):
                return None
            spans = self._match_fixed(segments)
        else:
            spans = self._match_wild(segments)
        if spans is None:
            return None
        values: dict[str, str] = {}
        for field, start, end in self.variables:
            values[field] = "/".join(unquote(s) for s in spans[start:end])
        return values

    def _match_fixed(self, segments: list[str]) -> list[str] | None:
        for want, got in zip(self.segments, segments, strict=True):
            if want == "*":
                if not got:
                    return None
            elif want != got and not (self.case_insensitive and want.lower() == got.lower()):
                return None
        return segments

    def _match_wild(self, segments: list[str]) -> list[str] | None:
        # one "**" at most (google.api.http allows it only last in a variable or path)
        star = self.segments.index("**")
        head, tail = self.segments[:star], self.segments[star + 1 :]
        if len(segments) < len(head) + len(tail) + 1:
            return None
        fixed = Template(self.source, head + tail, (), None, self.case_insensitive)
        split = len(segments) - len(tail)
        if fixed._match_fixed(segments[: len(head)] + segments[split:]) is None:
            return None
        # collapse the "**" span into one element so variable indices stay valid
        return [*segments[: len(head)], "/".join(segments[len(head) : split]), *segments[split:]]


def split_path(path: str) -> tuple[list[str], str | None]:
    """Raw (percent-encoded) path -> segments and the custom verb after the last `:`."""
    body = path[1:] if path.startswith("/") else path
    verb = None
    last_slash = body.rfind("/")
    colon = body.rfind(":")
    if colon > last_slash:
        body, verb = body[:colon], body[colon + 1 :]
    return body.split("/"), verb


def parse(source: str, case_insensitive: bool = False) -> Template:
    """Compile a template string."""
    if not source.startswith("/"):
        raise TemplateError(f"{source!r}: must start with /")
    text = source[1:]
    verb = None
    closing = text.rfind("}")
    colon = text.rfind(":")
    if colon > closing and colon > text.rfind("/"):
        text, verb = text[:colon], text[colon + 1 :]
    segments: list[str] = []
    variables: list[tuple[str, int, int]] = []
    for part in _top_level_split(text):
        if part.startswith("{"):
            if not part.endswith("}"):
                raise TemplateError(f"{source!r}: unclosed variable")
            field, _, pattern = part[1:-1].partition("=")
            if not _FIELD_PATH.fullmatch(field):
                raise TemplateError(f"{source!r}: bad field path {field!r}")
            inner = pattern.split("/") if pattern else ["*"]
            start = len(segments)
            segments.extend(inner)
            variables.append((field, start, len(segments)))
        else:
            segments.append(part)
    if segments.count("**") > 1:
        raise TemplateError(f"{source!r}: more than one **")
    return Template(source, tuple(segments), tuple(variables), verb, case_insensitive)


def _top_level_split(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "/" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts
