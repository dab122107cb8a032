"""The Azure Import/Export (classic) dialect over real HTTP to a real gRPC server
(shared/spec/dialects.md section 3; seed 002 Delete Job; docs/rules.md T1-T9)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
import httpx
import pytest

from jobcontrol.gateway.dialects.importexport import ImportExportDialect
from jobcontrol.v1 import job_service_pb2, operator_service_pb2, resources_pb2
from tests.conftest import Clients, RunningGateway, record_rpcs, start_gateway
from tests.helpers import json_error

SUB, ACCT = "mysub", "myacct"
VERSION = "2014-05-01"
HEADERS = {"x-ms-version": VERSION}
HEX32 = re.compile(r"[0-9a-fA-F]{32}")
PAST = "Sat, 01 Jan 2000 00:00:00 GMT"
FUTURE = "Fri, 01 Jan 2100 00:00:00 GMT"
STALE = 'W/"stale-etag"'
NOT_UPDATABLE = "PropertyNotUpdatableInCurrentState"

RETURN_ADDRESS = {
    "Name": "Jane Doe",
    "Address": "1 Main St, Redmond WA 98052",
    "Phone": "+1-425-555-0100",
    "Email": "jane@example.org",
}
RETURN_SHIPPING = {"CarrierName": "FedEx", "CarrierAccountNumber": "123456789"}
DELIVERY_PACKAGE = {
    "CarrierName": "FedEx",
    "TrackingNumber": "1Z999",
    "DriveCount": 1,
    "ShipDate": "2015-05-25",
}
SHIPPABLE = {"ReturnAddress": RETURN_ADDRESS, "DeliveryPackage": DELIVERY_PACKAGE}
OPERATOR_STEPS = {
    "Received": resources_pb2.RECEIVED,
    "Transferring": resources_pb2.TRANSFERRING,
    "Packaging": resources_pb2.PACKAGING,
}


# --- helpers ------------------------------------------------------------------------


def prefix(sub: str = SUB, account: str = ACCT) -> str:
    """The dialect's prefix P."""
    return f"/{sub}/services/importexport/storageaccounts/{account}"


def job_url(name: str) -> str:
    """P/jobs/{name}."""
    return f"{prefix()}/jobs/{name}"


def common(r: httpx.Response, version: str | None = VERSION) -> str:
    """Every response: x-ms-request-id (32 hex), x-ms-version echoed, Date; the id."""
    rid = r.headers.get("x-ms-request-id")
    assert rid is not None and HEX32.fullmatch(rid), (r.status_code, r.headers, r.text)
    if version is not None:
        assert r.headers.get("x-ms-version") == version, r.headers
    assert len(r.headers.get_list("date")) == 1, r.headers
    return rid


def job_headers(r: httpx.Response, name: str) -> str:
    """ETag (weak), Last-Modified, DataServiceId (the job URL); returns the ETag."""
    etag = r.headers.get("etag", "")
    assert etag.startswith('W/"'), r.headers
    assert r.headers.get("last-modified"), r.headers
    dsid = r.headers.get("dataserviceid", "")
    assert re.search(
        rf"/{SUB}/services/importexport/storageaccounts/{ACCT}/jobs/{name}$", dsid, re.I
    ), dsid
    return etag


def json_of(r: httpx.Response, status: int, version: str | None = VERSION) -> Any:
    """A JSON success: status, common headers, application/json, body."""
    assert r.status_code == status, r.text
    common(r, version)
    assert r.headers["content-type"].split(";")[0].strip().lower() == "application/json"
    return r.json()


def error(r: httpx.Response, status: int, version: str | None = VERSION) -> str:
    """An OData error: status, headers, `odata.error` shape; returns the ExtendedCode."""
    assert r.status_code == status, r.text
    common(r, version)
    assert r.headers["content-type"].split(";")[0].strip().lower() == "application/json"
    assert r.headers.get("content-encoding") == "identity", r.headers
    err = r.json()["odata.error"]
    assert err["code"] == str(status), err
    assert err["message"]["lang"] == "en-US", err
    assert isinstance(err["message"]["value"], str) and err["message"]["value"], err
    values = err["azure.values"]
    assert isinstance(values, list), err
    codes = [v["ExtendedCode"] for v in values if "ExtendedCode" in v]
    assert len(codes) == 1, err
    assert any("ExtendedInformation" in v for v in values), err
    code: str = codes[0]
    return code


def odata_error(status: int, code: str, message: str, information: str) -> dict[str, Any]:
    """The whole `odata.error` body of a refusal."""
    return {
        "odata.error": {
            "code": str(status),
            "message": {"lang": "en-US", "value": message},
            "azure.values": [{"ExtendedCode": code}, {"ExtendedInformation": information}],
        }
    }


def refusal(
    r: httpx.Response,
    status: int,
    code: str,
    message: str,
    information: str,
    version: str | None = VERSION,
) -> None:
    """A refusal: its headers and shape (`error`), and exactly this body."""
    assert error(r, status, version) == code
    assert r.json() == odata_error(status, code, message, information)


def assert_empty(r: httpx.Response, status: int) -> None:
    """An empty success."""
    assert r.status_code == status, r.text
    common(r)
    assert r.content == b""


def body(name: str | None = None, type_: str = "Import", **props: Any) -> dict[str, Any]:
    """A Put Job body: Type, Location westus and `props`; Name when given."""
    out: dict[str, Any] = {"Properties": {"Type": type_, "Location": "westus", **props}}
    if name is not None:
        out["Name"] = name
    return out


async def put_job(
    http: httpx.AsyncClient, name: str, type_: str = "Import", **props: Any
) -> dict[str, Any]:
    """Put Job; 201 with job headers."""
    r = await http.put(job_url(name), json=body(name, type_, **props), headers=HEADERS)
    job: dict[str, Any] = json_of(r, 201)
    job_headers(r, name)
    return job


async def get_job(http: httpx.AsyncClient, name: str) -> tuple[dict[str, Any], str]:
    """Get Job; 200; the body and its ETag."""
    r = await http.get(job_url(name), headers=HEADERS)
    job: dict[str, Any] = json_of(r, 200)
    return job, job_headers(r, name)


async def patch(
    http: httpx.AsyncClient, name: str, props: dict[str, Any], **headers: str
) -> httpx.Response:
    """PATCH P/jobs/{name} with `{"Properties": props}`."""
    return await http.patch(
        job_url(name), json={"Properties": props}, headers={**HEADERS, **headers}
    )


def dialect_of(gateway: RunningGateway) -> Any:
    """The Import/Export dialect registered in the gateway."""
    found = [d for d in gateway.app.dialects if type(d).__name__ == "ImportExportDialect"]
    assert len(found) == 1, gateway.app.dialects
    return found[0]


@pytest.fixture
def cid(gateway: RunningGateway) -> str:
    """The gRPC collection id of (SUB, ACCT)."""
    value: str = dialect_of(gateway).collection_id(SUB, ACCT)
    return value


@pytest.fixture
def calls(gateway: RunningGateway) -> list[str]:
    """The upstream calls the gateway makes from now on, by method name."""
    return record_rpcs(gateway.app)


CONDITION_NOT_MET = "The condition specified using HTTP conditional header(s) is not met."


async def collection_of(clients: Clients, account: str) -> resources_pb2.Collection | None:
    """The account's collection over gRPC, or None when there is none."""
    value: str = ImportExportDialect.collection_id(SUB, account)
    request = job_service_pb2.GetCollectionRequest(name=f"collections/{value}")
    try:
        found: resources_pb2.Collection = await clients.jobs.GetCollection(request)
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        return None
    return found


async def transition(clients: Clients, cid: str, name: str, state: int) -> None:
    """An operator transition over gRPC."""
    await clients.operator.TransitionJob(
        operator_service_pb2.TransitionJobRequest(
            name=f"collections/{cid}/jobs/{name}", state=state
        )
    )


async def walk(http: httpx.AsyncClient, clients: Clients, cid: str, name: str, state: str) -> None:
    """Create a shippable job and bring it to `state` (client to Shipping, then operator)."""
    await put_job(http, name, **SHIPPABLE)
    await walk_on(http, clients, cid, name, "Creating", state)


async def walk_on(
    http: httpx.AsyncClient, clients: Clients, cid: str, name: str, now: str, state: str
) -> None:
    """Move an existing job from `now` to `state` along the normal path."""
    path = ["Creating", "Shipping", "Received", "Transferring", "Packaging"]
    if state == now:
        return
    if now == "Creating":
        assert_empty(await patch(http, name, {"State": "Shipping"}), 204)
        now = "Shipping"
    if state == "Faulted":
        await transition(clients, cid, name, resources_pb2.FAULTED)
        return
    for step in path[path.index(now) + 1 :]:
        if now == state:
            return
        await transition(clients, cid, name, OPERATOR_STEPS[step])
        now = step
    if now != state:
        end = resources_pb2.COMPLETED if state == "Completed" else resources_pb2.CLOSED
        await transition(clients, cid, name, end)
    job, _ = await get_job(http, name)
    assert job["Properties"]["State"] == state


