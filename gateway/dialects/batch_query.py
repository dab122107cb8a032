"""Azure Batch query parameters (maxresults, $select, $expand, force, timeOut, paging)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from jobcontrol.gateway.errors import GatewayError, bad_request

__all__ = [
    "JOB_MEMBERS", "MAX_TIMEOUT", "TASK_MEMBERS", "check_single", "decode_expand", "decode_force",
    "decode_page_size", "decode_select", "decode_timeout", "encode_next_link", "project",
]  # fmt: skip

# the members a $select may name (BatchJob, BatchTask)
JOB_MEMBERS = frozenset({
    "id", "displayName", "usesTaskDependencies", "url", "eTag", "lastModified", "creationTime",
    "state", "stateTransitionTime", "previousState", "previousStateTransitionTime",
    "priority", "allowTaskPreemption", "maxParallelTasks", "constraints", "jobManagerTask",
    "jobPreparationTask", "jobReleaseTask", "commonEnvironmentSettings", "poolInfo",
    "onAllTasksComplete", "onTaskFailure", "networkConfiguration", "metadata",
    "executionInfo", "stats",
})  # fmt: skip
TASK_MEMBERS = frozenset({
    "id", "displayName", "url", "eTag", "lastModified", "creationTime", "exitConditions",
    "state", "stateTransitionTime", "previousState", "previousStateTransitionTime",
    "commandLine", "containerSettings", "resourceFiles", "outputFiles", "environmentSettings",
    "affinityInfo", "constraints", "requiredSlots", "userIdentity", "executionInfo",
    "nodeInfo", "multiInstanceSettings", "stats", "dependsOn", "applicationPackageReferences",
})  # fmt: skip
# Batch: "If the value is larger than 30, the default will be used instead"
MAX_TIMEOUT = 30.0


def bad_query(name: str, value: str, why: str) -> GatewayError:
    """400 InvalidQueryParameterValue naming the parameter."""
    return bad_request(
        "INVALID_QUERY",
        f"{name}: {why}",
        QueryParameterName=name,
        QueryParameterValue=value,
        Reason=why,
    )


def _count(raw: str) -> int | None:
    """A decimal Int32-sized count (ASCII digits only), or None."""
    text = raw.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def check_single(pairs: Iterable[tuple[str, str]]) -> None:
    """No parameter given twice (names in any case): Batch defines none that repeats, and a
    repeat could split one signed value (`a,b`) into two that read differently."""
    given = list(pairs)
    counts = Counter(name.lower() for name, _ in given)
    for name, value in given:
        if counts[name.lower()] > 1:
            raise bad_query(name, value, "the parameter is given more than once")


def decode_page_size(params: dict[str, str]) -> int:
    """`maxresults`, 1-1000 (1000 when absent)."""
    raw = params.get("maxresults")
    if raw is None:
        return 1000
    size = _count(raw)
    if size is None or not 1 <= size <= 1000:
        raise bad_query("maxresults", raw, "must be an integer from 1 to 1000")
    return size


def decode_select(params: dict[str, str], members: frozenset[str]) -> frozenset[str] | None:
    """The members `$select` keeps (None: all of them); an unknown member is 400."""
    raw = params.get("$select")
    if raw is None:
        return None
    names = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(names - members)
    if unknown or not names:
        raise bad_query("$select", raw, f"not a property: {', '.join(unknown) or '(none)'}")
    return names


def decode_expand(params: dict[str, str]) -> bool:
    """Whether `$expand` asks for the job's `stats` (the one expansion a job has)."""
    raw = params.get("$expand")
    if raw is None:
        return False
    names = {part.strip().lower() for part in raw.split(",") if part.strip()}
    if names != {"stats"}:
        raise bad_query("$expand", raw, "the only expansion is stats")
    return True


def decode_force(params: dict[str, str]) -> bool:
    """`force` (true / false, false when absent)."""
    raw = params.get("force", "false")
    if raw.lower() not in ("true", "false"):
        raise bad_query("force", raw, "must be true or false")
    return raw.lower() == "true"


def decode_timeout(params: dict[str, str]) -> float:
    """`timeOut` in seconds; absent or larger than 30, Batch's default of 30 applies."""
    raw = params.get("timeout")
    if raw is None:
        return MAX_TIMEOUT
    seconds = _count(raw)
    if seconds is None or seconds < 1:
        raise bad_query("timeOut", raw, "must be a positive integer (seconds)")
    return min(float(seconds), MAX_TIMEOUT)


def project(body: dict[str, Any], select: frozenset[str] | None) -> dict[str, Any]:
    """`body` with only the selected members (and its odata.metadata)."""
    if select is None:
        return body
    return {k: v for k, v in body.items() if k in select or k == "odata.metadata"}


def encode_next_link(url: str, query: Iterable[tuple[str, str]], token: str) -> str:
    """The `odata.nextLink` of a page: the request's own query with the next `$skiptoken`."""
    kept = [(k, v) for k, v in query if k.lower() != "$skiptoken"]
    kept.append(("$skiptoken", token))
    return f"{url}?{urlencode(kept, safe='$')}"
