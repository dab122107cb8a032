"""Azure Import/Export (classic) JSON, query and error bodies <-> jobcontrol messages."""

from __future__ import annotations

import hashlib
import reprlib
from collections.abc import Mapping, Sequence
from datetime import UTC
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from jobcontrol.gateway.dialects.scheduler_values import decode_depth
from jobcontrol.gateway.errors import GatewayError, bad_request
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

TYPES = {"Import": r.TransferSpec.IMPORT, "Export": r.TransferSpec.EXPORT}
STATES = {
    "Creating": r.CREATING, "Shipping": r.SHIPPING, "Received": r.RECEIVED,
    "Transferring": r.TRANSFERRING, "Packaging": r.PACKAGING, "Completed": r.COMPLETED,
    "Closed": r.CLOSED, "Faulted": r.FAULTED,
}  # fmt: skip
# PascalCase property -> the jobcontrol path it writes (also its update-mask path)
PATHS = {
    "Type": "transfer.type",
    "Location": "transfer.location",
    "State": "state",
    "ReturnAddress": "transfer.return_address",
    "ReturnShipping": "transfer.return_shipping",
    "DeliveryPackage": "transfer.delivery_package",
    "CancelRequested": "transfer.cancel_requested",
    "FriendlyName": "display_name",
    "Description": "transfer.description",
    "PercentComplete": "transfer.percent_complete",
}
# the object-valued properties: PascalCase member -> proto field
OBJECTS: dict[str, dict[str, str]] = {
    "ReturnAddress": {"Name": "name", "Address": "address", "Phone": "phone", "Email": "email"},
    "ReturnShipping": {"CarrierName": "carrier_name",
                       "CarrierAccountNumber": "carrier_account_number"},
    "DeliveryPackage": {"CarrierName": "carrier_name", "TrackingNumber": "tracking_number",
                        "DriveCount": "drive_count", "ShipDate": "ship_date"},
}  # fmt: skip
DRIVE_FIELDS = {"DriveId": "drive_id", "BitLockerKey": "bit_locker_key",
                "ManifestFile": "manifest_file", "State": "state"}  # fmt: skip
# drive members a response shows (BitLockerKey is input only)
DRIVE_SHOWN = ("DriveId", "ManifestFile", "State")
PATCH_MEMBERS = frozenset({"Properties", "DriveList", "Name"})
MAX_TOP = 100
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
# how a refused value is shown in a message: bounded, however long or deep the client's
_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxdict = 2, 40, 40, 4


def collection_id(sub: str, account: str) -> str:
    """The jobcontrol collection of a (subscription, storage account): deterministic."""
    key = f"{sub}\n{account}".encode()
    return "ie-" + hashlib.sha1(key, usedforsecurity=False).hexdigest()


def decode_collection(sub: str, account: str) -> r.Collection:
    """The collection a first Put Job creates for (subscription, account)."""
    labels = {"dialect": "importexport", "subscription": sub, "account": account}
    return r.Collection(profile=r.TRANSFER, labels=labels)


def decode_job(body: Mapping[str, Any], name: str) -> r.Job:
    """A Put Job body as a Job; `Name`, if given, must be the URL's `name`. Required fields
    are the core's to check."""
    decode_depth(body)
    if "Name" in body and body["Name"] != name:
        raise bad_request("INVALID_BODY", "Name differs from the job name in the URL.")
    job = r.Job()
    _decode_into(job, body)
    return job


def decode_patch(body: Mapping[str, Any]) -> tuple[r.Job, list[str]]:
    """An Update Job Properties body as the Job and the mask paths it means; `{}` and
    `{"Properties": {}}` mean no paths (the core still checks the conditions)."""
    decode_depth(body)
    extra = set(body) - PATCH_MEMBERS
    if extra:
        raise bad_request("INVALID_BODY", "The body holds Properties (and DriveList) only.")
    job = r.Job()
    _decode_into(job, body)
    paths = [PATHS[key] for key in body.get("Properties") or {}]
    if "DriveList" in body:
        paths.append("transfer.drives")
    return job, paths