# --- routing, headers, negotiation --------------------------------------------------


async def test_fixed_segments_are_case_insensitive_and_names_keep_case(
    http: httpx.AsyncClient,
) -> None:
    """Routing: Services/ImportExport/storageAccounts/Jobs match in any case; names keep case."""
    weird = f"/{SUB}/Services/ImportExport/storageAccounts/{ACCT}/Jobs/Job1"
    r = await http.put(weird, json=body("Job1"), headers=HEADERS)
    assert json_of(r, 201)["Name"] == "Job1"
    job, _ = await get_job(http, "Job1")
    assert job["Name"] == "Job1"
    r = await http.get(
        f"/{SUB}/SERVICES/importexport/STORAGEACCOUNTS/{ACCT}/JOBS/Job1", headers=HEADERS
    )
    assert json_of(r, 200) == job


@pytest.mark.parametrize("version", [None, "", "2013-06-01", "2015-01-01", "garbage"])
async def test_missing_or_unknown_version_header_is_400(
    http: httpx.AsyncClient, version: str | None
) -> None:
    """Headers: x-ms-version absent or not 2014-05-01/2014-11-01 is 400 on every route."""
    await put_job(http, "j1")
    headers = {} if version is None else {"x-ms-version": version}
    for method, path, content in (
        ("GET", f"{prefix()}/jobs", None),
        ("GET", job_url("j1"), None),
        ("PUT", job_url("j2"), b'{"Properties": {"Type": "Import", "Location": "westus"}}'),
        ("PATCH", job_url("j1"), b'{"Properties": {"FriendlyName": "x"}}'),
        ("DELETE", job_url("j1"), None),
    ):
        r = await http.request(method, path, headers=headers, content=content)
        message = "x-ms-version must be 2014-05-01 or 2014-11-01."
        refusal(r, 400, "InvalidXMsVersionHeader", message, "MISSING_VERSION", version=None)
    await get_job(http, "j1")
    error(await http.get(job_url("j2"), headers=HEADERS), 404)


@pytest.mark.parametrize("version", ["2014-05-01", "2014-11-01"])
async def test_both_versions_are_served_and_echoed(http: httpx.AsyncClient, version: str) -> None:
    """Headers: 2014-05-01 and 2014-11-01 are served; x-ms-version echoes the request's."""
    headers = {"x-ms-version": version}
    r = await http.put(job_url("j1"), json=body("j1"), headers=headers)
    assert json_of(r, 201, version)["Name"] == "j1"
    assert json_of(await http.get(f"{prefix()}/jobs", headers=headers), 200, version)["value"]
    error(await http.get(job_url("nope"), headers=headers), 404, version)


async def test_every_response_carries_a_distinct_request_id_and_date(
    http: httpx.AsyncClient,
) -> None:
    """Headers: successes and errors carry x-ms-request-id (32 hex, new each time) and Date."""
    responses = [
        await http.put(job_url("j1"), json=body("j1"), headers=HEADERS),
        await http.get(job_url("j1"), headers=HEADERS),
        await http.get(f"{prefix()}/jobs", headers=HEADERS),
        await http.get(job_url("none"), headers=HEADERS),
        await http.get(job_url("j1")),
        await http.delete(job_url("j1"), headers=HEADERS),
    ]
    ids = [common(r, version=None) for r in responses]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json", 200),
        ("application/json;odata=minimalmetadata", 200),
        ("application/json;odata=nometadata", 200),
        ("application/json; odata=fullmetadata", 200),
        ("*/*", 200),
        ("application/xml", 406),
        ("text/plain", 406),
        ("application/json;odata=bogus", 406),
    ],
)
async def test_accept_must_be_json_light_else_406(
    http: httpx.AsyncClient, accept: str, status: int
) -> None:
    """Negotiation: Accept application/json (odata=minimal|no|fullmetadata) or */*; else 406."""
    await put_job(http, "j1")
    for path in (job_url("j1"), f"{prefix()}/jobs"):
        r = await http.get(path, headers={**HEADERS, "Accept": accept})
        if status == 200:
            json_of(r, 200)
        else:
            message = f"Accept {accept} is not supported."
            refusal(r, 406, "NotAcceptable", message, "NOT_ACCEPTABLE")


@pytest.mark.parametrize(
    ("fmt", "accept", "status"),
    [
        ("json", "application/xml", 200),
        ("application/json;odata=minimalmetadata", "text/plain", 200),
        ("application/json", None, 200),
        ("xml", "application/json", 406),
        ("xml", None, 406),
    ],
)
async def test_format_query_overrides_accept(
    http: httpx.AsyncClient, fmt: str, accept: str | None, status: int
) -> None:
    """Negotiation: $format overrides Accept: a good one wins over a bad Accept and vice versa."""
    await put_job(http, "j1")
    headers = {**HEADERS, **({"Accept": accept} if accept else {})}
    r = await http.get(job_url("j1"), params={"$format": fmt}, headers=headers)
    if status == 200:
        assert json_of(r, 200)["Name"] == "j1"
    else:
        message = f"$format {fmt} is not supported; use json."
        refusal(r, 406, "NotAcceptable", message, "NOT_ACCEPTABLE")


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ("application/xml", 406),
        ("text/plain", 406),
    ],
)
async def test_content_type_must_be_json_else_406(
    http: httpx.AsyncClient, content_type: str, status: int
) -> None:
    """Negotiation: a request Content-Type other than application/json is 406; nothing made."""
    r = await http.put(
        job_url("j1"),
        content=b'{"Properties": {"Type": "Import", "Location": "westus"}}',
        headers={**HEADERS, "Content-Type": content_type},
    )
    if status == 201:
        assert json_of(r, 201)["Name"] == "j1"
    else:
        message = f"Content-Type {content_type} is not supported."
        refusal(r, 406, "NotAcceptable", message, "NOT_ACCEPTABLE")
        error(await http.get(job_url("j1"), headers=HEADERS), 404)


@pytest.mark.parametrize(
    ("language", "status"),
    [("en", 200), ("en-us", 200), ("EN-US", 200), ("fr", 406), ("de-DE", 406)],
)
async def test_accept_language_only_en_or_en_us(
    http: httpx.AsyncClient, language: str, status: int
) -> None:
    """Negotiation: Accept-Language en or en-us (any case); anything else is 406."""
    r = await http.get(f"{prefix()}/jobs", headers={**HEADERS, "Accept-Language": language})
    if status == 200:
        json_of(r, 200)
    else:
        message = "Only en and en-us are supported."
        refusal(r, 406, "NotAcceptable", message, "NOT_ACCEPTABLE")


@pytest.mark.parametrize(("encoding", "status"), [("identity", 200), ("gzip", 406)])
async def test_content_encoding_only_identity(
    http: httpx.AsyncClient, encoding: str, status: int
) -> None:
    """Negotiation: Content-Encoding identity is fine; anything else is 406."""
    await put_job(http, "j1")
    r = await http.get(job_url("j1"), headers={**HEADERS, "Content-Encoding": encoding})
    if status == 200:
        json_of(r, 200)
    else:
        message = "Only identity content encoding is supported."
        refusal(r, 406, "NotAcceptable", message, "NOT_ACCEPTABLE")


@pytest.mark.parametrize("verb", ["POST", "GET"])
async def test_x_http_method_patch_on_get_or_post_is_a_patch(
    http: httpx.AsyncClient, verb: str
) -> None:
    """X-HTTP-Method: PATCH on GET or POST is processed as PATCH (204, job updated)."""
    await put_job(http, "j1")
    r = await http.request(
        verb,
        job_url("j1"),
        json={"Properties": {"FriendlyName": "tunneled"}},
        headers={**HEADERS, "X-HTTP-Method": "PATCH"},
    )
    assert_empty(r, 204)
    job, _ = await get_job(http, "j1")
    assert job["Properties"]["FriendlyName"] == "tunneled"


async def test_x_http_method_put_on_post_is_a_put(http: httpx.AsyncClient) -> None:
    """X-HTTP-Method: PUT on POST is processed as Put Job (201)."""
    r = await http.post(job_url("j1"), json=body("j1"), headers={**HEADERS, "X-HTTP-Method": "PUT"})
    assert json_of(r, 201)["Properties"]["State"] == "Creating"
    await get_job(http, "j1")


