"""The shared machinery of the dialect seam: conditions, templates, import isolation."""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jobcontrol.gateway import conditional as c
from jobcontrol.gateway import templates

ROOT = Path(__file__).resolve().parent.parent
ETAG = "abc"
MODIFIED = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
VALUES = {
    c.IF_MATCH: f'"{ETAG}"',
    c.IF_NONE_MATCH: f'"{ETAG}"',
    c.IF_MODIFIED_SINCE: "Fri, 02 Jan 2026 03:04:05 GMT",
    c.IF_UNMODIFIED_SINCE: "Fri, 02 Jan 2026 03:04:05 GMT",
}
ALLOWED = {
    frozenset({c.IF_NONE_MATCH, c.IF_MODIFIED_SINCE}): c.IF_NONE_MATCH,
    frozenset({c.IF_MATCH, c.IF_UNMODIFIED_SINCE}): c.IF_MATCH,
}
COMBINATIONS = [
    frozenset(combo) for n in range(5) for combo in itertools.combinations(c.HEADERS, n)
]


@pytest.mark.parametrize("present", COMBINATIONS, ids=lambda p: "+".join(sorted(p)) or "none")
def test_condition_header_combinations(present: frozenset[str]) -> None:
    """Conditions: of the 16 presence combinations, none or one header is accepted,
    If-None-Match + If-Modified-Since (If-None-Match decides) and If-Match +
    If-Unmodified-Since (If-Match decides) are accepted; every other one is refused."""
    headers = {h: VALUES[h] for h in present}
    rules = c.ConditionRules()
    if len(present) <= 1 or present in ALLOWED:
        parsed = c.parse(headers, rules)
        expected = ALLOWED.get(present) or (next(iter(present)) if present else None)
        assert parsed.header == expected
    else:
        with pytest.raises(c.ConditionError):
            c.parse(headers, rules)


@pytest.mark.parametrize(
    ("header", "value", "read", "write"),
    [
        (c.IF_MATCH, '"abc"', None, None),
        (c.IF_MATCH, '"zzz"', c.Outcome.PRECONDITION_FAILED, c.Outcome.PRECONDITION_FAILED),
        (c.IF_MATCH, "*", None, None),
        (c.IF_NONE_MATCH, '"abc"', c.Outcome.NOT_MODIFIED, c.Outcome.PRECONDITION_FAILED),
        (c.IF_NONE_MATCH, "*", c.Outcome.NOT_MODIFIED, c.Outcome.PRECONDITION_FAILED),
        (c.IF_NONE_MATCH, 'W/"zzz", "yyy"', None, None),
        (c.IF_MODIFIED_SINCE, "Fri, 02 Jan 2026 03:04:05 GMT", c.Outcome.NOT_MODIFIED,
         c.Outcome.PRECONDITION_FAILED),
        (c.IF_MODIFIED_SINCE, "Fri, 02 Jan 2026 03:04:04 GMT", None, None),
        (c.IF_MODIFIED_SINCE, "not a date", None, None),
        (c.IF_UNMODIFIED_SINCE, "Fri, 02 Jan 2026 03:04:05 GMT", None, None),
        (c.IF_UNMODIFIED_SINCE, "Fri, 02 Jan 2026 03:04:04 GMT", c.Outcome.PRECONDITION_FAILED,
         c.Outcome.PRECONDITION_FAILED),
    ],
)  # fmt: skip
def test_condition_outcomes_for_reads_and_writes(
    header: str, value: str, read: c.Outcome | None, write: c.Outcome | None
) -> None:
    """Conditions: unmet If-None-Match / If-Modified-Since on GET is 304, every other
    unmet condition is 412; times compare in whole seconds; invalid dates are ignored."""
    rules = c.ConditionRules()
    conditions = c.parse({header: value}, rules)
    assert c.outcome(conditions, "GET", ETAG, MODIFIED, rules) == read
    assert c.outcome(conditions, "PATCH", ETAG, MODIFIED, rules) == write


def test_condition_rules_may_answer_412_for_reads_too() -> None:
    """Conditions: a dialect can make every unmet condition 412 (Import/Export)."""
    rules = c.ConditionRules(read_not_modified=False)
    conditions = c.parse({c.IF_NONE_MATCH: f'"{ETAG}"'}, rules)
    assert c.outcome(conditions, "GET", ETAG, MODIFIED, rules) is c.Outcome.PRECONDITION_FAILED


