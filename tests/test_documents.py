"""Job documents are shared, not deep-copied: set_path and apply_paths copy on write."""

from __future__ import annotations

import copy
from typing import Any

from jobcontrol.service.core import documents


def test_apply_paths_changes_only_its_copy_and_shares_the_untouched_subtrees() -> None:
    spec: dict[str, Any] = {
        "action": {"request": {"uri": "http://a", "headers": {"h": "1"}}},
        "keep": {"x": 1},
    }
    current = {"scheduled": spec, "display_name": "d"}
    patch = {"scheduled": {"action": {"request": {"uri": "http://b"}}}}
    before_current, before_patch = copy.deepcopy(current), copy.deepcopy(patch)
    new = documents.apply_paths(current, patch, ["scheduled.action.request.uri", "display_name"])
    assert new == {
        "scheduled": {
            "action": {"request": {"uri": "http://b", "headers": {"h": "1"}}},
            "keep": {"x": 1},
        }
    }
    assert current == before_current and patch == before_patch
    assert new["scheduled"]["keep"] is spec["keep"]  # shared, not copied
    assert new["scheduled"]["action"]["request"] is not spec["action"]["request"]


def test_set_path_into_a_shared_subtree_leaves_its_other_owners_unchanged() -> None:
    shared = {"schedule": {"enabled": True, "days": ["mon"]}}
    a, b = {"backup": shared}, {"backup": shared}
    documents.set_path(a, "backup.schedule.enabled", False)
    documents.set_path(a, "backup.schedule.days", None)
    documents.set_path(a, "backup.missing.deeper", None)  # removing what is absent: nothing
    assert a == {"backup": {"schedule": {"enabled": False}}}
    assert b == {"backup": {"schedule": {"enabled": True, "days": ["mon"]}}}
    assert shared == {"schedule": {"enabled": True, "days": ["mon"]}}