@pytest.mark.parametrize(
    ("verb", "value"),
    [
        ("POST", "DELETE"),
        ("GET", "MERGE"),
        ("POST", "bogus"),
        ("PATCH", "PATCH"),
        ("PUT", "PATCH"),
        ("DELETE", "PATCH"),
    ],
)
async def test_x_http_method_other_values_or_verbs_are_400(
    http: httpx.AsyncClient, verb: str, value: str
) -> None:
    """X-HTTP-Method other than PATCH/PUT, or on a verb other than GET/POST, is 400."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    r = await http.request(
        verb,
        job_url("j1"),
        json={"Properties": {"FriendlyName": "changed"}},
        headers={**HEADERS, "X-HTTP-Method": value},
    )
    message = f"X-HTTP-Method {value} is not allowed on {verb}."
    refusal(r, 400, "InvalidHttpMethodOverride", message, "INVALID_METHOD_OVERRIDE")
    assert await get_job(http, "j1") == before


# --- Put Job ------------------------------------------------------------------------


async def test_put_job_returns_201_with_job_json_and_get_matches(http: httpx.AsyncClient) -> None:
    """Put Job: 201 with the full job (State Creating), job headers; BitLockerKey never shown."""
    drive = {"DriveId": "WD-1234", "ManifestFile": r"\manifest.xml", "BitLockerKey": "1-2-3"}
    job = await put_job(
        http,
        "j1",
        "Export",
        FriendlyName="friendly",
        Description="about it",
        ReturnAddress=RETURN_ADDRESS,
        ReturnShipping=RETURN_SHIPPING,
        DeliveryPackage=DELIVERY_PACKAGE,
    )
    props = job["Properties"]
    assert job["Name"] == "j1"
    assert props["Type"] == "Export"
    assert props["State"] == "Creating"
    assert props["Location"] == "westus"
    assert props["ReturnAddress"] == RETURN_ADDRESS
    assert props["ReturnShipping"] == RETURN_SHIPPING
    assert props["DeliveryPackage"] == DELIVERY_PACKAGE
    assert props["FriendlyName"] == "friendly"
    assert props["Description"] == "about it"
    assert props["CancelRequested"] is False
    assert (await get_job(http, "j1"))[0] == job
    r = await http.put(
        job_url("j2"),
        json={**body("j2"), "DriveList": [drive]},
        headers=HEADERS,
    )
    drives = json_of(r, 201)["DriveList"]
    assert len(drives) == 1
    assert drives[0]["DriveId"] == "WD-1234"
    assert drives[0]["ManifestFile"] == r"\manifest.xml"
    assert "State" in drives[0]
    assert "BitLockerKey" not in drives[0]
    assert "BitLockerKey" not in (await http.get(job_url("j2"), headers=HEADERS)).text


async def test_put_job_minimal_omits_absent_objects(http: httpx.AsyncClient) -> None:
    """Put Job: Name optional; absent ReturnAddress/ReturnShipping/DeliveryPackage are omitted."""
    r = await http.put(
        job_url("j1"),
        json={"Properties": {"Type": "Import", "Location": "westus"}},
        headers=HEADERS,
    )
    job = json_of(r, 201)
    assert job["Name"] == "j1"
    for absent in ("ReturnAddress", "ReturnShipping", "DeliveryPackage"):
        assert absent not in job["Properties"], job


REQUIRED = ("InvalidRequest", "A job needs Properties.Type and Properties.Location.",
            "REQUIRED_FIELD_MISSING")  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        ({"Name": "j1", "Properties": {"Location": "westus"}}, REQUIRED),
        ({"Name": "j1", "Properties": {"Type": "Import"}}, REQUIRED),
        ({"Name": "j1", "Properties": {"Type": "Both", "Location": "westus"}},
         ("InvalidRequest", "Type: must be Import or Export, not 'Both'", "INVALID_BODY")),
        ({"Name": "j1"}, REQUIRED),
        ({"Name": "other", "Properties": {"Type": "Import", "Location": "westus"}},
         ("InvalidRequest", "Name differs from the job name in the URL.", "INVALID_BODY")),
    ],
    ids=["no-type", "no-location", "bad-type", "no-properties", "name-mismatch"],
)  # fmt: skip
async def test_put_job_without_type_or_location_or_with_other_name_is_400(
    http: httpx.AsyncClient, clients: Clients, payload: dict[str, Any], refused: tuple[str, ...]
) -> None:
    """Put Job (Decision): only Type and Location are required, and Name, if given, is the
    URL's; else 400 and nothing is made, not even the account's collection."""
    r = await http.put(job_url("j1"), json=payload, headers=HEADERS)
    refusal(r, 400, *refused)
    assert await collection_of(clients, ACCT) is None
    error(await http.get(job_url("j1"), headers=HEADERS), 404)
    error(await http.get(job_url("other"), headers=HEADERS), 404)


async def test_put_over_creating_job_replaces_it(http: httpx.AsyncClient) -> None:
    """Put Job (T8): over a job in Creating replaces it (201)."""
    await put_job(http, "j1", "Import", FriendlyName="first")
    job = await put_job(http, "j1", "Export", Description="second")
    assert job["Properties"]["Type"] == "Export"
    assert job["Properties"]["Description"] == "second"
    assert "FriendlyName" not in job["Properties"] or not job["Properties"]["FriendlyName"]
    assert (await get_job(http, "j1"))[0] == job
    listed = json_of(await http.get(f"{prefix()}/jobs", headers=HEADERS), 200)["value"]
    assert [j["Name"] for j in listed] == ["j1"]


@pytest.mark.parametrize("state", ["Shipping", "Received", "Completed", "Faulted"])
async def test_put_over_non_creating_job_is_409_job_already_exists(
    http: httpx.AsyncClient, clients: Clients, cid: str, state: str
) -> None:
    """Put Job (T8): over a job in another state is 409 JobAlreadyExists; job unchanged."""
    await walk(http, clients, cid, "j1", state)
    before = await get_job(http, "j1")
    r = await http.put(job_url("j1"), json=body("j1", "Export"), headers=HEADERS)
    message = "The job j1 already exists and is no longer Creating."
    refusal(r, 409, "JobAlreadyExists", message, "JOB_ALREADY_EXISTS")
    assert await get_job(http, "j1") == before


async def test_twenty_first_active_job_is_409_active_job_limit_reached(
    http: httpx.AsyncClient, clients: Clients, cid: str
) -> None:
    """Put Job (T9): the 21st active job is 409 ActiveJobLimitReached; Completed don't count."""
    for i in range(20):
        await put_job(http, f"j{i}", **SHIPPABLE)
    r = await http.put(job_url("j20"), json=body("j20"), headers=HEADERS)
    message = f"The storage account {ACCT} has reached its limit of active jobs."
    refusal(r, 409, "ActiveJobLimitReached", message, "QUOTA_EXCEEDED")
    error(await http.get(job_url("j20"), headers=HEADERS), 404)
    await walk_on(http, clients, cid, "j0", "Creating", "Completed")
    await put_job(http, "j20")
    r = await http.put(job_url("j21"), json=body("j21"), headers=HEADERS)
    refusal(r, 409, "ActiveJobLimitReached", message, "QUOTA_EXCEEDED")


async def test_quota_is_per_account(http: httpx.AsyncClient) -> None:
    """Put Job (T9): another storage account has its own collection and limit."""
    for i in range(20):
        await put_job(http, f"j{i}")
    other = f"{prefix(account='otheracct')}/jobs/j0"
    assert json_of(await http.put(other, json=body("j0"), headers=HEADERS), 201)["Name"] == "j0"
    listed = json_of(await http.get(f"{prefix(account='otheracct')}/jobs", headers=HEADERS), 200)[
        "value"
    ]
    assert [j["Name"] for j in listed] == ["j0"]


# --- Get / Head ---------------------------------------------------------------------


async def test_head_is_200_without_body_with_job_headers(http: httpx.AsyncClient) -> None:
    """Get Job: HEAD is 200 with the job headers (same ETag as GET) and no body."""
    await put_job(http, "j1")
    _, etag = await get_job(http, "j1")
    r = await http.head(job_url("j1"), headers=HEADERS)
    assert r.status_code == 200
    common(r)
    assert r.content == b""
    assert job_headers(r, "j1") == etag


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_unknown_job_is_404_job_not_found(http: httpx.AsyncClient, method: str) -> None:
    """Errors: an unknown job is 404 JobNotFound (HEAD: 404, no body)."""
    await put_job(http, "j1")
    content = b'{"Properties": {"FriendlyName": "x"}}' if method == "PATCH" else None
    r = await http.request(method, job_url("nope"), headers=HEADERS, content=content)
    refusal(r, 404, "JobNotFound", "The job nope does not exist.", "JOB_NOT_FOUND")
    r = await http.head(job_url("nope"), headers=HEADERS)
    assert r.status_code == 404
    assert r.content == b""


# --- List ---------------------------------------------------------------------------


