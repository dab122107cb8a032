"""BatchError bodies and their `values` detail (which code a failure gets: batch.py's table)."""

from __future__ import annotations

from typing import Any

from jobcontrol.gateway.errors import GatewayError

__all__ = ["ERRORS_METADATA", "encode_error", "error_values", "property_name"]

ERRORS_METADATA = "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
# request fields that come from query parameters
QUERY_FIELDS = {
    "structured_filter": "$filter",
    "page_token": "$skiptoken",
    "page_size": "maxresults",
}
# fields naming the addressed resource: their detail would show jobcontrol's names
ADDRESS_FIELDS = frozenset({"name", "parent", "job.name"})


def property_name(path: str) -> str:
    """The Batch member a core field path came from (`job.batch.max_parallel_tasks` ->
    `maxParallelTasks`, `job_id` -> `id`)."""
    parts = path.split(".")
    parts = parts[1:] if parts[0] in ("job", "task") and len(parts) > 1 else parts
    parts = parts[1:] if parts[0] == "batch" and len(parts) > 1 else parts
    if parts in (["job_id"], ["task_id"]):
        return "id"
    return ".".join(p.split("_")[0] + "".join(w.title() for w in p.split("_")[1:]) for p in parts)


def _violations(details: list[dict[str, Any]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for detail in details:
        for item in detail.get("fieldViolations", ()):
            out.setdefault(item.get("field", ""), item.get("description", ""))
    return out


def error_values(error: GatewayError) -> list[dict[str, str]]:
    """BatchError `values`: the gateway's own details as they are (Batch keys), or the core's
    offending fields as PropertyName (QueryParameterName for query fields) with the reason.
    Nothing else of the server's message travels (its names are jobcontrol's)."""
    own = [{"key": k, "value": v} for k, v in error.metadata.items() if k[:1].isupper()]
    if own:
        return own
    named = error.metadata.get("field") or error.metadata.get("fields") or ""
    why = _violations(error.details)
    out: list[dict[str, str]] = []
    for field in filter(None, named.split(",")):
        if field in ADDRESS_FIELDS:
            continue
        query = QUERY_FIELDS.get(field.split(".")[0])
        key, name = (
            ("QueryParameterName", query) if query else ("PropertyName", property_name(field))
        )
        out.append({"key": key, "value": name})
        reason = why.get(field) or why.get(f"job.{field}")
        if reason:
            out.append({"key": "Reason", "value": reason})
    return out


def encode_error(
    base: str, code: str, message: str, request_id: str, when: str, values: list[dict[str, str]]
) -> dict[str, Any]:
    """A BatchError body; the message ends with the request id and time, as Batch's do."""
    body: dict[str, Any] = {
        "odata.metadata": f"{base}/$metadata#{ERRORS_METADATA}",
        "code": code,
        "message": {"lang": "en-US", "value": f"{message}\nRequestId:{request_id}\nTime:{when}"},
    }
    if values:
        body["values"] = values
    return body
