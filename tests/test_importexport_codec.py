"""The Azure Import/Export codec and error table as pure functions (no server)."""

from __future__ import annotations

from typing import Any

import grpc
import orjson
import pytest
from google.protobuf import timestamp_pb2

from jobcontrol.gateway.dialects import importexport_codec as codec
from jobcontrol.gateway.dialects.error_table import ErrorRow
from jobcontrol.gateway.dialects.importexport import ImportExportDialect
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.http import Request
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

ADDRESS = {"Name": "Jane", "Address": "1 Main St", "Phone": "+1-425", "Email": "j@e.org"}
SHIPPING = {"CarrierName": "FedEx", "CarrierAccountNumber": "123"}
PACKAGE = {"CarrierName": "FedEx", "TrackingNumber": "1Z9", "DriveCount": 2, "ShipDate": "2015"}
FULL = {
    "Name": "j1",
    "Properties": {
        "Type": "Export",
        "Location": "westus",
        "FriendlyName": "f",
        "Description": "d",
        "ReturnAddress": ADDRESS,
        "ReturnShipping": SHIPPING,
        "DeliveryPackage": PACKAGE,
        "CancelRequested": True,
    },
    "DriveList": [{"DriveId": "WD-1", "BitLockerKey": "k", "ManifestFile": "m", "State": "s"}],
}


def full_job() -> r.Job:
    """FULL as a Job."""
    return r.Job(
        display_name="f",
        transfer=r.TransferSpec(
            type=r.TransferSpec.EXPORT,
            location="westus",
            description="d",
            return_address=r.ReturnAddress(
                name="Jane", address="1 Main St", phone="+1-425", email="j@e.org"
            ),
            return_shipping=r.ReturnShipping(carrier_name="FedEx", carrier_account_number="123"),
            delivery_package=r.DeliveryPackage(
                carrier_name="FedEx", tracking_number="1Z9", drive_count=2, ship_date="2015"
            ),
            cancel_requested=True,
            drives=[r.Drive(drive_id="WD-1", bit_locker_key="k", manifest_file="m", state="s")],
        ),
    )


# --- collections --------------------------------------------------------------------------


def test_collection_id_is_pinned() -> None:
    """Collections: the id of (subscription, account) never changes (stored data uses it)
    and differs per account."""
    assert codec.collection_id("mysub", "myacct") == "ie-0dee2974affee6324db37d57b904a1fae60b47a1"
    assert codec.collection_id("mysub", "other") != codec.collection_id("mysub", "myacct")
    assert ImportExportDialect.collection_id("mysub", "myacct") == codec.collection_id(
        "mysub", "myacct"
    )


def test_decode_collection_is_a_labelled_transfer_collection() -> None:
    """Collections: the first Put Job's template is a transfer collection with the
    account's labels."""
    assert codec.decode_collection("s", "a") == r.Collection(
        profile=r.TRANSFER, labels={"dialect": "importexport", "subscription": "s", "account": "a"}
    )


# --- jobs in -------------------------------------------------------------------------------


def test_decode_job_reads_every_property() -> None:
    """Put Job: every property and the drive list land in their fields."""
    assert codec.decode_job(FULL, "j1") == full_job()