async def test_list_jobs_filters_by_type_and_states(
    http: httpx.AsyncClient, clients: Clients, cid: str
) -> None:
    """List Jobs: {"value": [...]}; type and states (comma list) filter."""
    await put_job(http, "imp1")
    await put_job(http, "exp1", "Export")
    await walk(http, clients, cid, "imp2", "Shipping")
    await walk(http, clients, cid, "imp3", "Received")

    async def names(**params: Any) -> set[str]:
        r = await http.get(f"{prefix()}/jobs", params=params, headers=HEADERS)
        return {j["Name"] for j in json_of(r, 200)["value"]}

    assert await names() == {"imp1", "exp1", "imp2", "imp3"}
    assert await names(type="Import") == {"imp1", "imp2", "imp3"}
    assert await names(type="Export") == {"exp1"}
    assert await names(states="Shipping") == {"imp2"}
    assert await names(states="Creating,Shipping") == {"imp1", "exp1", "imp2"}
    assert await names(states="Creating", type="Export") == {"exp1"}
    assert await names(states="Completed") == set()
    listed = json_of(await http.get(f"{prefix()}/jobs", headers=HEADERS), 200)["value"]
    assert {j["Name"]: j for j in listed}["imp1"] == (await get_job(http, "imp1"))[0]


@pytest.mark.parametrize(
    "params",
    [{"states": "creating"}, {"states": "Bogus"}, {"$top": "0"}, {"$top": "101"}, {"$top": "x"}],
    ids=["lowercase-state", "unknown-state", "top-0", "top-101", "top-nan"],
)
async def test_list_bad_query_is_400(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    """List Jobs: states are case-sensitive and known; $top is 1..100; else 400."""
    await put_job(http, "j1")
    error(await http.get(f"{prefix()}/jobs", params=params, headers=HEADERS), 400)


async def test_list_pages_with_top_and_next_link(http: httpx.AsyncClient) -> None:
    """List Jobs: $top pages; odata.nextLink ($skiptoken) leads to the rest, absent at the end."""
    for i in range(5):
        await put_job(http, f"j{i}")
    r = await http.get(f"{prefix()}/jobs", params={"$top": "2"}, headers=HEADERS)
    page = json_of(r, 200)
    seen = [j["Name"] for j in page["value"]]
    assert len(seen) == 2
    pages = 1
    while "odata.nextLink" in page:
        link = urlsplit(page["odata.nextLink"])
        assert "$skiptoken" in link.query or "%24skiptoken" in link.query, link
        r = await http.get(f"{link.path}?{link.query}", headers=HEADERS)
        page = json_of(r, 200)
        assert 1 <= len(page["value"]) <= 2
        seen += [j["Name"] for j in page["value"]]
        pages += 1
        assert pages <= 5
    assert sorted(seen) == [f"j{i}" for i in range(5)]
    assert pages == 3
    page = json_of(await http.get(f"{prefix()}/jobs", params={"$top": "100"}, headers=HEADERS), 200)
    assert len(page["value"]) == 5
    assert "odata.nextLink" not in page


# --- Update (PATCH) -----------------------------------------------------------------


async def test_patch_is_204_and_changes_only_the_given_fields(http: httpx.AsyncClient) -> None:
    """Update: 204, no body, job headers with a new ETag; only the given fields change."""
    await put_job(http, "j1", FriendlyName="f", Description="d")
    before, etag = await get_job(http, "j1")
    r = await patch(http, "j1", {"FriendlyName": "g", "ReturnAddress": RETURN_ADDRESS})
    assert_empty(r, 204)
    assert job_headers(r, "j1") != etag
    after, new_etag = await get_job(http, "j1")
    assert new_etag != etag
    assert after["Properties"]["FriendlyName"] == "g"
    assert after["Properties"]["Description"] == "d"
    assert after["Properties"]["ReturnAddress"] == RETURN_ADDRESS
    assert after["Properties"]["Type"] == before["Properties"]["Type"]
    assert after["Properties"]["State"] == "Creating"


async def test_patch_state_shipping_from_creating_with_info_is_204(
    http: httpx.AsyncClient,
) -> None:
    """Update (T2/T3): State Shipping from Creating with ReturnAddress+DeliveryPackage is 204."""
    await put_job(http, "j1", **SHIPPABLE)
    assert_empty(await patch(http, "j1", {"State": "Shipping"}), 204)
    assert (await get_job(http, "j1"))[0]["Properties"]["State"] == "Shipping"


@pytest.mark.parametrize(
    "present",
    [{}, {"ReturnAddress": RETURN_ADDRESS}, {"DeliveryPackage": DELIVERY_PACKAGE}],
    ids=["neither", "no-delivery-package", "no-return-address"],
)
async def test_patch_state_shipping_without_shipping_info_is_400(
    http: httpx.AsyncClient, present: dict[str, Any]
) -> None:
    """Update (T3): State Shipping needs ReturnAddress and DeliveryPackage; else 400, unchanged."""
    await put_job(http, "j1", **present)
    before = await get_job(http, "j1")
    r = await patch(http, "j1", {"State": "Shipping"})
    message = "ReturnAddress and DeliveryPackage must be set before the job j1 is Shipping."
    refusal(r, 400, "ShippingInformationRequired", message, "SHIPPING_INFO_REQUIRED")
    assert await get_job(http, "j1") == before


@pytest.mark.parametrize(
    "value", ["Creating", "Received", "Transferring", "Completed", "Closed", "Faulted", "shipping"]
)
async def test_patch_state_other_than_shipping_is_400(http: httpx.AsyncClient, value: str) -> None:
    """Update (T2/T6): State may be set only to Shipping; other values are 400, unchanged."""
    await put_job(http, "j1", **SHIPPABLE)
    before = await get_job(http, "j1")
    r = await patch(http, "j1", {"State": value})
    if value == "shipping":  # states are case-sensitive: not a state at all
        message = "State: must be a job state, not 'shipping'"
        refusal(r, 400, "InvalidRequest", message, "INVALID_BODY")
    else:
        message = "State may only be set to Shipping."
        refusal(r, 400, "InvalidStateTransition", message, "STATE_NOT_SETTABLE")
    assert await get_job(http, "j1") == before


@pytest.mark.parametrize("state", ["Shipping", "Received", "Transferring"])
async def test_patch_state_shipping_outside_creating_is_400(
    http: httpx.AsyncClient, clients: Clients, cid: str, state: str
) -> None:
    """Update (T2): State Shipping only from Creating; otherwise 400, unchanged."""
    await walk(http, clients, cid, "j1", state)
    before = await get_job(http, "j1")
    r = await patch(http, "j1", {"State": "Shipping"})
    message = "The job j1 can move to Shipping only from Creating."
    refusal(r, 400, "InvalidStateTransition", message, "INVALID_STATE_TRANSITION")
    assert await get_job(http, "j1") == before


async def test_patch_cancel_requested_false_is_400(http: httpx.AsyncClient) -> None:
    """Update (T4): CancelRequested may only be true; false is 400, unchanged."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    r = await patch(http, "j1", {"CancelRequested": False})
    message = "CancelRequested may only be set to true."
    refusal(r, 400, "InvalidPropertyValue", message, "FIELD_VALUE_NOT_ALLOWED")
    assert await get_job(http, "j1") == before


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ("Creating", 204),
        ("Shipping", 204),
        ("Received", 409),
        ("Transferring", 204),
        ("Packaging", 409),
        ("Completed", 409),
        ("Closed", 409),
        ("Faulted", 409),
    ],
)
async def test_patch_cancel_requested_only_in_creating_shipping_transferring(
    http: httpx.AsyncClient, clients: Clients, cid: str, state: str, status: int
) -> None:
    """Update (T4): CancelRequested true in Creating/Shipping/Transferring; else 409, unchanged."""
    await walk(http, clients, cid, "j1", state)
    before = await get_job(http, "j1")
    r = await patch(http, "j1", {"CancelRequested": True})
    if status == 204:
        assert_empty(r, 204)
        assert (await get_job(http, "j1"))[0]["Properties"]["CancelRequested"] is True
    else:
        message = "CancelRequested cannot be updated in the current state of the job j1."
        refusal(r, 409, NOT_UPDATABLE, message, "FIELD_NOT_MUTABLE_IN_STATE")
        assert await get_job(http, "j1") == before


NEW_ADDRESS = {**RETURN_ADDRESS, "Name": "John Roe"}
NEW_PACKAGE = {**DELIVERY_PACKAGE, "TrackingNumber": "1Z000"}
NEW_SHIPPING = {**RETURN_SHIPPING, "CarrierAccountNumber": "987"}


@pytest.mark.parametrize(
    ("state", "field", "value", "status"),
    [
        ("Transferring", "ReturnAddress", NEW_ADDRESS, 204),
        ("Packaging", "ReturnAddress", NEW_ADDRESS, 409),
        ("Transferring", "ReturnShipping", NEW_SHIPPING, 204),
        ("Packaging", "ReturnShipping", NEW_SHIPPING, 409),
        ("Shipping", "DeliveryPackage", NEW_PACKAGE, 204),
        ("Received", "DeliveryPackage", NEW_PACKAGE, 409),
        ("Completed", "FriendlyName", "late", 409),
        ("Closed", "Description", "late", 409),
        ("Faulted", "ReturnAddress", NEW_ADDRESS, 409),
        ("Completed", "ReturnAddress", NEW_ADDRESS, 409),
    ],
)
async def test_patch_per_state_mutability(
    http: httpx.AsyncClient,
    clients: Clients,
    cid: str,
    state: str,
    field: str,
    value: Any,
    status: int,
) -> None:
    """Update (T5): per-state mutability; refusals are 409 and leave the job unchanged."""
    await walk(http, clients, cid, "j1", state)
    before = await get_job(http, "j1")
    r = await patch(http, "j1", {field: value})
    if status == 204:
        assert_empty(r, 204)
        assert (await get_job(http, "j1"))[0]["Properties"][field] == value
    else:
        message = f"{field} cannot be updated in the current state of the job j1."
        refusal(r, 409, NOT_UPDATABLE, message, "FIELD_NOT_MUTABLE_IN_STATE")
        assert await get_job(http, "j1") == before


@pytest.mark.parametrize(("state", "status"), [("Creating", 204), ("Shipping", 409)])
async def test_patch_drive_list_only_in_creating(
    http: httpx.AsyncClient, clients: Clients, cid: str, state: str, status: int
) -> None:
    """Update (T5): DriveList may change only in Creating; else 409, unchanged."""
    await walk(http, clients, cid, "j1", state)
    before = await get_job(http, "j1")
    drive = {"DriveId": "WD-9", "ManifestFile": r"\m.xml", "BitLockerKey": "secret"}
    r = await http.patch(
        job_url("j1"), json={"Properties": {}, "DriveList": [drive]}, headers=HEADERS
    )
    if status == 204:
        assert_empty(r, 204)
        drives = (await get_job(http, "j1"))[0]["DriveList"]
        assert [d["DriveId"] for d in drives] == ["WD-9"]
        assert "BitLockerKey" not in drives[0]
    else:
        message = "DriveList cannot be updated in the current state of the job j1."
        refusal(r, 409, NOT_UPDATABLE, message, "FIELD_NOT_MUTABLE_IN_STATE")
        assert await get_job(http, "j1") == before


# --- Delete -------------------------------------------------------------------------


async def test_seed_002_delete_sample_job(http: httpx.AsyncClient) -> None:
    """Seed 002: DELETE P/jobs/MySampleJob?timeout=3600 on a Creating job is 204 with the
    request id, version and Date; the job is gone."""
    await put_job(http, "MySampleJob")
    r = await http.delete(
        job_url("MySampleJob"),
        params={"timeout": "3600"},
        headers={
            "x-ms-version": "2014-05-01",
            "x-ms-date": "Mon, 25 May 2015 12:00:00 GMT",
            "Content-Type": "application/json",
        },
    )
    assert_empty(r, 204)
    assert error(await http.get(job_url("MySampleJob"), headers=HEADERS), 404) == "JobNotFound"


async def test_delete_only_in_creating_or_completed_walking_every_state(
    http: httpx.AsyncClient, clients: Clients, cid: str
) -> None:
    """Delete (T7): only Creating and Completed delete (204, then 404); every other state is
    409 JobNotDeletableInCurrentState and leaves the job unchanged."""
    await put_job(http, "fresh")
    assert_empty(await http.delete(job_url("fresh"), headers=HEADERS), 204)
    assert error(await http.get(job_url("fresh"), headers=HEADERS), 404) == "JobNotFound"

    async def refused(name: str) -> None:
        before = await get_job(http, name)
        r = await http.delete(job_url(name), headers=HEADERS)
        message = f"The job {name} can be deleted only in the Creating or Completed state."
        code = "JobNotDeletableInCurrentState"
        refusal(r, 409, code, message, "JOB_NOT_DELETABLE_IN_STATE")
        assert await get_job(http, name) == before

    await put_job(http, "j1", **SHIPPABLE)
    now = "Creating"
    for state in ("Shipping", "Received", "Transferring", "Packaging"):
        await walk_on(http, clients, cid, "j1", now, state)
        now = state
        await refused("j1")
    await walk_on(http, clients, cid, "j1", now, "Completed")
    assert_empty(await http.delete(job_url("j1"), headers=HEADERS), 204)
    assert error(await http.get(job_url("j1"), headers=HEADERS), 404) == "JobNotFound"
    for state in ("Closed", "Faulted"):
        await walk(http, clients, cid, state.lower(), state)
        await refused(state.lower())


# --- conditional headers ------------------------------------------------------------

CONDITIONS = ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
ALLOWED = {
    frozenset(),
    *(frozenset({c}) for c in CONDITIONS),
    frozenset({"If-None-Match", "If-Modified-Since"}),
    frozenset({"If-Match", "If-Unmodified-Since"}),
}


@pytest.mark.parametrize(
    "present",
    [combo for n in range(len(CONDITIONS) + 1) for combo in itertools.combinations(CONDITIONS, n)],
    ids=lambda combo: "+".join(combo) or "none",
)
async def test_conditional_header_combinations_on_get(
    http: httpx.AsyncClient, present: tuple[str, ...]
) -> None:
    """Conditions: one header, or INM+IMS, or IM+IUS (all met) is 200; any other mix is 400."""
    await put_job(http, "j1")
    job, etag = await get_job(http, "j1")
    met = {
        "If-Match": etag,
        "If-None-Match": STALE,
        "If-Modified-Since": PAST,
        "If-Unmodified-Since": FUTURE,
    }
    r = await http.get(job_url("j1"), headers={**HEADERS, **{h: met[h] for h in present}})
    if frozenset(present) in ALLOWED:
        assert json_of(r, 200) == job
    else:
        named = ", ".join(h.lower() for h in present)
        message = f"condition headers not supported together: {named}"
        code = "MultipleConditionHeadersNotSupported"
        refusal(r, 400, code, message, "MULTIPLE_CONDITION_HEADERS")


def unmet(etag: str, last_modified: str) -> dict[str, dict[str, str]]:
    """One unmet condition per case."""
    return {
        "if-match-stale": {"If-Match": STALE},
        "if-none-match-current": {"If-None-Match": etag},
        "if-none-match-star": {"If-None-Match": "*"},
        "if-modified-since-last-modified": {"If-Modified-Since": last_modified},
        "if-unmodified-since-past": {"If-Unmodified-Since": PAST},
        "inm-decides-over-ims": {"If-None-Match": etag, "If-Modified-Since": PAST},
        "im-decides-over-ius": {"If-Match": STALE, "If-Unmodified-Since": FUTURE},
    }


UNMET_REQUESTS = {
    "GET": ("GET", None),
    "PUT": ("PUT", b'{"Properties": {"Type": "Export", "Location": "westus"}}'),
    "PATCH": ("PATCH", b'{"Properties": {"FriendlyName": "changed"}}'),
    "PATCH-empty": ("PATCH", b"{}"),
    "PATCH-empty-properties": ("PATCH", b'{"Properties": {}}'),
    "DELETE": ("DELETE", None),
}


@pytest.mark.parametrize("request_kind", list(UNMET_REQUESTS))
@pytest.mark.parametrize("case", list(unmet("", "")))
async def test_unmet_condition_is_412_and_changes_nothing(
    http: httpx.AsyncClient, calls: list[str], request_kind: str, case: str
) -> None:
    """Conditions: an unmet condition is 412 ConditionNotMet on GET, PUT, PATCH (an empty
    one included: the core checks it, no GetJob) and DELETE, in one call; the job is
    unchanged (same ETag, same Last-Modified)."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    r = await http.get(job_url("j1"), headers=HEADERS)
    headers = unmet(before[1], r.headers["last-modified"])[case]
    method, content = UNMET_REQUESTS[request_kind]
    calls.clear()
    r = await http.request(method, job_url("j1"), headers={**HEADERS, **headers}, content=content)
    stale_etag = method != "GET" and headers.get("If-Match") == STALE
    reason = "ETAG_MISMATCH" if stale_etag else "CONDITION_NOT_MET"
    refusal(r, 412, "ConditionNotMet", CONDITION_NOT_MET, reason)
    rpc = {"GET": "GetJob", "PUT": "CreateJob", "PATCH": "UpdateJob", "DELETE": "DeleteJob"}
    assert calls == [rpc[method]]
    assert await get_job(http, "j1") == before


async def test_met_conditions_let_patch_and_delete_through(http: httpx.AsyncClient) -> None:
    """Conditions: If-Match with the ETag as received, and the deciding header of an allowed
    pair, let PATCH and DELETE proceed."""
    await put_job(http, "j1")
    _, etag = await get_job(http, "j1")
    assert_empty(await patch(http, "j1", {"FriendlyName": "a"}, **{"If-Match": etag}), 204)
    _, etag2 = await get_job(http, "j1")
    assert etag2 != etag
    error(await patch(http, "j1", {"FriendlyName": "b"}, **{"If-Match": etag}), 412)
    # If-Match decides over an unmet If-Unmodified-Since.
    r = await patch(
        http, "j1", {"FriendlyName": "c"}, **{"If-Match": etag2, "If-Unmodified-Since": PAST}
    )
    assert_empty(r, 204)
    job, etag3 = await get_job(http, "j1")
    assert job["Properties"]["FriendlyName"] == "c"
    # If-None-Match decides over an unmet If-Modified-Since.
    r = await http.get(
        job_url("j1"),
        headers={**HEADERS, "If-None-Match": STALE, "If-Modified-Since": FUTURE},
    )
    assert json_of(r, 200) == job
    r = await http.delete(job_url("j1"), headers={**HEADERS, "If-Match": etag3})
    assert_empty(r, 204)
    error(await http.get(job_url("j1"), headers=HEADERS), 404)


async def test_if_none_match_star_lets_put_create_but_not_replace(
    http: httpx.AsyncClient, calls: list[str]
) -> None:
    """Atomic conditional PUT (C26): If-None-Match * creates a new job; over an existing one
    it is 412 ConditionNotMet, decided by the core in the create's one call, and replaces
    nothing."""
    r = await http.put(job_url("j1"), json=body("j1"), headers={**HEADERS, "If-None-Match": "*"})
    assert json_of(r, 201)["Name"] == "j1"
    assert calls == ["CreateJob"]
    before = await get_job(http, "j1")
    calls.clear()
    r = await http.put(
        job_url("j1"), json=body("j1", "Export"), headers={**HEADERS, "If-None-Match": "*"}
    )
    refusal(r, 412, "ConditionNotMet", CONDITION_NOT_MET, "CONDITION_NOT_MET")
    assert calls == ["CreateJob"]
    assert await get_job(http, "j1") == before


@pytest.mark.parametrize("tag", ["current", "*"])
async def test_put_if_match_replaces_a_creating_job_in_one_call(
    http: httpx.AsyncClient, calls: list[str], tag: str
) -> None:
    """Atomic conditional PUT (C26, T8): If-Match with the current ETag (or *) replaces a
    Creating job: 201 with the new job and a new ETag, one CreateJob."""
    await put_job(http, "j1", FriendlyName="first")
    _, etag = await get_job(http, "j1")
    calls.clear()
    headers = {**HEADERS, "If-Match": etag if tag == "current" else "*"}
    r = await http.put(job_url("j1"), json=body("j1", "Export"), headers=headers)
    job = json_of(r, 201)
    assert calls == ["CreateJob"]
    assert job_headers(r, "j1") != etag
    assert job["Properties"]["Type"] == "Export"
    assert "FriendlyName" not in job["Properties"]
    assert (await get_job(http, "j1"))[0] == job


async def test_put_if_match_stale_etag_is_412_and_replaces_nothing(
    http: httpx.AsyncClient, calls: list[str]
) -> None:
    """Atomic conditional PUT (C26): If-Match with a stale ETag is 412 ConditionNotMet
    (the core's ETAG_MISMATCH) in one call; the job is unchanged."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    calls.clear()
    r = await http.put(
        job_url("j1"), json=body("j1", "Export"), headers={**HEADERS, "If-Match": STALE}
    )
    refusal(r, 412, "ConditionNotMet", CONDITION_NOT_MET, "ETAG_MISMATCH")
    assert calls == ["CreateJob"]
    assert await get_job(http, "j1") == before


@pytest.mark.parametrize(
    "condition",
    [{"If-Match": STALE}, {"If-Match": "*"}, {"If-Unmodified-Since": FUTURE}],
    ids=["if-match-etag", "if-match-star", "if-unmodified-since"],
)
@pytest.mark.parametrize("first_write", [True, False], ids=["first-write", "known-account"])
async def test_put_if_match_on_missing_job_is_412_and_creates_nothing(
    http: httpx.AsyncClient,
    clients: Clients,
    calls: list[str],
    condition: dict[str, str],
    first_write: bool,
) -> None:
    """Atomic conditional PUT (C25, C26): a condition only an existing job can meet
    (If-Match, If-Unmodified-Since) on a missing job is 412 ConditionNotMet in one call and
    creates nothing: no job, and no collection either when it was the account's first
    write."""
    if not first_write:
        await put_job(http, "other")
        calls.clear()
    r = await http.put(job_url("j1"), json=body("j1"), headers={**HEADERS, **condition})
    refusal(r, 412, "ConditionNotMet", CONDITION_NOT_MET, "CONDITION_NOT_MET")
    assert calls == ["CreateJob"]
    assert (await collection_of(clients, ACCT) is None) is first_write
    r = await http.get(job_url("j1"), headers=HEADERS)
    missing = "COLLECTION_NOT_FOUND" if first_write else "JOB_NOT_FOUND"
    refusal(r, 404, "JobNotFound", "The job j1 does not exist.", missing)


async def test_first_put_creates_the_account_collection_in_the_same_call(
    http: httpx.AsyncClient, clients: Clients, calls: list[str]
) -> None:
    """Put Job (C25): the first write to an account is one CreateJob whose collection
    template makes the account's transfer collection, labelled with the account."""
    assert await collection_of(clients, ACCT) is None
    await put_job(http, "j1")
    assert calls == ["CreateJob"]
    made = await collection_of(clients, ACCT)
    assert made is not None
    assert made.profile == resources_pb2.TRANSFER
    assert dict(made.labels) == {"dialect": "importexport", "subscription": SUB, "account": ACCT}


async def test_twenty_concurrent_first_puts_all_succeed_in_one_collection(
    http: httpx.AsyncClient, clients: Clients, calls: list[str]
) -> None:
    """Put Job (C25): 20 concurrent first writes to a new account all succeed (201), one
    CreateJob each, in the one collection of the account."""
    account = "freshacct"
    url = f"{prefix(account=account)}/jobs"
    replies = await asyncio.gather(
        *(http.put(f"{url}/j{i}", json=body(f"j{i}"), headers=HEADERS) for i in range(20))
    )
    assert [r.status_code for r in replies] == [201] * 20, [r.text for r in replies]
    assert calls == ["CreateJob"] * 20
    listed = json_of(await http.get(url, headers=HEADERS), 200)["value"]
    assert sorted(j["Name"] for j in listed) == sorted(f"j{i}" for i in range(20))
    request = job_service_pb2.ListCollectionsRequest(filter=f'labels.account = "{account}"')
    found = (await clients.jobs.ListCollections(request)).collections
    assert [c.name for c in found] == [
        f"collections/{ImportExportDialect.collection_id(SUB, account)}"
    ]


# --- Update: the empty PATCH ---------------------------------------------------------------

EMPTY_PATCHES = {"empty-object": b"{}", "empty-properties": b'{"Properties": {}}', "no-body": b""}


@pytest.mark.parametrize("content", list(EMPTY_PATCHES.values()), ids=list(EMPTY_PATCHES))
async def test_empty_patch_with_stale_if_match_is_412_condition_not_met(
    http: httpx.AsyncClient, calls: list[str], content: bytes
) -> None:
    """Update (C29): an empty PATCH is one UpdateJob with no paths, so the core checks its
    condition: a stale If-Match is 412 ConditionNotMet (it used to be 204), nothing
    changes."""
    await put_job(http, "j1")
    before = await get_job(http, "j1")
    calls.clear()
    r = await http.patch(job_url("j1"), content=content, headers={**HEADERS, "If-Match": STALE})
    refusal(r, 412, "ConditionNotMet", CONDITION_NOT_MET, "ETAG_MISMATCH")
    assert calls == ["UpdateJob"]
    assert await get_job(http, "j1") == before


@pytest.mark.parametrize("content", list(EMPTY_PATCHES.values()), ids=list(EMPTY_PATCHES))
async def test_empty_patch_writes_nothing_and_answers_the_current_etag(
    http: httpx.AsyncClient, calls: list[str], content: bytes
) -> None:
    """Update (C29): an empty PATCH (with a met If-Match) is 204 with the ETag and
    Last-Modified of the job as it is: one UpdateJob, nothing stamped."""
    await put_job(http, "j1")
    before, etag = await get_job(http, "j1")
    modified = (await http.get(job_url("j1"), headers=HEADERS)).headers["last-modified"]
    calls.clear()
    r = await http.patch(job_url("j1"), content=content, headers={**HEADERS, "If-Match": etag})
    assert_empty(r, 204)
    assert calls == ["UpdateJob"]
    assert job_headers(r, "j1") == etag
    assert r.headers["last-modified"] == modified
    assert await get_job(http, "j1") == (before, etag)


async def test_empty_patch_of_a_missing_job_is_404(
    http: httpx.AsyncClient, calls: list[str]
) -> None:
    """Update: an empty PATCH of an unknown job is 404 JobNotFound (the core's answer to
    the one UpdateJob)."""
    await put_job(http, "j1")
    calls.clear()
    r = await http.patch(job_url("nope"), content=b"{}", headers=HEADERS)
    refusal(r, 404, "JobNotFound", "The job nope does not exist.", "JOB_NOT_FOUND")
    assert calls == ["UpdateJob"]


# --- the gateway's body limit ------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_body_over_the_gateway_limit_is_413_request_body_too_large(
    http: httpx.AsyncClient, clients: Clients, calls: list[str], method: str
) -> None:
    """Body limit: a body over JOBCONTROL_MAX_BODY (1 MiB by default) is 413
    RequestBodyTooLarge in the odata.error format, before any call; nothing is made."""
    content = b'{"Properties": {"Description": "' + b"x" * (1024 * 1024) + b'"}}'
    r = await http.request(method, job_url("j1"), content=content, headers=HEADERS)
    message = f"request body over {1024 * 1024} bytes"
    refusal(r, 413, "RequestBodyTooLarge", message, "BODY_TOO_LARGE")
    assert calls == []
    assert await collection_of(clients, ACCT) is None


