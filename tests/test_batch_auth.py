"""The Azure Batch dialect under authentication (issue 13, rules A11-A22), end to end."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import grpc
import httpx
import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from jobcontrol.gateway.app import create_app
from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialects.batch import BatchDialect, parse_accounts
from jobcontrol.gateway.dialects.batch_auth import strings_to_sign
from jobcontrol.gateway.http import Request
from jobcontrol.service import tokens
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import job_service_pb2_grpc
from tests.conftest import Clients, RunningGateway, secured_settings, start_gateway
from tests.helpers import json_error
from tests.test_dialect_batch import (
    API,
    KEY,
    OTHER_KEY,
    Api,
    assert_batch_error,
    http_date,
    in_thread,
    json_of,
    prop,
    reason,
)

ACCOUNTS = f"acct1={KEY},acct2={OTHER_KEY}"
ACCT1, ACCT2 = ("acct1", KEY), ("acct2", OTHER_KEY)
BAD_SIGNATURE = (
    "The MAC signature found in the HTTP request is not the same as any computed signature."
)
AIP_DENIED = "permission {permission} denied on {resource} (or it does not exist)"


def detail(text: str) -> list[dict[str, str]]:
    """BatchError values of an AuthenticationFailed."""
    return [{"key": "AuthenticationErrorDetail", "value": text}]


def stale(when: datetime, skew: int = 900) -> list[dict[str, str]]:
    return detail(
        f"The request date '{http_date(when)}' is more than {skew} seconds from the server's time."
    )


class Account(Api):
    """Signed raw requests as one account."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, signer: tuple[str, str]) -> None:
        super().__init__(http, base_url)
        self.signer = signer

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("signer", self.signer)
        return await super().call(method, path, **kwargs)