def _decode_into(job: r.Job, body: Mapping[str, Any]) -> None:
    properties = body.get("Properties")
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise bad_request("INVALID_BODY", "Properties must be an object.")
    for key, value in properties.items():
        if key not in PATHS:
            raise bad_request("INVALID_BODY", f"Unknown property {key}.")
        try:
            _decode_property(job, key, value)
        except (TypeError, ValueError) as exc:
            raise bad_request("INVALID_BODY", f"{key}: {exc}") from None
    if "DriveList" in body:
        _decode_drives(job, body["DriveList"])


def _decode_property(job: r.Job, key: str, value: Any) -> None:
    spec = job.transfer
    if key in OBJECTS:
        _decode_object(getattr(spec, PATHS[key].split(".")[1]), OBJECTS[key], value)
    elif key == "Type":
        spec.type = _member(TYPES, value, "Import or Export")
    elif key == "State":
        job.state = _member(STATES, value, "a job state")
    elif key == "CancelRequested":
        if not isinstance(value, bool):
            raise TypeError("must be a boolean")
        spec.cancel_requested = value
    elif key == "PercentComplete":
        spec.percent_complete = _integer(value)
    elif key == "FriendlyName":
        job.display_name = _text(value)
    else:  # Location, Description
        setattr(spec, key.lower(), _text(value))


def _decode_object(target: Any, members: Mapping[str, str], value: Any) -> None:
    if not isinstance(value, dict) or set(value) - set(members):
        raise ValueError(f"must be an object of {', '.join(members)}")
    target.SetInParent()  # an empty object is still the object (it clears the others)
    for member, item in value.items():
        field = members[member]
        setattr(target, field, _integer(item) if field == "drive_count" else _text(item))


def _decode_drives(job: r.Job, drives: Any) -> None:
    if not isinstance(drives, list):
        raise bad_request("INVALID_BODY", "DriveList must be an array.")
    for item in drives:
        if not isinstance(item, dict) or set(item) - set(DRIVE_FIELDS):
            raise bad_request(
                "INVALID_BODY", "DriveList items hold DriveId, BitLockerKey, ManifestFile, State."
            )
        try:
            job.transfer.drives.add(**{DRIVE_FIELDS[k]: _text(v) for k, v in item.items()})
        except TypeError as exc:
            raise bad_request("INVALID_BODY", f"DriveList: {exc}") from None


def _member(table: Mapping[str, int], value: Any, what: str) -> Any:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"must be {what}, not {_SHOWN.repr(value)}")
    return table[value]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a string, not {_SHOWN.repr(value)}")
    return value


def _integer(value: Any) -> int:
    """An int32 (the classic API's Int32 properties), also written as a decimal string."""
    digits = value.strip().removeprefix("-") if isinstance(value, str) else ""
    number = isinstance(value, int) and not isinstance(value, bool)
    if not number and not (digits.isascii() and digits.isdigit() and len(digits) <= 10):
        raise TypeError(f"must be an integer, not {_SHOWN.repr(value)}")
    found = int(value)
    if not _INT32_MIN <= found <= _INT32_MAX:
        raise ValueError(f"out of range ({_INT32_MIN} to {_INT32_MAX}): {_SHOWN.repr(found)}")
    return found


def encode_job(job: r.Job) -> dict[str, Any]:
    """The classic job JSON (absent objects omitted, BitLockerKey never shown)."""
    spec = job.transfer
    props: dict[str, Any] = {
        "Type": _name_of(TYPES, spec.type, "Import"),
        "State": _name_of(STATES, job.state, "Creating"),
        "Location": spec.location,
    }
    for key, members in OBJECTS.items():
        field = PATHS[key].split(".")[1]
        if spec.HasField(field):  # type: ignore[arg-type]
            message = getattr(spec, field)
            props[key] = {name: getattr(message, f) for name, f in members.items()
                          if getattr(message, f) not in ("", 0)}  # fmt: skip
    props["CancelRequested"] = spec.cancel_requested
    if job.display_name:
        props["FriendlyName"] = job.display_name
    if spec.description:
        props["Description"] = spec.description
    props["PercentComplete"] = spec.percent_complete
    out: dict[str, Any] = {"Name": job.name.rsplit("/", 1)[-1], "Properties": props}
    if spec.drives:
        out["DriveList"] = [
            {name: getattr(d, DRIVE_FIELDS[name]) for name in DRIVE_SHOWN} for d in spec.drives
        ]
    return out


