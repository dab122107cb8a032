"""Field paths over job documents: update-mask validation and application."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jobcontrol.service.core.errors import Reason, bad_field
from jobcontrol.service.core.profiles import OUTPUT_ONLY_PATHS, SPEC_OUTPUT_ONLY_PATHS, ProfileRules

_MISSING = object()
REPLACE_ALL = "*"


def get_path(doc: dict[str, Any], path: str) -> Any:
    """The value at a dotted path, or None when absent."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set (or, with None, remove) the value at a dotted path, creating parents. Copy on
    write: every dict on the path is replaced by a copy before it changes, so documents
    that share sub-trees with `doc` (the job as read, the request's patch) never change
    under it; only `doc` itself changes in place. Nothing else writes into a document's
    sub-trees, so documents share them instead of deep-copying (a deep copy of a
    scheduled job's spec took 20 us, twice an update)."""
    parts = path.split(".")
    node = doc
    for part in parts[:-1]:
        child = node.get(part)
        if isinstance(child, dict):
            child = dict(child)
        elif value is None:
            return
        else:
            child = {}
        node[part] = child
        node = child
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _is_output_only(path: str) -> bool:
    for blocked in OUTPUT_ONLY_PATHS | SPEC_OUTPUT_ONLY_PATHS:
        if path == blocked or path.startswith(blocked + "."):
            return True
    return False


def resolve_mask(rules: ProfileRules, paths: Iterable[str]) -> list[str]:
    """Validate mask paths against the profile and expand `*` and parent paths into the
    updatable paths they cover. Output-only paths are FORBIDDEN_FIELD; paths the profile
    does not let clients write are INVALID_UPDATE_MASK."""
    resolved: list[str] = []
    for path in paths:
        if path == REPLACE_ALL:
            resolved.extend(["state", *rules.fields])
            continue
        if _is_output_only(path):
            raise bad_field(path, "is output only", Reason.FORBIDDEN_FIELD)
        if path == "state" or any(path == f or path.startswith(f + ".") for f in rules.fields):
            resolved.append(path)
            continue
        children = [f for f in rules.fields if f.startswith(path + ".")]
        if not children:
            raise bad_field(
                f"update_mask.{path}",
                f"not an updatable field of a {rules.profile.value.lower()} job",
                Reason.INVALID_UPDATE_MASK,
            )
        resolved.extend(children)
    return list(dict.fromkeys(resolved))


def governing_field(rules: ProfileRules, path: str) -> str:
    """The profile field rule a (possibly nested) path falls under."""
    for f in rules.fields:
        if path == f or path.startswith(f + "."):
            return f
    return path


def apply_paths(
    current: dict[str, Any], patch: dict[str, Any], paths: Iterable[str]
) -> dict[str, Any]:
    """A copy of `current` with each path taken from `patch` (absent in patch: cleared);
    it shares what the paths do not touch with both (set_path copies on write)."""
    result = dict(current)
    for path in paths:
        set_path(result, path, get_path(patch, path))
    return result
