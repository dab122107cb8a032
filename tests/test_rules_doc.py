"""docs/rules.md and docs/security.md: every rule id is proved by at least one test that
names it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULE_ID = re.compile(r"\b([CSBTKAREWHO]\d{1,2})\b")
DOCS = ("docs/rules.md", "docs/security.md")


def _tested_ids() -> set[str]:
    ids: set[str] = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node) or ""
                ids |= set(RULE_ID.findall(doc.split(":")[0]))
    return ids


def test_every_documented_rule_has_a_test() -> None:
    """Rules: each id in docs/rules.md and docs/security.md opens the docstring of some
    test."""
    for doc in DOCS:
        assert re.search(r"^\| [CSBTKAREWHO]\d{1,2} \|", (ROOT / doc).read_text(), re.M), doc
    text = "".join((ROOT / doc).read_text() for doc in DOCS)
    documented = re.findall(r"^\| ([CSBTKAREWHO]\d{1,2}) \|", text, re.M)
    assert sorted(set(documented) - _tested_ids()) == []