@dataclass
class Secured:
    """A server with bearer-JWT authentication and SECURED_POLICY, and the gateway in front of it
    with its own token (user:gateway, an impersonator)."""

    server: RunningServer
    key: Path
    gateway: RunningGateway
    http: httpx.AsyncClient

    def token(self, sub: str) -> str:
        return tokens.mint(self.key, sub)

    def account(self, signer: tuple[str, str]) -> Account:
        return Account(self.http, self.gateway.base_url, signer)

    async def admin_get(self, name: str) -> Any:
        """GetCollection as user:admin over gRPC (None: it does not exist)."""
        async with grpc.aio.insecure_channel(self.server.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            auth = (("authorization", f"Bearer {self.token('admin')}"),)
            try:
                return await stub.GetCollection(js.GetCollectionRequest(name=name), metadata=auth)
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
                return None


async def secured_setup(tmp_path: Path, identity: str = "gateway", **gateway: Any) -> Any:
    """Start the secured pair; returns it and a stopper. `identity`: whom the gateway's
    token names ("" no token; "forged": signed with a key the server does not know)."""
    settings, key = secured_settings(tmp_path)
    server = await start_server(settings)
    if identity:
        forged = identity == "forged"
        signer = tokens.keygen(tmp_path / "forger")[0] if forged else key
        token_file = tmp_path / "gateway.token"
        token_file.write_text(tokens.mint(signer, "gateway" if forged else identity))
        gateway.setdefault("grpc_token_file", str(token_file))
    running, stop_gateway = await start_gateway(server.address, batch_accounts=ACCOUNTS, **gateway)
    http = httpx.AsyncClient(base_url=running.base_url, timeout=30)

    async def stop() -> None:
        await http.aclose()
        await stop_gateway()
        await server.stop(grace=1.0)

    return Secured(server, key, running, http), stop


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    found, stop = await secured_setup(tmp_path)
    try:
        yield found
    finally:
        await stop()


@pytest.fixture
async def open_gateway(server: RunningServer) -> AsyncIterator[RunningGateway]:
    """The gateway (open mode) with accounts acct1 and acct2."""
    running, stop = await start_gateway(server.address, batch_accounts=ACCOUNTS)
    try:
        yield running
    finally:
        await stop()


@pytest.fixture
async def api(open_gateway: RunningGateway) -> AsyncIterator[Account]:
    async with httpx.AsyncClient(base_url=open_gateway.base_url, timeout=30) as http:
        yield Account(http, open_gateway.base_url, ACCT1)


def batch_dialect(gateway: RunningGateway) -> BatchDialect:
    return next(d for d in gateway.app.dialects if isinstance(d, BatchDialect))


# --- A11: the account is the principal and owns its collection --------------------------------


async def test_a11_account_does_everything_and_owns_its_collection(secured: Secured) -> None:
    """A11: in a secured setup the signed account makes every call as `batch:acct1` with
    `owner` on `batch-acct1`: add, get, list, update, replace, disable, enable, tasks,
    counts, terminate and delete all succeed, and the collection its first job created is
    owned by `batch:acct1`."""
    acct = secured.account(ACCT1)
    pool = {"poolInfo": {"poolId": "p"}}
    steps: list[tuple[str, str, dict[str, Any], int]] = [
        ("POST", "/jobs", {"json": {"id": "j1", **pool}}, 201),
        ("POST", "/jobs", {"json": {"id": "j2", **pool}}, 201),
        ("GET", "/jobs/j1", {}, 200),
        ("GET", "/jobs", {"params": {"$filter": "state eq 'active'"}}, 200),
        ("PATCH", "/jobs/j1", {"json": {"priority": 7}}, 200),
        ("PUT", "/jobs/j1", {"json": {**pool, "priority": 8}}, 200),
        ("POST", "/jobs/j1/disable", {"json": {"disableTasks": "requeue"}}, 202),
        ("POST", "/jobs/j1/enable", {}, 202),
        ("POST", "/jobs/j1/tasks", {"json": {"id": "t1", "commandLine": "echo"}}, 201),
        ("GET", "/jobs/j1/tasks", {}, 200),
        ("GET", "/jobs/j1/tasks/t1", {}, 200),
        ("GET", "/jobs/j1/taskcounts", {}, 200),
        ("POST", "/jobs/j2/terminate", {"json": {"terminateReason": "done"}}, 202),
        ("DELETE", "/jobs/j1", {"params": {"force": "true"}}, 202),
    ]
    seen = [(m, p, (await acct.call(m, p, **kw)).status_code) for m, p, kw, _ in steps]
    assert seen == [(m, p, status) for m, p, _, status in steps]
    await acct.wait_gone("j1")
    assert [j["id"] for j in json_of(await acct.call("GET", "/jobs"), 200)["value"]] == ["j2"]
    collection = await secured.admin_get("collections/batch-acct1")
    assert collection.owner == "batch:acct1"
    assert dict(collection.labels) == {"dialect": "batch", "account": "acct1"}


async def test_a11_another_account_neither_sees_nor_touches_the_jobs(secured: Secured) -> None:
    """A11: account acct2 lists none of acct1's jobs, and every call naming acct1's job is
    404 JobNotFound (its own collection has no such job); acct1's job is unchanged. acct2's
    own job of the same id lives in `batch-acct2`, owned by `batch:acct2`. Identity headers
    a client sends choose nothing."""
    one, two = secured.account(ACCT1), secured.account(ACCT2)
    await one.create("j1", priority=5)
    before = await one.get("j1")
    assert json_of(await two.call("GET", "/jobs"), 200)["value"] == []
    claim = {"x-jobcontrol-principal": "batch:acct1", "x-jobcontrol-grants": "owner=batch-*"}
    for method, path, kwargs in [
        ("GET", "/jobs/j1", {}),
        ("GET", "/jobs/j1", {"headers": claim}),
        ("PATCH", "/jobs/j1", {"json": {"priority": 1}}),
        ("PATCH", "/jobs/j1", {"json": {"priority": 1}, "headers": claim}),
        ("PUT", "/jobs/j1", {"json": {"poolInfo": {"poolId": "x"}}}),
        ("POST", "/jobs/j1/disable", {"json": {}}),
        ("POST", "/jobs/j1/terminate", {"json": {}}),
        ("POST", "/jobs/j1/tasks", {"json": {"id": "t"}}),
        ("DELETE", "/jobs/j1", {"params": {"force": "true"}}),
    ]:
        r = await two.call(method, path, **kwargs)
        assert_batch_error(r, 404, "JobNotFound", base_url=two.base_url)
    r = await two.call("GET", "/jobs", headers=claim)
    assert json_of(r, 200)["value"] == []
    assert await one.get("j1") == before
    await two.create("j1")
    assert (await secured.admin_get("collections/batch-acct2")).owner == "batch:acct2"
    assert (await one.get("j1"))["priority"] == 5


async def test_a11_user_without_a_binding_is_refused_on_the_accounts_collection(
    secured: Secured,
) -> None:
    """A11: through the native mapping a bearer user without a binding gets 403
    PERMISSION_DENIED on `batch-acct1` (list, get, update, pause, delete, bulk delete, the
    collection's quota, the collection itself; pre-creating another account's collection),
    no token 401; nothing changes, and an admin (bound) reads it."""
    acct = secured.account(ACCT1)
    await acct.create("j1", priority=5)
    collection = await secured.admin_get("collections/batch-acct1")
    mallory = {"authorization": f"Bearer {secured.token('mallory')}"}
    name = "collections/batch-acct1/jobs/j1"
    for method, path, permission, resource, body in [
        ("GET", "/v1/collections/batch-acct1/jobs", "jobs.list", "collections/batch-acct1", None),
        ("GET", f"/v1/{name}", "jobs.get", name, None),
        ("PATCH", f"/v1/{name}", "jobs.update", name, {"batch": {"priority": 1}}),
        ("DELETE", f"/v1/{name}", "jobs.delete", name, None),
        ("POST", f"/v1/{name}:pause", "jobs.pause", name, {}),
        ("POST", "/v1/collections/batch-acct1/jobs:batchDelete", "jobs.delete",
         "collections/batch-acct1", {}),
        ("PATCH", "/v1/collections/batch-acct1", "collections.update", "collections/batch-acct1",
         {"quota": {"maxActiveJobs": 0}}),
        ("DELETE", "/v1/collections/batch-acct1", "collections.delete",
         "collections/batch-acct1", None),
        ("POST", "/v1/collections?collectionId=batch-acct3", "collections.create",
         "collections/batch-acct3", {"profile": "SCHEDULED"}),
    ]:  # fmt: skip
        r = await secured.http.request(method, path, headers=mallory, json=body)
        assert r.status_code == 403, r.text
        error = r.json()["error"]
        message = AIP_DENIED.format(permission=f"jobcontrol.{permission}", resource=resource)
        assert (error["code"], error["status"], error["message"]) == (
            403, "PERMISSION_DENIED", message,
        )  # fmt: skip
        anonymous = await secured.http.request(method, path, json=body)
        assert anonymous.status_code == 401, anonymous.text
    admin = {"authorization": f"Bearer {secured.token('admin')}"}
    r = await secured.http.get(f"/v1/{name}", headers=admin)
    assert r.status_code == 200 and r.json()["batch"]["priority"] == 5
    assert (await acct.get("j1"))["priority"] == 5
    assert (await acct.get("j1"))["state"] == "active"
    assert await secured.admin_get("collections/batch-acct1") == collection
    assert await secured.admin_get("collections/batch-acct3") is None


@pytest.mark.parametrize(
    ("token", "status", "code", "values"),
    [
        ("", 403, "AuthorizationFailure", None),
        ("mallory", 403, "AuthorizationFailure", None),
        ("forged", 403, "AuthenticationFailed", None),
    ],
    ids=["gateway-without-identity", "gateway-not-an-impersonator", "gateway-token-forged"],
)
async def test_a11_core_refusals_are_batch_errors(
    tmp_path: Path, token: str, status: int, code: str, values: Any
) -> None:
    """A11: when the core refuses the gateway's assertion, the account gets Batch's answer:
    PERMISSION_DENIED (no gateway identity, or one not bound to `impersonator`) is 403
    AuthorizationFailure "This request is not authorized to perform this operation."
    (Batch's own answer to a forbidden request); UNAUTHENTICATED (a gateway token that does
    not verify) is 403 AuthenticationFailed. Nothing is created."""
    secured, stop = await secured_setup(tmp_path, token)
    try:
        acct = secured.account(ACCT1)
        for method, path, kwargs in [
            ("POST", "/jobs", {"json": {"id": "j1", "poolInfo": {"poolId": "p"}}}),
            ("GET", "/jobs", {}),
            ("GET", "/jobs/j1", {}),
        ]:
            r = await acct.call(method, path, **kwargs)
            assert_batch_error(r, status, code, values, base_url=acct.base_url)
        assert await secured.admin_get("collections/batch-acct1") is None
    finally:
        await stop()


# --- A12: the request's date -----------------------------------------------------------------


async def test_a12_patch_signed_for_2000_replayed_three_times_is_403_each_time(
    api: Account,
) -> None:
    """A12 (the issue's probe): a PATCH whose signature is good but whose ocp-date is
    2000-01-01 is 403 AuthenticationFailed every time it is replayed, and the job is
    unchanged (before: 200 three times)."""
    await api.create("j1", priority=5)
    before = await api.get("j1")
    then = datetime(2000, 1, 1, tzinfo=UTC)
    for _ in range(3):
        r = await api.call("PATCH", "/jobs/j1", json={"priority": 9},
                           headers={"ocp-date": http_date(then)})  # fmt: skip
        assert_batch_error(r, 403, "AuthenticationFailed", stale(then), base_url=api.base_url)
    assert await api.get("j1") == before


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


DATE_REFUSALS: dict[str, tuple[dict[str, str], Any]] = {
    "none": ({"ocp-date": ""}, lambda: detail("The request has no ocp-date or Date header.")),
    "iso-8601": ({"ocp-date": "2026-01-01T00:00:00Z"}, lambda: detail(
        "The ocp-date header is not an RFC 1123 date: '2026-01-01T00:00:00Z'.")),
    "numeric-zone": ({"ocp-date": "Thu, 01 Jan 2026 00:00:00 +0000"}, lambda: detail(
        "The ocp-date header is not an RFC 1123 date: 'Thu, 01 Jan 2026 00:00:00 +0000'.")),
    "no-such-day": ({"ocp-date": "Mon, 31 Feb 2026 00:00:00 GMT"}, lambda: detail(
        "The ocp-date header is not an RFC 1123 date: 'Mon, 31 Feb 2026 00:00:00 GMT'.")),
    "year-0": ({"ocp-date": "Mon, 01 Jan 0000 00:00:00 GMT"}, lambda: detail(
        "The ocp-date header is not an RFC 1123 date: 'Mon, 01 Jan 0000 00:00:00 GMT'.")),
    "year-9999": ({"ocp-date": "Fri, 31 Dec 9999 23:59:59 GMT"},
                  lambda: stale(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))),
    "16-minutes-old": ({"ocp-date": "-960"}, None),
    "16-minutes-ahead": ({"ocp-date": "960"}, None),
    "bad-date-header": ({"ocp-date": "", "date": "yesterday"}, lambda: detail(
        "The date header is not an RFC 1123 date: 'yesterday'.")),
    "ocp-date-wins": ({"ocp-date": "-3600", "date": "0"}, None),
}  # fmt: skip
DATE_ACCEPTED = {
    "14-minutes-old": {"ocp-date": "-840"},
    "14-minutes-ahead": {"ocp-date": "840"},
    "date-header-alone": {"ocp-date": "", "date": "0"},
    "ocp-date-over-a-stale-date": {"ocp-date": "0", "date": "-3600"},
    "one-digit-day": {"ocp-date": "d"},
}