# --- routes: unknown paths and methods ---------------------------------------------------


async def test_unknown_route_is_404_resource_not_found(
    http: httpx.AsyncClient, calls: list[str]
) -> None:
    """Routing: a path under the prefix that is no route is 404 ResourceNotFound."""
    path = f"{prefix()}/drives"
    r = await http.get(path, headers=HEADERS)
    refusal(r, 404, "ResourceNotFound", f"no route for {path}", "ROUTE_NOT_FOUND")
    assert calls == []


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [("POST", "/jobs/j1", "PUT, GET, PATCH, DELETE"), ("DELETE", "/jobs", "GET")],
)
async def test_known_route_with_another_method_is_405_method_not_allowed(
    http: httpx.AsyncClient, calls: list[str], method: str, path: str, allowed: str
) -> None:
    """Routing: a known route with a method it does not serve is 405 MethodNotAllowed with
    Allow."""
    r = await http.request(method, prefix() + path, headers=HEADERS)
    message = f"{method} is not allowed here; allowed: {allowed}"
    refusal(r, 405, "MethodNotAllowed", message, "METHOD_NOT_ALLOWED")
    assert r.headers["allow"] == allowed
    assert calls == []


# --- List: structured filters and missing collections ------------------------------------


async def test_list_of_a_never_written_account_is_empty_and_creates_nothing(
    http: httpx.AsyncClient, clients: Clients, calls: list[str]
) -> None:
    """List Jobs (C27): an account never written to lists as empty in one ListJobs
    (allow_missing); no collection is made."""
    for params in ({}, {"states": "Creating", "type": "Import"}):
        r = await http.get(f"{prefix()}/jobs", params=params, headers=HEADERS)
        assert json_of(r, 200) == {"value": []}
    assert calls == ["ListJobs", "ListJobs"]
    assert await collection_of(clients, ACCT) is None