def test_decode_job_minimal_sets_no_objects() -> None:
    """Put Job: Name is optional; absent objects stay absent (the core checks required
    fields)."""
    job = codec.decode_job({"Properties": {"Type": "Import", "Location": "w"}}, "j1")
    assert job == r.Job(transfer=r.TransferSpec(type=r.TransferSpec.IMPORT, location="w"))
    assert codec.decode_job({}, "j1") == r.Job()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Name": "other"}, "Name differs from the job name in the URL."),
        ({"Properties": []}, "Properties must be an object."),
        ({"Properties": {"Color": 1}}, "Unknown property Color."),
        ({"Properties": {"Type": "import"}}, "Type: must be Import or Export, not 'import'"),
        ({"Properties": {"State": "creating"}}, "State: must be a job state, not 'creating'"),
        ({"Properties": {"CancelRequested": "yes"}}, "CancelRequested: must be a boolean"),
        ({"Properties": {"Location": 5}}, "Location: must be a string, not 5"),
        ({"Properties": {"FriendlyName": None}}, "FriendlyName: must be a string, not None"),
        ({"Properties": {"PercentComplete": True}},
         "PercentComplete: must be an integer, not True"),
        ({"Properties": {"PercentComplete": "x"}},
         "PercentComplete: must be an integer, not 'x'"),
        ({"Properties": {"ReturnAddress": {"Zip": "1"}}},
         "ReturnAddress: must be an object of Name, Address, Phone, Email"),
        ({"Properties": {"ReturnShipping": "FedEx"}},
         "ReturnShipping: must be an object of CarrierName, CarrierAccountNumber"),
        ({"Properties": {"DeliveryPackage": {"DriveCount": [1]}}},
         "DeliveryPackage: must be an integer, not [1]"),
        ({"DriveList": {}}, "DriveList must be an array."),
        ({"DriveList": [{"Serial": "1"}]},
         "DriveList items hold DriveId, BitLockerKey, ManifestFile, State."),
        ({"DriveList": [{"DriveId": 7}]}, "DriveList: must be a string, not 7"),
    ],
)  # fmt: skip
def test_decode_job_refuses_bad_input_with_invalid_body(body: dict[str, Any], message: str) -> None:
    """Bad input: 400 INVALID_BODY naming the property, never a crash."""
    with pytest.raises(GatewayError) as caught:
        codec.decode_job(body, "j1")
    assert (caught.value.code, caught.value.reason, caught.value.message) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_BODY",
        message,
    )


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({}, []),
        ({"Properties": {}}, []),
        ({"Properties": None}, []),
        ({"Name": "j1"}, []),
        ({"Properties": {"FriendlyName": "g"}}, ["display_name"]),
        ({"Properties": {"State": "Shipping", "ReturnAddress": ADDRESS}},
         ["state", "transfer.return_address"]),
        ({"Properties": {"CancelRequested": True}}, ["transfer.cancel_requested"]),
        ({"Properties": {}, "DriveList": []}, ["transfer.drives"]),
        ({"Properties": {"Type": "Import", "PercentComplete": 5}},
         ["transfer.type", "transfer.percent_complete"]),
    ],
)  # fmt: skip
def test_decode_patch_means_exactly_the_given_properties(
    body: dict[str, Any], paths: list[str]
) -> None:
    """Update: the mask is the properties given (the core judges each); an empty body is
    no paths and an empty job, so the core writes nothing but still checks the
    condition."""
    job, got = codec.decode_patch(body)
    assert got == paths
    if not paths:
        assert job == r.Job()


def test_decode_patch_sets_the_given_values() -> None:
    """Update: values land where the mask says."""
    job, _ = codec.decode_patch({"Properties": {"State": "Shipping", "FriendlyName": "g"}})
    assert job == r.Job(state=r.SHIPPING, display_name="g")


def test_decode_patch_refuses_other_members() -> None:
    """Update: a body holds Properties, DriveList (and Name) only."""
    with pytest.raises(GatewayError) as caught:
        codec.decode_patch({"Properties": {}, "Extra": 1})
    assert (caught.value.reason, caught.value.message) == (
        "INVALID_BODY",
        "The body holds Properties (and DriveList) only.",
    )


# --- jobs out ------------------------------------------------------------------------------


def test_encode_job_shows_every_property_but_the_bitlocker_key() -> None:
    """Get Job: the classic JSON; BitLockerKey (input only) is never shown."""
    job = full_job()
    job.name = "collections/c/jobs/j1"
    job.state = r.SHIPPING
    job.transfer.percent_complete = 40
    expected = {
        "Name": "j1",
        "Properties": {**FULL["Properties"], "State": "Shipping", "PercentComplete": 40},
        "DriveList": [{"DriveId": "WD-1", "ManifestFile": "m", "State": "s"}],
    }
    assert codec.encode_job(job) == expected


def test_encode_job_minimal_omits_absent_objects() -> None:
    """Get Job: absent objects, friendly name, description and drives are omitted."""
    job = r.Job(name="collections/c/jobs/j1", state=r.CREATING)
    job.transfer.type = r.TransferSpec.IMPORT
    job.transfer.location = "w"
    assert codec.encode_job(job) == {
        "Name": "j1",
        "Properties": {
            "Type": "Import",
            "State": "Creating",
            "Location": "w",
            "CancelRequested": False,
            "PercentComplete": 0,
        },
    }


def test_decode_then_encode_round_trips() -> None:
    """Codec: what Put Job reads, Get Job shows (but the BitLockerKey)."""
    job = codec.decode_job(FULL, "j1")
    job.name, job.state = "collections/c/jobs/j1", r.CREATING
    shown = codec.encode_job(job)
    assert shown["Properties"] == {**FULL["Properties"], "State": "Creating", "PercentComplete": 0}
    assert shown["DriveList"] == [{"DriveId": "WD-1", "ManifestFile": "m", "State": "s"}]