def _dates(headers: dict[str, str]) -> tuple[dict[str, str], dict[str, datetime]]:
    """Header values and the moments they name: a number is seconds from now, `d` now with
    a one-digit day."""
    out, moments = {}, {}
    for name, value in headers.items():
        if value.lstrip("-").isdigit() or value == "d":
            moment = _now() + timedelta(seconds=int(value) if value != "d" else 0)
            value = http_date(moment)
            if headers[name] == "d":
                value = value.replace(f" {moment:%d} ", f" {moment.day} ")
            moments[name] = moment
        out[name] = value
    return out, moments


@pytest.mark.parametrize("case", list(DATE_REFUSALS))
async def test_a12_request_date_must_be_rfc1123_and_within_15_minutes(
    api: Account, case: str
) -> None:
    """A12: ocp-date (or Date when ocp-date is absent) must be present, RFC 1123 (GMT) and
    within 900 seconds of the gateway's clock, checked with the signature (both are
    signed): else 403 AuthenticationFailed saying why, and nothing is created."""
    given, expected = DATE_REFUSALS[case]
    headers, moments = _dates(given)
    # a stale or early ocp-date is reported as it was sent (it wins over Date)
    values = expected() if expected is not None else stale(moments["ocp-date"])
    r = await api.call("POST", "/jobs", json={"id": "j1", "poolInfo": {"poolId": "p"}},
                       headers=headers)  # fmt: skip
    assert_batch_error(r, 403, "AuthenticationFailed", values, base_url=api.base_url)
    assert await api.status("j1") == 404