async def test_list_skiptoken_is_bound_to_its_filter(
    http: httpx.AsyncClient, calls: list[str]
) -> None:
    """List Jobs (C32): the page token of a filtered list is bound to its filter: the
    nextLink continues it; the token under another filter is 400 InvalidRequest."""
    for i in range(3):
        await put_job(http, f"j{i}")
    r = await http.get(
        f"{prefix()}/jobs", params={"states": "Creating", "$top": "1"}, headers=HEADERS
    )
    link = urlsplit(json_of(r, 200)["odata.nextLink"])
    assert json_of(await http.get(f"{link.path}?{link.query}", headers=HEADERS), 200)["value"]
    token = dict(parse_qsl(link.query))["$skiptoken"]
    calls.clear()
    params = {"states": "Shipping", "$top": "1", "$skiptoken": token}
    r = await http.get(f"{prefix()}/jobs", params=params, headers=HEADERS)
    message = "The $skiptoken was not issued for this query."
    refusal(r, 400, "InvalidRequest", message, "INVALID_PAGE_TOKEN")
    assert calls == ["ListJobs"]


# --- one upstream call per request, every route ------------------------------------------

OK_BODY = b'{"Properties": {"Type": "Import", "Location": "westus"}}'


MALFORMED = json_error(b"{")