def test_encode_job_headers() -> None:
    """Responses: a weak ETag, Last-Modified as an HTTP date, DataServiceId the job URL."""
    job = r.Job(etag="e1", update_time=timestamp_pb2.Timestamp(seconds=1_400_000_000))
    assert codec.encode_job_headers(job, "http://h/p/jobs/j1") == [
        ("etag", 'W/"e1"'),
        ("last-modified", "Tue, 13 May 2014 16:53:20 GMT"),
        ("dataserviceid", "http://h/p/jobs/j1"),
    ]


# --- list query ----------------------------------------------------------------------------


def equal(field: str, text: str) -> r.Filter:
    """`field = text` as a structured filter."""
    return r.Filter(comparison=r.Comparison(field=field, operator=r.Comparison.EQUAL, text=text))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, None),
        ({"type": "Import"}, equal("type", "IMPORT")),
        ({"states": "Shipping"}, equal("state", "SHIPPING")),
        ({"states": "Creating, Shipping,Creating"},
         r.Filter(any=r.FilterList(filters=[equal("state", "CREATING"),
                                            equal("state", "SHIPPING")]))),
        ({"type": "Export", "states": "Completed"},
         r.Filter(all=r.FilterList(filters=[equal("type", "EXPORT"),
                                            equal("state", "COMPLETED")]))),
    ],
    ids=["none", "type", "one-state", "states", "type-and-state"],
)  # fmt: skip
def test_decode_filter_builds_structured_filters(
    query: dict[str, str], expected: r.Filter | None
) -> None:
    """List Jobs: type and states become a structured filter (values as data)."""
    assert codec.decode_filter(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"type": "import"}, "type must be Import or Export: import"),
        ({"type": 'Import" OR type = "Export'},
         'type must be Import or Export: Import" OR type = "Export'),
        ({"states": "creating"}, "unknown states: ['creating']"),
        ({"states": "Creating,Bogus"}, "unknown states: ['Bogus']"),
        ({"states": " , "}, "unknown states:  , "),
        ({"$top": "0"}, "$top must be 1-100"),
        ({"$top": "101"}, "$top must be 1-100"),
        ({"$top": "ten"}, "$top must be an integer"),
    ],
)  # fmt: skip
def test_decode_list_query_refuses_bad_values(query: dict[str, str], message: str) -> None:
    """List Jobs: states are case-sensitive and known, type Import or Export, $top 1-100;
    else 400 INVALID_QUERY."""
    with pytest.raises(GatewayError) as caught:
        codec.decode_list_query(query, "collections/c")
    assert (caught.value.reason, caught.value.message) == ("INVALID_QUERY", message)


def test_decode_list_query_pages_and_allows_a_missing_collection() -> None:
    """List Jobs: $top is the page size (default 100), $skiptoken the page token, the
    filter structured; a collection never written to lists as empty."""
    query = {"$top": "7", "$skiptoken": "tok", "states": "Creating", "timeout": "30"}
    assert codec.decode_list_query(query, "collections/c") == pb.ListJobsRequest(
        parent="collections/c",
        page_size=7,
        page_token="tok",
        allow_missing=True,
        structured_filter=equal("state", "CREATING"),
    )
    assert codec.decode_list_query({}, "collections/c") == pb.ListJobsRequest(
        parent="collections/c", page_size=100, allow_missing=True
    )


def test_encode_next_link_replaces_the_skiptoken_and_keeps_the_rest() -> None:
    """List Jobs: odata.nextLink is the request's URL with the next $skiptoken; none on
    the last page."""
    query = [("states", "Creating,Shipping"), ("$skiptoken", "old"), ("$top", "2")]
    link = codec.encode_next_link("http://h/p/jobs", query, "a b")
    assert link == "http://h/p/jobs?states=Creating,Shipping&$top=2&$skiptoken=a+b"
    assert codec.encode_next_link("http://h/p/jobs", query, "") is None


def test_encode_job_list() -> None:
    """List Jobs: {"value": [...]} and the link only when there is one."""
    reply = pb.ListJobsResponse(jobs=[r.Job(name="collections/c/jobs/a")])
    listed = codec.encode_job_list(reply, None)
    assert listed == {"value": [codec.encode_job(reply.jobs[0])]}
    assert codec.encode_job_list(reply, "L")["odata.nextLink"] == "L"


# --- errors --------------------------------------------------------------------------------