@pytest.mark.parametrize("case", list(DATE_ACCEPTED))
async def test_a12_dates_within_the_skew_are_served(api: Account, case: str) -> None:
    """A12: a date within 15 minutes either way, the Date header when ocp-date is absent,
    ocp-date over a stale Date, and a one-digit day are served."""
    headers, _ = _dates(DATE_ACCEPTED[case])
    r = await api.call("POST", "/jobs", json={"id": "j1", "poolInfo": {"poolId": "p"}},
                       headers=headers)  # fmt: skip
    assert r.status_code == 201, r.text


async def test_a12_clock_skew_is_the_dialects_setting(
    api: Account, open_gateway: RunningGateway
) -> None:
    """A12: the allowed skew is the dialect's `clock_skew` (default 900 seconds)."""
    dialect = batch_dialect(open_gateway)
    assert dialect.clock_skew == 900
    dialect.clock_skew = 60
    then = _now() - timedelta(seconds=120)
    r = await api.call("GET", "/jobs", headers={"ocp-date": http_date(then)})
    assert_batch_error(r, 403, "AuthenticationFailed", stale(then, 60), base_url=api.base_url)
    recent = http_date(_now() - timedelta(seconds=30))
    assert (await api.call("GET", "/jobs", headers={"ocp-date": recent})).status_code == 200


async def test_a12_batch_clock_skew_setting_reaches_the_dialect(server: RunningServer) -> None:
    """A12: `--batch-clock-skew` (GatewaySettings.batch_clock_skew) is the dialect's skew."""
    running, stop = await start_gateway(server.address, batch_accounts=ACCOUNTS,
                                        batch_clock_skew=60)  # fmt: skip
    try:
        assert batch_dialect(running).clock_skew == 60
    finally:
        await stop()


# --- A13: the signature covers every query value ---------------------------------------------


def _request(method: str, path: str, query: str, headers: dict[str, str]) -> Request:
    """The gateway's view of a request (for computing what it verifies)."""
    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    return Request(scope, None)


def _mac(text: str) -> str:
    return base64.b64encode(
        hmac.new(base64.b64decode(KEY), text.encode(), hashlib.sha256).digest()
    ).decode()


def _signed(method: str, path: str, query: str, headers: dict[str, str], lower: bool) -> str:
    """A SharedKey for `query` as sent, by Azure's rule (`lower`) or the SDK's."""
    strings = strings_to_sign(_request(method, path, query, headers), "acct1")
    return f"SharedKey acct1:{_mac(strings[0] if lower or len(strings) == 1 else strings[1])}"


def _query(*pairs: tuple[str, str]) -> str:
    return urlencode([("api-version", API), *pairs], quote_via=quote)


async def test_a13_force_true_appended_to_a_signed_purge_is_403_and_nothing_purged(
    api: Account, clients: Clients
) -> None:
    """A13 (the issue's probe): `&force=true` appended to a signed `force=false` delete is
    403 AuthenticationFailed and the job is untouched (before: purged); the request as
    signed is served."""
    await api.create("j1")
    await api.add_task("j1", "t1")
    headers = {"ocp-date": http_date(_now())}
    query = _query(("force", "false"))
    auth = _signed("DELETE", "/jobs/j1", query, headers, True)
    sent = {**headers, "authorization": auth}
    r = await api.http.delete(f"/jobs/j1?{query}&force=true", headers=sent)
    assert_batch_error(r, 403, "AuthenticationFailed", detail(BAD_SIGNATURE),
                       base_url=api.base_url)  # fmt: skip
    assert (await api.get("j1"))["state"] == "active"
    r = await api.http.delete(f"/jobs/j1?{query}", headers=sent)
    assert r.status_code == 202, r.text
    # the purge runs in the background: the job is deleting, or already gone
    r = await api.call("GET", "/jobs/j1")
    assert (r.status_code, r.json().get("state", r.json().get("code"))) in {
        (200, "deleting"),
        (404, "JobNotFound"),
    }, r.text