def test_conditions_for_writes_become_core_preconditions() -> None:
    """Conditions: writes carry the condition to the core (etag / Preconditions), so that
    the check and the write are one transaction."""
    rules = c.ConditionRules()
    assert c.for_write(c.parse({c.IF_MATCH: '"abc"'}, rules)) == {"etag": "abc"}
    assert c.for_write(c.parse({c.IF_MATCH: "*"}, rules)) == {"etag": "*"}
    assert c.for_write(c.parse({c.IF_NONE_MATCH: "*"}, rules)) == {
        "preconditions": {"if_none_match": "*"}
    }
    since = c.for_write(c.parse({c.IF_UNMODIFIED_SINCE: VALUES[c.IF_UNMODIFIED_SINCE]}, rules))
    assert since == {"preconditions": {"if_unmodified_since": MODIFIED.replace(microsecond=0)}}
    with pytest.raises(ValueError):
        c.for_write(c.parse({c.IF_MATCH: '"a", "b"'}, rules))


def test_case_insensitive_fixed_segments_keep_id_case() -> None:
    """Templates: a dialect's fixed segments match in any case; ids keep theirs."""
    template = templates.parse(
        "/{sub}/cloudServices/{cs}/resources/scheduler/~/jobCollections/{jc}/jobs/{job}",
        case_insensitive=True,
    )
    segments, verb = templates.split_path(
        "/Sub1/CLOUDSERVICES/MyCs/Resources/SCHEDULER/~/jobcollections/Jc/jobs/Job%201"
    )
    assert template.match(segments, verb) == {"sub": "Sub1", "cs": "MyCs", "jc": "Jc",
                                              "job": "Job 1"}  # fmt: skip
    exact = templates.parse("/jobs/{jobId}")
    assert exact.match(*templates.split_path("/JOBS/x")) is None


def test_templates_support_wildcards_and_verbs() -> None:
    """Templates: `*`, `**`, nested field paths and custom verbs (AIP-127)."""
    t = templates.parse("/v1/{name=operations/**}:cancel")
    assert t.match(*templates.split_path("/v1/operations/a/b:cancel")) == {"name": "operations/a/b"}
    t = templates.parse("/v1/{job.name=collections/*/jobs/*}")
    assert t.match(*templates.split_path("/v1/collections/c/jobs/j")) == {
        "job.name": "collections/c/jobs/j"
    }
    assert t.match(*templates.split_path("/v1/collections/c/jobs/")) is None
    with pytest.raises(templates.TemplateError):
        templates.parse("/v1/{bad-field}")


def _imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) for every import under a top-level folder."""
    found = []
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found += [(path.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append((path.name, node.module))
    return found


def test_gateway_never_imports_the_service() -> None:
    """Architecture: gateway/ talks to the server only over gRPC; it imports no service/."""
    offenders = [
        f"{name}: {module}"
        for name, module in _imports("gateway")
        if module == "jobcontrol.service" or module.startswith("jobcontrol.service.")
    ]
    assert offenders == []


@pytest.mark.parametrize("folder", ["service", "gateway", "tests", "scripts", "bench"])
def test_code_imports_the_one_jobcontrol_namespace(folder: str) -> None:
    """Packaging: the folders install as jobcontrol.service and jobcontrol.gateway, so no
    code imports a top-level `service` or `gateway` module (there is none installed)."""
    offenders = [
        f"{name}: {module}"
        for name, module in _imports(folder)
        if module.split(".")[0] in ("service", "gateway")
    ]
    assert offenders == []


def test_distribution_installs_only_the_jobcontrol_package() -> None:
    """Packaging: the installed distribution's only top-level import package is jobcontrol."""
    top = importlib.metadata.distribution("jobcontrol").read_text("top_level.txt")
    if top is not None:  # editable installs may not record it
        assert top.split() == ["jobcontrol"]
    assert importlib.util.find_spec("jobcontrol.service.core.engine") is not None
    assert Path(str(importlib.util.find_spec("jobcontrol.gateway").origin)).resolve() == (
        ROOT / "gateway" / "__init__.py"
    )