def test_encode_error_is_the_classic_odata_error() -> None:
    """Errors: the documented odata.error shape."""
    assert codec.encode_error(409, "X", "why", "R") == {
        "odata.error": {
            "code": "409",
            "message": {"lang": "en-US", "value": "why"},
            "azure.values": [{"ExtendedCode": "X"}, {"ExtendedInformation": "R"}],
        }
    }


TABLE = ImportExportDialect.errors
# the spec's decisions (dialects.md §3): reason -> (HTTP status, ExtendedCode)
DECIDED = {
    "JOB_NOT_FOUND": (404, "JobNotFound"),
    "COLLECTION_NOT_FOUND": (404, "JobNotFound"),
    "JOB_ALREADY_EXISTS": (409, "JobAlreadyExists"),
    "JOB_NOT_DELETABLE_IN_STATE": (409, "JobNotDeletableInCurrentState"),
    "QUOTA_EXCEEDED": (409, "ActiveJobLimitReached"),
    "STATE_NOT_SETTABLE": (400, "InvalidStateTransition"),
    "INVALID_STATE_TRANSITION": (400, "InvalidStateTransition"),
    "SHIPPING_INFO_REQUIRED": (400, "ShippingInformationRequired"),
    "FIELD_VALUE_NOT_ALLOWED": (400, "InvalidPropertyValue"),
    "FIELD_NOT_MUTABLE_IN_STATE": (409, "PropertyNotUpdatableInCurrentState"),
    "ETAG_MISMATCH": (412, "ConditionNotMet"),
    "CONDITION_NOT_MET": (412, "ConditionNotMet"),
    "MULTIPLE_CONDITION_HEADERS": (400, "MultipleConditionHeadersNotSupported"),
    "NOT_ACCEPTABLE": (406, "NotAcceptable"),
    "BODY_TOO_LARGE": (413, "RequestBodyTooLarge"),
    # the Service Management API's code for a certificate not registered for the subscription
    "AUTHENTICATION_FAILED": (403, "AuthenticationFailed"),
}


def error_for(
    key: str, code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
) -> GatewayError:
    """A server error with the reason (and field) of a table key."""
    reason, _, field = key.partition("@")
    return GatewayError(code, "server says", reason, {"field": field} if field else {})


@pytest.mark.parametrize("key", sorted(TABLE.by_reason), ids=str)
def test_every_reason_row_is_found_for_its_reason(key: str) -> None:
    """Error table: each row is what its reason (and field) looks up; the rule reasons
    keep the spec's status and ExtendedCode; a message template fills from the path."""
    row = TABLE.by_reason[key]
    assert TABLE.row(error_for(key)) is row
    reason = key.partition("@")[0]
    if reason in DECIDED:
        assert (row.status, row.code) == DECIDED[reason]
    message = TABLE.message(row, error_for(key), {"name": "J", "account": "A", "sub": "S"})
    assert message == (row.message.format(name="J", account="A") if row.message else "server says")


@pytest.mark.parametrize("code", list(TABLE.by_code), ids=lambda c: c.name)
def test_every_code_row_is_found_for_an_unlisted_reason(code: grpc.StatusCode) -> None:
    """Error table: a reason the table does not list falls back to its gRPC code's row."""
    assert TABLE.row(GatewayError(code, "m", "SOMETHING_ELSE")) is TABLE.by_code[code]


def test_unlisted_code_is_500_internal_error() -> None:
    """Error table: anything else is 500 InternalError."""
    assert TABLE.row(GatewayError(grpc.StatusCode.DATA_LOSS, "m")) == ErrorRow(500, "InternalError")


def test_format_error_fills_the_row_into_the_odata_body() -> None:
    """Errors: format_error is the row's status, the odata body with the filled message
    and the reason as ExtendedInformation, Content-Encoding identity."""
    scope = {"type": "http", "method": "DELETE", "path": "/", "headers": [], "query_string": b""}
    incoming = Incoming(Request(scope, None), "rid", ImportExportDialect())
    incoming.params = {"sub": "S", "account": "A", "name": "j9"}
    error = error_for("JOB_NOT_DELETABLE_IN_STATE")
    row = TABLE.row(error)
    response = ImportExportDialect().format_error(error, row, incoming)
    assert (response.status, response.content_type) == (409, "application/json")
    assert ("content-encoding", "identity") in response.headers
    assert orjson.loads(response.body) == codec.encode_error(
        409,
        "JobNotDeletableInCurrentState",
        "The job j9 can be deleted only in the Creating or Completed state.",
        "JOB_NOT_DELETABLE_IN_STATE",
    )