async def test_a13_repeated_parameters_are_signed_whole_and_then_refused(api: Account) -> None:
    """A13: a signature over every value of a repeated parameter verifies (Azure's rule:
    values sorted and comma-joined), and the request is then 400
    InvalidQueryParameterValue (Batch has no repeated parameter), so a signed `a,b` split
    into `a` and `b` reads nothing else; a blank value added to a signed one is 403."""
    await api.create("j1")
    before = await api.get("j1")
    headers = {"ocp-date": http_date(_now())}
    for method, path, pairs in [
        ("DELETE", "/jobs/j1", [("force", "false"), ("force", "true")]),
        ("GET", "/jobs/j1", [("$select", "id"), ("$select", "state")]),
        ("GET", "/jobs", [("timeOut", "5"), ("timeout", "9")]),
    ]:
        query = _query(*pairs)
        auth = _signed(method, path, query, headers, True)
        r = await api.http.request(method, f"{path}?{query}",
                                   headers={**headers, "authorization": auth})  # fmt: skip
        values = [{"key": "QueryParameterName", "value": pairs[0][0]},
                  {"key": "QueryParameterValue", "value": pairs[0][1]},
                  reason("the parameter is given more than once")]  # fmt: skip
        assert_batch_error(r, 400, "InvalidQueryParameterValue", values, base_url=api.base_url)
    query = _query(("$select", "id,state"))
    auth = _signed("GET", "/jobs/j1", query, headers, False)
    split = _query(("$select", "id"), ("$select", "state"))
    r = await api.http.get(f"/jobs/j1?{split}", headers={**headers, "authorization": auth})
    assert r.status_code == 400 and r.json()["code"] == "InvalidQueryParameterValue"
    query = _query(("$filter", "state eq 'completed'"))
    auth = _signed("GET", "/jobs", query, headers, False)
    r = await api.http.get(f"/jobs?{query}&%24filter=", headers={**headers, "authorization": auth})
    assert_batch_error(r, 403, "AuthenticationFailed", detail(BAD_SIGNATURE),
                       base_url=api.base_url)  # fmt: skip
    assert await api.get("j1") == before


@pytest.mark.parametrize("lower", [True, False], ids=["azure-lower-case-names", "sdk-names"])
async def test_a13_parameter_names_signed_in_either_spelling_verify(
    api: Account, lower: bool
) -> None:
    """A13: `timeOut` signed as `timeout` (Azure's rule) or as sent (the azure-batch Python
    SDK's) verifies; both strings hold every parameter."""
    headers = {"ocp-date": http_date(_now())}
    query = _query(("timeOut", "10"), ("maxresults", "5"))
    auth = _signed("GET", "/jobs", query, headers, lower)
    r = await api.http.get(f"/jobs?{query}", headers={**headers, "authorization": auth})
    assert json_of(r, 200)["value"] == []


def test_a13_string_to_sign_holds_every_value_sorted_and_comma_joined() -> None:
    """A13: the canonical query lower-cases names (Azure's rule), decodes values, sorts and
    comma-joins each name's values and sorts the names; the SDK's spelling keeps names as
    sent and leaves out a parameter that only has empty values (as the SDK does); the
    azure-batch policy's own signature is one of them."""
    from azure.batch._patch import BatchSharedKeyAuthPolicy
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.rest import HttpRequest

    given = _request("GET", "/jobs", "b=2&A=x%20y&a=1&c=&timeOut=5", {})
    azure, sdk = strings_to_sign(given, "acct1")
    assert azure.endswith("/acct1/jobs\na:1,x y\nb:2\nc:\ntimeout:5")
    assert sdk.endswith("/acct1/jobs\nA:x y\na:1\nb:2\ntimeOut:5")
    date = {"ocp-date": "Mon, 01 Jan 2024 00:00:00 GMT"}
    url = "http://h/jobs?" + _query(("timeOut", "5"))
    request = HttpRequest("GET", url, headers=date)
    BatchSharedKeyAuthPolicy(AzureNamedKeyCredential("acct1", KEY)).on_request(
        PipelineRequest(request, PipelineContext(None))
    )
    ours = [_mac(t) for t in strings_to_sign(_request("GET", "/jobs", urlsplit(url).query, date),
                                             "acct1")]  # fmt: skip
    assert request.headers["Authorization"] == f"SharedKey acct1:{ours[1]}"


# --- A14: account names are case-insensitive ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"acct1={KEY},ACCT1={OTHER_KEY}", "batch accounts 'acct1' and 'ACCT1' are the same "
         "account (names are compared case-insensitively)"),
        (f"Acct1={KEY},aCCT1={KEY}", "batch accounts 'Acct1' and 'aCCT1' are the same "
         "account (names are compared case-insensitively)"),
        (f"a*={KEY}", "batch account 'a*': a name is 3-24 letters and digits"),
        (f"ab={KEY}", "batch account 'ab': a name is 3-24 letters and digits"),
        ("acct1=", "batch account 'acct1': the key has fewer than 16 bytes"),
        ("acct1=c2hvcnQ=", "batch account 'acct1': the key has fewer than 16 bytes"),
        ("acct1=not base64!", "batch account 'acct1': the key is not base64"),
        ("acct1", "batch accounts: expected name=base64key, got 'acct1'"),
    ],
    ids=["case", "case-mixed", "glob", "short-name", "empty-key", "short-key", "not-base64",
         "no-key"],
)  # fmt: skip
def test_a14_account_configuration_errors_stop_the_gateway(text: str, message: str) -> None:
    """A14: accounts differing only in case (one collection for two keys, before), names
    that are not 3-24 letters and digits (a `*` would be a glob in the account's grant),
    keys too short to be secret, are configuration errors: the gateway does not start."""
    with pytest.raises(SystemExit) as info:
        parse_accounts(text)
    assert str(info.value) == message
    with pytest.raises(SystemExit) as info:
        create_app(GatewaySettings(batch_accounts=text))
    assert str(info.value) == message


