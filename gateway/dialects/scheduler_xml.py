"""Service Management XML of the Scheduler dialect (job collections, cloud services,
operation status, errors) <-> jobcontrol.v1 messages, as pure functions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

from defusedxml import ElementTree as SafeET

from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.v1 import resources_pb2 as r

__all__ = [
    "NS", "decode_collection", "encode_availability", "encode_cloud_service", "encode_error",
    "encode_operation", "encode_resource",
]  # fmt: skip

NS = "http://schemas.microsoft.com/windowsazure"
DEFAULT_PLAN = "Standard"
# MaxRecurrence frequencies: the documented sample's `Second` is a quota unit only
FREQUENCIES = {
    "second": r.Recurrence.SECOND, "minute": r.Recurrence.MINUTE, "hour": r.Recurrence.HOUR,
    "day": r.Recurrence.DAY, "week": r.Recurrence.WEEK, "month": r.Recurrence.MONTH,
}  # fmt: skip


# how deep a body's elements may nest (a Resource needs 5)
MAX_DEPTH = 32


def _invalid(message: str) -> GatewayError:
    return bad_request("INVALID_XML", message)


def _child(node: ET.Element | None, name: str) -> ET.Element | None:
    """The first child in the namespace whose name matches `name` in any case (clients
    send `<plan>` as well as `<Plan>`)."""
    if node is None:
        return None
    wanted = f"{{{NS}}}{name}".lower()
    return next((c for c in node if isinstance(c.tag, str) and c.tag.lower() == wanted), None)


def _text(node: ET.Element | None, *path: str) -> str | None:
    for name in path:
        node = _child(node, name)
    return node.text.strip() if node is not None and node.text else None


def _parse(raw: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(raw)
    except Exception as exc:  # defusedxml raises several kinds for bad or hostile XML
        raise _invalid(f"The request body is not valid XML: {exc}") from None
    if root.tag.lower() != f"{{{NS}}}resource":
        raise _invalid(f"The root element must be Resource in the namespace {NS}.")
    stack = [(root, 1)]
    while stack:  # without recursion: the parser took any depth
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _invalid(f"The request body nests elements more than {MAX_DEPTH} deep.")
        stack.extend((child, depth + 1) for child in node)
    return root


def decode_collection(raw: bytes) -> r.Collection:
    """A `<Resource>` body: IntrinsicSettings/Plan and Quota (MaxJobCount,
    MaxRecurrence/Frequency, Interval); an empty body is plan Standard without quota."""
    collection = r.Collection(profile=r.SCHEDULED, plan=DEFAULT_PLAN)
    if not raw.strip():
        return collection
    settings = _child(_parse(raw), "IntrinsicSettings")
    collection.plan = _text(settings, "Plan") or DEFAULT_PLAN
    quota = _child(settings, "Quota")
    count = _text(quota, "MaxJobCount")
    frequency = _text(quota, "MaxRecurrence", "Frequency")
    interval = _text(quota, "MaxRecurrence", "Interval")
    try:
        if count is not None:
            collection.quota.max_job_count = int(count)
        if interval is not None:
            collection.quota.max_recurrence_interval = int(interval)
    except ValueError:  # not a number, or outside int32
        raise _invalid("MaxJobCount and MaxRecurrence/Interval must be integers.") from None
    if frequency is not None:
        value = FREQUENCIES.get(frequency.lower())
        if value is None:
            allowed = ", ".join(f.capitalize() for f in FREQUENCIES)
            raise _invalid(f"Unknown MaxRecurrence Frequency {frequency!r} (allowed: {allowed}).")
        collection.quota.max_recurrence_frequency = value
    return collection


def _el(tag: str, text: object = None, *children: ET.Element) -> ET.Element:
    node = ET.Element(f"{{{NS}}}{tag}")
    if text is not None:
        node.text = str(text)
    node.extend(children)
    return node


def _xml(root: ET.Element) -> bytes:
    # the namespace is the default one, as in the documented bodies (no `ns0:` prefixes)
    ET.register_namespace("", NS)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


def _resource(collection: r.Collection) -> ET.Element:
    quota = collection.quota
    limits = []
    if quota.HasField("max_job_count"):
        limits.append(_el("MaxJobCount", quota.max_job_count))
    if quota.max_recurrence_frequency:
        frequency = r.Recurrence.Frequency.Name(quota.max_recurrence_frequency).capitalize()
        recurrence = [_el("Frequency", frequency)]
        if quota.HasField("max_recurrence_interval"):
            recurrence.append(_el("Interval", quota.max_recurrence_interval))
        limits.append(_el("MaxRecurrence", None, *recurrence))
    name = collection.labels.get("job-collection") or collection.name.rsplit("/", 1)[-1]
    return _el(
        "Resource", None,
        _el("Name", name), _el("ResourceProviderNamespace", "scheduler"),
        _el("Type", "jobcollections"), _el("SchemaVersion", "1.0"), _el("ETag", collection.etag),
        _el("State", "Started"),
        _el("IntrinsicSettings", None, _el("Plan", collection.plan or DEFAULT_PLAN),
            _el("Quota", None, *limits)),
    )  # fmt: skip


def encode_resource(collection: r.Collection) -> bytes:
    """A job collection as its `<Resource>` (Get Job Collection)."""
    return _xml(_resource(collection))


def encode_cloud_service(name: str, collections: Iterable[r.Collection]) -> bytes:
    """A cloud service with its job collections as `<Resources>` (Get Cloud Service)."""
    resources = _el("Resources", None, *(_resource(c) for c in collections))
    return _xml(_el("CloudService", None, _el("Name", name), resources))


def encode_operation(request_id: str, http_status: int, code: str, message: str) -> bytes:
    """Get Operation Status: `ID`, `Status` (Failed when the request had an error code,
    else Succeeded), `HttpStatusCode` and, for a failure, `Error`."""
    children = [
        _el("ID", request_id),
        _el("Status", "Failed" if code else "Succeeded"),
        _el("HttpStatusCode", http_status),
    ]
    if code:
        children.append(_el("Error", None, _el("Code", code), _el("Message", message)))
    return _xml(_el("Operation", None, *children))


def encode_availability(available: bool) -> bytes:
    """Check Name Availability, in the element names the Service Management client reads
    (`AvailabilityResponse/Result`)."""
    return _xml(_el("AvailabilityResponse", None, _el("Result", str(available).lower())))


def encode_error(code: str, message: str) -> bytes:
    """`<Error xmlns=…><Code/><Message/></Error>`."""
    return _xml(_el("Error", None, _el("Code", code), _el("Message", message)))