def _name_of(table: Mapping[str, int], value: int, default: str) -> str:
    return next((k for k, v in table.items() if v == value), default)


def encode_job_headers(job: r.Job, url: str) -> list[tuple[str, str]]:
    """ETag (weak), Last-Modified and DataServiceId (`url`, the job's address)."""
    modified = job.update_time.ToDatetime(tzinfo=UTC)
    return [
        ("etag", f'W/"{job.etag}"'),
        ("last-modified", format_datetime(modified, usegmt=True)),
        ("dataserviceid", url),
    ]


def decode_filter(query: Mapping[str, str]) -> r.Filter | None:
    """`type` (Import|Export) and `states` (a comma list, case-sensitive) as a structured
    filter: values are data, never spliced into filter text."""
    clauses: list[r.Filter] = []
    if "type" in query:
        if query["type"] not in TYPES:
            raise bad_request("INVALID_QUERY", f"type must be Import or Export: {query['type']}")
        clauses.append(_equal("type", query["type"].upper()))
    if "states" in query:
        names = [s.strip() for s in query["states"].split(",") if s.strip()]
        unknown = [n for n in names if n not in STATES]
        if unknown or not names:
            raise bad_request("INVALID_QUERY", f"unknown states: {unknown or query['states']}")
        states = [_equal("state", r.State.Name(STATES[n])) for n in dict.fromkeys(names)]
        clauses.append(_one_of(states, "any"))
    return _one_of(clauses, "all") if clauses else None


def _equal(field: str, text: str) -> r.Filter:
    return r.Filter(comparison=r.Comparison(field=field, operator=r.Comparison.EQUAL, text=text))


def _one_of(items: Sequence[r.Filter], kind: str) -> r.Filter:
    if len(items) == 1:
        return items[0]
    group = r.FilterList(filters=items)
    return r.Filter(all=group) if kind == "all" else r.Filter(any=group)


def decode_list_query(query: Mapping[str, str], parent: str) -> pb.ListJobsRequest:
    """List Jobs' query (`type`, `states`, `$top` 1-100, `$skiptoken`) as a ListJobs
    request; a collection never written to lists as empty."""
    try:
        top = int(query.get("$top", str(MAX_TOP)))
    except ValueError:
        raise bad_request("INVALID_QUERY", "$top must be an integer") from None
    if not 1 <= top <= MAX_TOP:
        raise bad_request("INVALID_QUERY", f"$top must be 1-{MAX_TOP}")
    request = pb.ListJobsRequest(
        parent=parent, page_size=top, page_token=query.get("$skiptoken", ""), allow_missing=True
    )
    found = decode_filter(query)
    if found is not None:
        request.structured_filter.CopyFrom(found)
    return request


def encode_job_list(reply: pb.ListJobsResponse, next_link: str | None) -> dict[str, Any]:
    """`{"value": [...], "odata.nextLink"}` (the link only while more pages follow)."""
    body: dict[str, Any] = {"value": [encode_job(j) for j in reply.jobs]}
    if next_link is not None:
        body["odata.nextLink"] = next_link
    return body


def encode_next_link(url: str, query: Sequence[tuple[str, str]], token: str) -> str | None:
    """The request's own URL with `$skiptoken` set to the next page's token (None: last
    page)."""
    if not token:
        return None
    kept = [(k, v) for k, v in query if k != "$skiptoken"]
    kept.append(("$skiptoken", token))
    return f"{url}?{urlencode(kept, safe='$,')}"


def encode_error(status: int, code: str, message: str, information: str) -> dict[str, Any]:
    """The `odata.error` body of the classic API."""
    return {
        "odata.error": {
            "code": str(status),
            "message": {"lang": "en-US", "value": message},
            "azure.values": [{"ExtendedCode": code}, {"ExtendedInformation": information}],
        }
    }


def error_information(error: GatewayError) -> str:
    """ExtendedInformation: the reason of the refusal (the gRPC code where none)."""
    return error.reason or error.code.name