async def test_a14_account_is_looked_up_in_any_case_and_canonical(
    server: RunningServer, clients: Clients
) -> None:
    """A14: configured as `Acct1`, the account signs as `ACCT1` or `acct1` (each signing
    the name it sends): both are `batch:acct1` on the one collection `batch-acct1`."""
    running, stop = await start_gateway(server.address, batch_accounts=f"Acct1={KEY}")
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            upper = Account(http, running.base_url, ("ACCT1", KEY))
            lower = Account(http, running.base_url, ("acct1", KEY))
            await upper.create("j1")
            assert (await lower.get("j1"))["id"] == "j1"
            r = await lower.call("POST", "/jobs", json={"id": "J1", "poolInfo": {"poolId": "p"}})
            assert_batch_error(r, 409, "JobExists", base_url=running.base_url)
    finally:
        await stop()
    found = await clients.jobs.GetCollection(
        js.GetCollectionRequest(name="collections/batch-acct1")
    )
    assert (found.owner, found.labels["account"]) == ("batch:acct1", "acct1")
    listed = await clients.jobs.ListCollections(js.ListCollectionsRequest())
    assert [c.name for c in listed.collections] == ["collections/batch-acct1"]


# --- A18: links use the public URL -----------------------------------------------------------


async def test_a18_batch_links_use_the_public_url_never_the_host_header(
    server: RunningServer,
) -> None:
    """A18: with `Host: evil.example`, every link (job url, odata.metadata, DataServiceId,
    odata.nextLink, the error's odata.metadata) starts with the configured public URL
    (before: built from the client's Host)."""
    public = "https://batch.example.test"
    running, stop = await start_gateway(server.address, batch_accounts=ACCOUNTS,
                                        public_url=public + "/")  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            api = Account(http, running.base_url, ACCT1)
            evil = {"host": "evil.example"}
            for job_id in ("j1", "j2"):
                r = await api.call("POST", "/jobs", headers=evil,
                                   json={"id": job_id, "poolInfo": {"poolId": "p"}})  # fmt: skip
                assert r.headers["dataserviceid"] == f"{public}/jobs/{job_id}"
            r = await api.call("GET", "/jobs/j1", headers=evil)
            job = json_of(r, 200)
            assert (job["url"], job["odata.metadata"], r.headers["dataserviceid"]) == (
                f"{public}/jobs/j1", f"{public}/$metadata#jobs/@Element", f"{public}/jobs/j1",
            )  # fmt: skip
            page = json_of(await api.call("GET", "/jobs", params={"maxresults": 1}, headers=evil),
                           200)  # fmt: skip
            assert page["odata.nextLink"].startswith(f"{public}/jobs?")
            assert page["odata.metadata"] == f"{public}/$metadata#jobs"
            r = await api.call("GET", "/jobs/nope", headers=evil)
            assert_batch_error(r, 404, "JobNotFound", base_url=public)
    finally:
        await stop()


# --- A19: bad input is a 400 BatchError and changes nothing ------------------------------------