@dataclass(frozen=True)
class Case:
    """A request to the dialect and what it must answer: the status, the upstream calls
    by name and, for a refusal, (ExtendedCode, message, ExtendedInformation)."""

    method: str
    path: str
    status: int
    calls: tuple[str, ...]
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    refused: tuple[str, str, str] | None = None
    version: str | None = VERSION


CASES = {
    "put-create": Case("PUT", "/jobs/new", 201, ("CreateJob",), OK_BODY),
    "put-replace-creating": Case("PUT", "/jobs/j1", 201, ("CreateJob",), OK_BODY),
    "put-over-shipping": Case(
        "PUT", "/jobs/j2", 409, ("CreateJob",), OK_BODY,
        refused=("JobAlreadyExists", "The job j2 already exists and is no longer Creating.",
                 "JOB_ALREADY_EXISTS"),
    ),
    "put-without-location": Case(
        "PUT", "/jobs/new", 400, ("CreateJob",), b'{"Properties": {"Type": "Import"}}',
        refused=("InvalidRequest", "A job needs Properties.Type and Properties.Location.",
                 "REQUIRED_FIELD_MISSING"),
    ),
    "put-bad-type": Case(
        "PUT", "/jobs/new", 400, (), b'{"Properties": {"Type": "Both", "Location": "x"}}',
        refused=("InvalidRequest", "Type: must be Import or Export, not 'Both'", "INVALID_BODY"),
    ),
    "put-malformed-json": Case(
        "PUT", "/jobs/new", 400, (), b"{", refused=("InvalidRequest", MALFORMED, "MALFORMED_JSON")
    ),
    "put-name-mismatch": Case(
        "PUT", "/jobs/new", 400, (), b'{"Name": "other"}',
        refused=("InvalidRequest", "Name differs from the job name in the URL.", "INVALID_BODY"),
    ),
    "put-if-none-match-star-over-existing": Case(
        "PUT", "/jobs/j1", 412, ("CreateJob",), OK_BODY, (("If-None-Match", "*"),),
        refused=("ConditionNotMet", CONDITION_NOT_MET, "CONDITION_NOT_MET"),
    ),
    "put-refused-condition-pair": Case(
        "PUT", "/jobs/j1", 400, (), OK_BODY, (("If-Match", "*"), ("If-None-Match", "*")),
        refused=("MultipleConditionHeadersNotSupported",
                 "condition headers not supported together: if-match, if-none-match",
                 "MULTIPLE_CONDITION_HEADERS"),
    ),
    "get": Case("GET", "/jobs/j1", 200, ("GetJob",)),
    "head": Case("HEAD", "/jobs/j1", 200, ("GetJob",)),
    "get-missing": Case(
        "GET", "/jobs/nope", 404, ("GetJob",),
        refused=("JobNotFound", "The job nope does not exist.", "JOB_NOT_FOUND"),
    ),
    "get-unmet-condition": Case(
        "GET", "/jobs/j1", 412, ("GetJob",), headers=(("If-None-Match", "*"),),
        refused=("ConditionNotMet", CONDITION_NOT_MET, "CONDITION_NOT_MET"),
    ),
    "get-refused-condition-pair": Case(
        "GET", "/jobs/j1", 400, (), headers=(("If-Match", "*"), ("If-Modified-Since", PAST)),
        refused=("MultipleConditionHeadersNotSupported",
                 "condition headers not supported together: if-match, if-modified-since",
                 "MULTIPLE_CONDITION_HEADERS"),
    ),
    "list": Case("GET", "/jobs", 200, ("ListJobs",)),
    "list-filtered": Case("GET", "/jobs?type=Import&states=Creating,Shipping", 200, ("ListJobs",)),
    "list-bad-states": Case(
        "GET", "/jobs?states=creating", 400, (),
        refused=("InvalidRequest", "unknown states: ['creating']", "INVALID_QUERY"),
    ),
    "list-bad-top": Case(
        "GET", "/jobs?$top=0", 400, (),
        refused=("InvalidRequest", "$top must be 1-100", "INVALID_QUERY"),
    ),
    "patch": Case(
        "PATCH", "/jobs/j1", 204, ("UpdateJob",), b'{"Properties": {"FriendlyName": "x"}}'
    ),
    "patch-empty": Case("PATCH", "/jobs/j1", 204, ("UpdateJob",), b"{}"),
    "patch-empty-stale-if-match": Case(
        "PATCH", "/jobs/j1", 412, ("UpdateJob",), b"{}", (("If-Match", STALE),),
        refused=("ConditionNotMet", CONDITION_NOT_MET, "ETAG_MISMATCH"),
    ),
    "patch-shipping-without-info": Case(
        "PATCH", "/jobs/j1", 400, ("UpdateJob",), b'{"Properties": {"State": "Shipping"}}',
        refused=("ShippingInformationRequired",
                 "ReturnAddress and DeliveryPackage must be set before the job j1 is Shipping.",
                 "SHIPPING_INFO_REQUIRED"),
    ),
    "patch-unknown-property": Case(
        "PATCH", "/jobs/j1", 400, (), b'{"Properties": {"Color": "red"}}',
        refused=("InvalidRequest", "Unknown property Color.", "INVALID_BODY"),
    ),
    "patch-other-members": Case(
        "PATCH", "/jobs/j1", 400, (), b'{"Foo": 1}',
        refused=("InvalidRequest", "The body holds Properties (and DriveList) only.",
                 "INVALID_BODY"),
    ),
    "patch-tunnelled": Case(
        "POST", "/jobs/j1", 204, ("UpdateJob",), b'{"Properties": {"FriendlyName": "x"}}',
        (("X-HTTP-Method", "PATCH"),),
    ),
    "delete": Case("DELETE", "/jobs/j1", 204, ("DeleteJob",)),
    "delete-shipping": Case(
        "DELETE", "/jobs/j2", 409, ("DeleteJob",),
        refused=("JobNotDeletableInCurrentState",
                 "The job j2 can be deleted only in the Creating or Completed state.",
                 "JOB_NOT_DELETABLE_IN_STATE"),
    ),
    "delete-missing": Case(
        "DELETE", "/jobs/nope", 404, ("DeleteJob",),
        refused=("JobNotFound", "The job nope does not exist.", "JOB_NOT_FOUND"),
    ),
    "no-version": Case(
        "GET", "/jobs/j1", 400, (), headers=(("x-ms-version", ""),), version=None,
        refused=("InvalidXMsVersionHeader", "x-ms-version must be 2014-05-01 or 2014-11-01.",
                 "MISSING_VERSION"),
    ),
    "not-acceptable": Case(
        "GET", "/jobs", 406, (), headers=(("Accept", "application/xml"),),
        refused=("NotAcceptable", "Accept application/xml is not supported.", "NOT_ACCEPTABLE"),
    ),
    "bad-method-override": Case(
        "POST", "/jobs/j1", 400, (), headers=(("X-HTTP-Method", "DELETE"),),
        refused=("InvalidHttpMethodOverride", "X-HTTP-Method DELETE is not allowed on POST.",
                 "INVALID_METHOD_OVERRIDE"),
    ),
    "unknown-route": Case(
        "GET", "/drives", 404, (),
        refused=("ResourceNotFound", f"no route for {prefix()}/drives", "ROUTE_NOT_FOUND"),
    ),
    "method-not-allowed": Case(
        "DELETE", "/jobs", 405, (),
        refused=("MethodNotAllowed", "DELETE is not allowed here; allowed: GET",
                 "METHOD_NOT_ALLOWED"),
    ),
    "body-too-large": Case(
        "PUT", "/jobs/new", 413, (), b" " * (1024 * 1024 + 1),
        refused=("RequestBodyTooLarge", f"request body over {1024 * 1024} bytes",
                 "BODY_TOO_LARGE"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_every_route_makes_at_most_one_rpc(
    http: httpx.AsyncClient, clients: Clients, cid: str, calls: list[str], case: Case
) -> None:
    """Seam: every request, success or refusal, is at most one upstream call, of its row's
    RPC; refusals found in the gateway (headers, body, query, routing) make none. j1 is
    Creating without shipping details, j2 Shipping."""
    await put_job(http, "j1")
    await walk(http, clients, cid, "j2", "Shipping")
    calls.clear()
    headers = {**HEADERS, **dict(case.headers)}
    r = await http.request(case.method, prefix() + case.path, headers=headers, content=case.content)
    assert (r.status_code, calls) == (case.status, list(case.calls)), r.text
    if case.refused is not None and case.method != "HEAD":
        refusal(r, case.status, *case.refused, version=case.version)


# --- bad input (issue 13 point 5) and links ----------------------------------------------


def nested(depth: int) -> str:
    """A Put Job body whose Location holds an object `depth` levels deep in all (the body
    and Properties are the first two)."""
    inner = '"x"'
    for _ in range(depth - 2):
        inner = '{"a":' + inner + "}"
    return f'{{"Properties": {{"Type": "Import", "Location": {inner}}}}}'


DEEP = nested(1100)
INT32_RANGE = "out of range (-2147483648 to 2147483647)"
BAD_INPUT: list[tuple[Any, ...]] = [
    ("nested-33", nested(33), "The body nests more than 32 levels deep."),
    # 990 deep was a 500: the message showed the value's repr, deeper than Python recurses
    ("nested-990", nested(990), "The body nests more than 32 levels deep."),
    ("nested-beyond-the-parser", DEEP, json_error(DEEP), "MALFORMED_JSON"),
    ("DriveCount-int32", body(DeliveryPackage={"DriveCount": 2**31}),
     f"DeliveryPackage: {INT32_RANGE}: 2147483648"),
    ("DriveCount-int64", body(DeliveryPackage={"DriveCount": -(2**63)}),
     f"DeliveryPackage: {INT32_RANGE}: -9223372036854775808"),
    ("DriveCount-5000-digits", body(DeliveryPackage={"DriveCount": "9" * 5000}),
     f"DeliveryPackage: must be an integer, not '{'9' * 17}...{'9' * 18}'"),
    ("PercentComplete-int32", body(PercentComplete=2**31),
     f"PercentComplete: {INT32_RANGE}: 2147483648"),
    ("PercentComplete-beyond-int64", body(PercentComplete=2**70),
     "PercentComplete: must be an integer, not 1.1805916207174113e+21"),
    ("DriveList-number", {**body(), "DriveList": 5}, "DriveList must be an array."),
    ("DriveList-item-number", {**body(), "DriveList": [5]},
     "DriveList items hold DriveId, BitLockerKey, ManifestFile, State."),
    ("Properties-array", {"Properties": [5]}, "Properties must be an object."),
    ("Type-long", body(type_="I" * 10_000),
     f"Type: must be Import or Export, not '{'I' * 17}...{'I' * 18}'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "message", "information"),
    [(c[1], c[2], c[3] if len(c) > 3 else "INVALID_BODY") for c in BAD_INPUT],
    ids=[c[0] for c in BAD_INPUT],
)
async def test_bad_input_is_400_invalid_request_and_changes_nothing(
    http: httpx.AsyncClient,
    clients: Clients,
    calls: list[str],
    raw: Any,
    message: str,
    information: str,
) -> None:
    """Bad input: objects nested deeper than 32 (or than the parser takes), integers
    beyond int32 or int64, a number where an array or object is expected, values too
    long to echo: 400 InvalidRequest with the whole odata.error body, never a 5xx; no
    call; a Put creates nothing and a PATCH changes nothing."""
    await put_job(http, "j1")
    before, _ = await get_job(http, "j1")
    calls.clear()
    content = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
    r = await http.put(job_url("new"), content=content, headers=HEADERS)
    refusal(r, 400, "InvalidRequest", message, information)
    r = await http.patch(job_url("j1"), content=content, headers=HEADERS)
    refusal(r, 400, "InvalidRequest", message, information)
    assert calls == []
    assert (await get_job(http, "j1"))[0] == before
    r = await http.get(job_url("new"), headers=HEADERS)
    refusal(r, 404, "JobNotFound", "The job new does not exist.", "JOB_NOT_FOUND")


@pytest.mark.parametrize("top", [str(2**31), "9" * 30, "0"])
async def test_top_out_of_range_is_400_invalid_request(
    http: httpx.AsyncClient, calls: list[str], top: str
) -> None:
    """Bad input: `$top` beyond 1-100 (int32, far beyond int64, zero): 400, no call."""
    r = await http.get(f"{prefix()}/jobs", params={"$top": top}, headers=HEADERS)
    refusal(r, 400, "InvalidRequest", "$top must be 1-100", "INVALID_QUERY")
    assert calls == []


async def test_ids_in_links_are_percent_encoded(http: httpx.AsyncClient) -> None:
    """Links: DataServiceId holds the subscription and account as their URL spells them
    (percent-encoded): a CR LF in an id never reaches a header (it dropped the connection
    without an answer)."""
    path = f"/{SUB}/services/importexport/storageaccounts/a%0D%0AX-Evil:%201/jobs/j1"
    r = await http.put(path, json=body("j1"), headers=HEADERS)
    assert r.status_code == 201, r.text
    assert "x-evil" not in r.headers
    assert r.headers["dataserviceid"].endswith(
        f"/{SUB}/services/importexport/storageaccounts/a%0D%0AX-Evil%3A%201/jobs/j1"
    )


async def test_links_use_the_public_url_not_the_host_header(
    clients: Clients, gateway: RunningGateway
) -> None:
    """Links: DataServiceId and odata.nextLink start with the configured public URL
    (--public-url), whatever Host the client sends."""
    public = "https://jobs.example.test:8443"
    running, stop = await start_gateway(gateway.app.upstream.target, public_url=public)
    evil = {**HEADERS, "host": "evil.example"}
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            for name in ("j1", "j2"):
                r = await http.put(job_url(name), json=body(name), headers=evil)
                assert r.headers["dataserviceid"] == f"{public}{job_url(name)}"
            r = await http.get(f"{prefix()}/jobs", params={"$top": "1"}, headers=evil)
            link = json_of(r, 200)["odata.nextLink"]
            assert link.startswith(f"{public}{prefix()}/jobs?"), link
            assert "evil" not in r.text
    finally:
        await stop()