def _nest(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _json_reason(raw: bytes) -> list[dict[str, str]]:
    """The InvalidRequestBody values of a body orjson refuses."""
    return [reason(json_error(raw))]


def _member(name: str, why: str) -> list[dict[str, str]]:
    return [prop(name), reason(why)]


def _query_value(name: str, value: str, why: str) -> list[dict[str, str]]:
    return [{"key": "QueryParameterName", "value": name},
            {"key": "QueryParameterValue", "value": value}, reason(why)]  # fmt: skip


POOL = b'"poolInfo": {"poolId": "p"}'
TOO_DEEP_JSON = b'{"id": "x", "poolInfo": {"autoPoolSpecification": ' + b'{"a":' * 2000 + b"1"
TOO_DEEP_JSON += b"}" * 2002
NOT_A_DATE_RANGE = "Fri, 31 Dec 9999 23:59:59 -2359"
INT32 = "must be a 32-bit integer"
LONGEST = "is longer than P10675199DT2H48M5.4775807S"
DEEP_FILTER = "(" * 600 + "id eq 'a'" + ")" * 600
FILTER_DATE = "creationTime gt DateTime'9999-12-31T23:59:59-23:59'"
BAD_INPUT: dict[str, tuple[str, str, dict[str, Any], str, list[dict[str, str]]]] = {
    "int32-priority": ("POST", "/jobs", {"json": {"id": "x", "priority": 2**31, "poolInfo": {
        "poolId": "p"}}}, "InvalidRequestBody", _member("priority", INT32)),
    "int64-max-parallel": ("PATCH", "/jobs/j1", {"json": {"maxParallelTasks": 2**63}},
                           "InvalidRequestBody", _member("maxParallelTasks", INT32)),
    "beyond-uint64": ("PATCH", "/jobs/j1", {"content": b'{"priority": 184467440737095516160}'},
                      "InvalidRequestBody", _member("priority", "must be an integer")),
    "int32-retry-count": ("PATCH", "/jobs/j1", {"json": {"constraints": {
        "maxTaskRetryCount": -(2**31) - 1}}}, "InvalidRequestBody",
        _member("constraints.maxTaskRetryCount", INT32)),
    "infinite-number": ("PATCH", "/jobs/j1", {"content": b'{"priority": 1e400}'},
                        "InvalidRequestBody", _json_reason(b'{"priority": 1e400}')),
    "int64-in-auto-pool": ("POST", "/jobs", {"content": b'{"id": "x", "poolInfo": '
        b'{"autoPoolSpecification": {"pool": {"targetDedicatedNodes": 9223372036854775808}}}}'},
        "InvalidRequestBody", _member("poolInfo.autoPoolSpecification",
                                      "9223372036854775808 is beyond the 64-bit integer range")),
    "int64-in-task": ("POST", "/jobs/j1/tasks", {"content": b'{"id": "t9", "requiredSlots": '
        b'-9223372036854775809}'}, "InvalidRequestBody",
        _member("requiredSlots", "-9.223372036854776e+18 is beyond the 64-bit integer range")),
    "duration-past-timespan": ("PATCH", "/jobs/j1", {"json": {"constraints": {
        "maxWallClockTime": "P10675200D"}}}, "InvalidRequestBody",
        _member("constraints.maxWallClockTime", f"'P10675200D' {LONGEST}")),
    "duration-astronomic": ("PATCH", "/jobs/j1", {"json": {"constraints": {
        "maxWallClockTime": "PT" + "9" * 400 + "S"}}}, "InvalidRequestBody",
        _member("constraints.maxWallClockTime", f"'PT{'9' * 400}S' {LONGEST}")),
    "auto-pool-33-deep": ("POST", "/jobs", {"json": {"id": "x", "poolInfo": {
        "autoPoolSpecification": _nest(33)}}}, "InvalidRequestBody",
        _member("poolInfo.autoPoolSpecification", "nested more than 32 levels deep")),
    "auto-pool-2000-deep": ("POST", "/jobs", {"content": TOO_DEEP_JSON}, "InvalidRequestBody",
                            _json_reason(TOO_DEEP_JSON)),
    "body-100000-deep": ("POST", "/jobs", {"content": b"[" * 100000 + b"]" * 100000},
                         "InvalidRequestBody", _json_reason(b"[" * 100000)),
    "task-member-33-deep": ("POST", "/jobs/j1/tasks", {"json": {"id": "t9",
        "exitConditions": _nest(33)}}, "InvalidRequestBody",
        _member("exitConditions", "nested more than 32 levels deep")),
    "if-modified-since-range": ("GET", "/jobs/j1", {"headers": {
        "If-Modified-Since": NOT_A_DATE_RANGE}}, "InvalidHeaderValue",
        [{"key": "HeaderName", "value": "If-Modified-Since"},
         {"key": "HeaderValue", "value": NOT_A_DATE_RANGE}]),
    "if-unmodified-since-range": ("PATCH", "/jobs/j1", {"json": {"priority": 1}, "headers": {
        "If-Unmodified-Since": NOT_A_DATE_RANGE}}, "InvalidHeaderValue",
        [{"key": "HeaderName", "value": "If-Unmodified-Since"},
         {"key": "HeaderValue", "value": NOT_A_DATE_RANGE}]),
    "filter-600-deep": ("GET", "/jobs", {"params": {"$filter": DEEP_FILTER}},
                        "InvalidQueryParameterValue",
                        _query_value("$filter", DEEP_FILTER, "nested more than 32 deep")),
    "filter-date-range": ("GET", "/jobs", {"params": {"$filter": FILTER_DATE}},
                          "InvalidQueryParameterValue", _query_value("$filter", FILTER_DATE,
                          "creationTime: '9999-12-31T23:59:59-23:59' is out of range")),
    "page-token-huge": ("GET", "/jobs", {"params": {"$skiptoken": "A" * 3000}},
                        "InvalidQueryParameterValue",
                        [{"key": "QueryParameterName", "value": "$skiptoken"},
                         reason("not a page token")]),
    "maxresults-huge": ("GET", "/jobs", {"params": {"maxresults": "9" * 30}},
                        "InvalidQueryParameterValue", _query_value(
                            "maxresults", "9" * 30, "must be an integer from 1 to 1000")),
    "timeout-huge": ("GET", "/jobs/j1", {"params": {"timeOut": "9" * 30}},
                     "InvalidQueryParameterValue", _query_value(
                         "timeOut", "9" * 30, "must be a positive integer (seconds)")),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_a19_batch_bad_input_is_a_400_batch_error_and_changes_nothing(
    api: Account, case: str
) -> None:
    """A19 (issue point 5): integers beyond Int32 (typed members) or Int64 (kept objects),
    numbers beyond a double, durations past TimeSpan.MaxValue, objects nested past 32 levels
    (kept objects, `autoPoolSpecification`, `$filter`) or past the JSON parser's 1024,
    If-*-Since dates outside UTC's years 1-9999, page tokens and counts out of range: each
    a 400 BatchError (before: some were 500 InternalError), and nothing changes."""
    await api.create("j1", priority=5)
    await api.add_task("j1", "t1")
    before = json_of(await api.call("GET", "/jobs"), 200)["value"]
    tasks = json_of(await api.call("GET", "/jobs/j1/tasks"), 200)["value"]
    method, path, kwargs, code, values = BAD_INPUT[case]
    r = await api.call(method, path, **kwargs)
    assert_batch_error(r, 400, code, values, base_url=api.base_url)
    assert json_of(await api.call("GET", "/jobs"), 200)["value"] == before
    assert json_of(await api.call("GET", "/jobs/j1/tasks"), 200)["value"] == tasks


async def test_a19_batch_timespan_max_and_int_edges_are_still_accepted(api: Account) -> None:
    """A19: the edges stay valid: TimeSpan.MaxValue (no limit), Int32's ends on typed
    members, Int64's ends in kept objects."""
    body = {"id": "edge", "poolInfo": {"autoPoolSpecification": {"pool": {
        "big": 2**63 - 1, "small": -(2**63)}}}, "maxParallelTasks": 2**31 - 1,
        "constraints": {"maxWallClockTime": "P10675199DT2H48M5.4775807S",
                        "maxTaskRetryCount": -1}}  # fmt: skip
    r = await api.call("POST", "/jobs", json=body)
    assert r.status_code == 201, r.text
    job = await api.get("edge")
    assert "maxWallClockTime" not in job["constraints"]
    assert job["maxParallelTasks"] == 2**31 - 1


# --- A22: the SDK through a secured server ---------------------------------------------------


@pytest.fixture
def secured_sdk(secured: Secured) -> Iterator[tuple[BatchClient, BatchClient]]:
    """azure-batch clients for acct1 and acct2 pointed at the secured gateway."""
    clients = tuple(
        BatchClient(endpoint=secured.gateway.base_url, credential=AzureNamedKeyCredential(*s))
        for s in (ACCT1, ACCT2)
    )
    try:
        yield clients[0], clients[1]
    finally:
        for client in clients:
            client.close()


async def test_a22_sdk_end_to_end_through_a_secured_server(
    secured: Secured, secured_sdk: tuple[BatchClient, BatchClient]
) -> None:
    """A22: with authentication and a policy on the server (`user:gateway` impersonator) and
    the gateway's own token, the azure-batch SDK creates, gets, lists, updates (with
    `timeOut`, signed as `timeOut`), replaces, adds tasks and deletes
    (begin_delete_job(...).result()); the other account's client sees none of it."""
    sdk, other = secured_sdk
    options = bm.BatchJobCreateOptions(id="s1", pool_info=bm.BatchPoolInfo(pool_id="p"),
                                       priority=10)  # fmt: skip
    await in_thread(sdk.create_job, options)
    job = await in_thread(sdk.get_job, "s1", service_timeout=10)
    assert (job.id, job.priority, job.state) == ("s1", 10, bm.BatchJobState.ACTIVE)
    update = bm.BatchJobUpdateOptions(priority=5)
    await in_thread(sdk.update_job, "s1", update, service_timeout=10)
    assert (await in_thread(sdk.get_job, "s1")).priority == 5
    replaced = bm.BatchJob(pool_info=bm.BatchPoolInfo(pool_id="p"), priority=3)
    await in_thread(sdk.replace_job, "s1", replaced)
    await in_thread(sdk.create_task, "s1", bm.BatchTaskCreateOptions(id="t1", command_line="x"))
    assert await in_thread(lambda: [t.id for t in sdk.list_tasks("s1")]) == ["t1"]
    listed = await in_thread(lambda: [(j.id, j.priority) for j in sdk.list_jobs()])
    assert listed == [("s1", 3)]
    assert await in_thread(lambda: list(other.list_jobs())) == []
    with pytest.raises(ResourceNotFoundError) as info:
        await in_thread(other.get_job, "s1")
    assert info.value.error is not None and info.value.error.code == "JobNotFound"
    poller = await in_thread(sdk.begin_delete_job, "s1", polling_interval=0)
    await in_thread(poller.result)
    with pytest.raises(ResourceNotFoundError):
        await in_thread(sdk.get_job, "s1")
    assert (await secured.admin_get("collections/batch-acct1")).owner == "batch:acct1"


async def test_a22_sdk_with_a_stale_clock_is_refused(
    secured: Secured, secured_sdk: tuple[BatchClient, BatchClient]
) -> None:
    """A22: the SDK signs its own ocp-date; one 20 minutes old (a client with a wrong clock)
    is HttpResponseError 403 AuthenticationFailed and creates nothing."""
    sdk, _ = secured_sdk
    then = datetime.now(UTC) - timedelta(minutes=20)
    options = bm.BatchJobCreateOptions(id="s1", pool_info=bm.BatchPoolInfo(pool_id="p"))
    with pytest.raises(HttpResponseError) as info:
        await in_thread(sdk.create_job, options, ocp_date=then)
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.code == "AuthenticationFailed"
    assert await secured.admin_get("collections/batch-acct1") is None
