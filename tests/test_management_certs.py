"""Azure Scheduler and Import/Export authenticate by management certificate, as the classic
Service Management APIs did: real TLS (certificates made here), a secured gRPC server with
real JWTs and a policy, the real SchedulerManagementService client over HTTPS."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import grpc
import httpx
import pytest
import requests
from azure.common import AzureHttpError
from azure.servicemanagement import SchedulerManagementService

from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.dialects.importexport_codec import collection_id as ie_collection
from jobcontrol.gateway.dialects.scheduler import SchedulerDialect
from jobcontrol.gateway.dialects.scheduler_certs import MESSAGE, ManagementCerts, parse_certs
from jobcontrol.gateway.dialects.scheduler_rows import collection_id
from jobcontrol.service import tokens
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import job_service_pb2_grpc
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import (
    RunningGateway,
    record_rpcs,
    secured_settings,
    start_gateway,
)
from tests.pki import Issued, Pki, self_signed

NS = "http://schemas.microsoft.com/windowsazure"
SUB_A, SUB_B, CS = "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "sub-b", "mycs"
SCHED_VERSION = {"x-ms-version": "2013-06-01"}
IE_VERSION = {"x-ms-version": "2014-11-01"}
JOB: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00Z",
    "action": {"type": "http", "request": {"uri": "http://example.org/", "method": "GET"}},
    "recurrence": {"frequency": "minute", "count": 10, "interval": 30},
    "state": "enabled",
}
IE_JOB = {"Properties": {"Type": "Import", "Location": "West US"}}
SCHED_REFUSED = (
    f'<Error xmlns="{NS}"><Code>AuthenticationFailed</Code>'
    f"<Message>{escape(MESSAGE)}</Message></Error>"
)
IE_REFUSED = {
    "odata.error": {
        "code": "403",
        "message": {"lang": "en-US", "value": MESSAGE},
        "azure.values": [
            {"ExtendedCode": "AuthenticationFailed"},
            {"ExtendedInformation": "AUTHENTICATION_FAILED"},
        ],
    }
}


@dataclass
class Secured:
    """A secured server and a TLS gateway with management certificates: `a` and `a2` are
    registered for SUB_A, `b` for SUB_B, `stranger` is trusted by the listener but
    registered for nobody, `untrusted` is unknown to the listener."""

    server: RunningServer
    gateway: RunningGateway
    pki: Pki
    certs: dict[str, Issued]
    admin: tuple[tuple[str, str], ...]
    sessions: list[requests.Session] = field(default_factory=list)

    def https(self, cert: str | None) -> httpx.AsyncClient:
        """An HTTPS client that trusts the test CA and presents `cert` (None: no
        certificate)."""
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        if cert is not None:
            context.load_cert_chain(self.certs[cert].cert, self.certs[cert].key)
        return httpx.AsyncClient(base_url=self.gateway.base_url, verify=context, timeout=30)

    def legacy(self, subscription: str, cert: str | None) -> SchedulerManagementService:
        """The Service Management client over HTTPS with its management certificate, as
        it talks to management.core.windows.net (no protocol workaround)."""
        session = requests.Session()
        self.sessions.append(session)
        if cert is not None:
            session.cert = (str(self.certs[cert].cert), str(self.certs[cert].key))
        session.verify = str(self.pki.ca.cert)
        # requests prefers REQUESTS_CA_BUNDLE (and proxies) from the environment over the
        # session's own verify when it trusts the environment
        session.trust_env = False
        # urllib3 closes TLS connections without close_notify, and an asyncio TLS listener
        # then waits its SSL shutdown timeout (30 s) before a graceful stop completes
        session.headers["Connection"] = "close"
        host = self.gateway.base_url.removeprefix("https://")
        return SchedulerManagementService(
            subscription_id=subscription, request_session=session, host=host
        )

    async def collection(self, collection: str) -> res.Collection | None:
        """The collection as the server's admin sees it over gRPC (None if absent)."""
        async with grpc.aio.insecure_channel(self.server.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            try:
                return await stub.GetCollection(
                    js.GetCollectionRequest(name=f"collections/{collection}"), metadata=self.admin
                )
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
                return None

    async def create_natively(self, collection: str, labels: dict[str, str]) -> None:
        """A scheduled collection the admin creates over gRPC (owner user:admin)."""
        async with grpc.aio.insecure_channel(self.server.address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            await stub.CreateCollection(
                js.CreateCollectionRequest(
                    collection_id=collection,
                    collection=res.Collection(profile=res.SCHEDULED, labels=labels),
                ),
                metadata=self.admin,
            )


def _certificates(directory: Path) -> dict[str, Issued]:
    return {name: self_signed(directory, name) for name in ("a", "a2", "b", "stranger",
                                                             "untrusted")}  # fmt: skip


async def _secured(tmp_path: Path, **gateway: Any) -> tuple[Secured, Callable[[], Any]]:
    pki = Pki(tmp_path / "pki")
    listener = pki.server()
    certs = _certificates(tmp_path / "mgmt")
    bundle = tmp_path / "management.pem"
    bundle.write_bytes(b"".join(certs[n].pem() for n in ("a", "a2", "b", "stranger")))
    settings, key = secured_settings(tmp_path)
    token_file = tmp_path / "gateway.jwt"
    token_file.write_text(tokens.mint(key, "gateway"))
    server = await start_server(settings)
    # a2 registered in the other spellings the configuration allows: lower case, colons
    a2 = ":".join(certs["a2"].thumbprint[i : i + 2] for i in range(0, 40, 2)).lower()
    a, b = certs["a"].thumbprint, certs["b"].thumbprint
    registered = f"{SUB_A}={a}, {SUB_A.upper()}={a2},{SUB_B}={b}"
    gateway.setdefault("management_certs", registered)
    running, stop = await start_gateway(
        server.address,
        grpc_token_file=str(token_file),
        tls_cert=str(listener.cert),
        tls_key=str(listener.key),
        management_certs_file=str(bundle),
        **gateway,
    )
    admin = (("authorization", f"Bearer {tokens.mint(key, 'admin')}"),)
    secured = Secured(server, running, pki, certs, admin)

    async def stop_all() -> None:
        for session in secured.sessions:
            session.close()
        await stop()
        await server.stop(grace=1.0)

    return secured, stop_all


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    running, stop = await _secured(tmp_path)
    try:
        yield running
    finally:
        await stop()


async def call(method: Callable[..., Any], *args: Any) -> Any:
    """The legacy client is synchronous: off the loop that serves the gateway."""
    return await asyncio.to_thread(method, *args)


def sched_jobs(sub: str, jc: str = "jc") -> str:
    return f"/{sub}/cloudServices/{CS}/resources/scheduler/~/jobCollections/{jc}/jobs"


def ie_jobs(sub: str, account: str = "acct") -> str:
    return f"/{sub}/services/importexport/storageaccounts/{account}/jobs"


def assert_sched_refused(r: httpx.Response) -> None:
    """The whole Service Management refusal."""
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/xml; charset=utf-8"
    assert r.text == SCHED_REFUSED
    assert len(r.headers["x-ms-request-id"]) == 32


def assert_ie_refused(r: httpx.Response) -> None:
    """The whole Import/Export refusal."""
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-encoding"] == "identity"
    assert r.json() == IE_REFUSED


# --- configuration ----------------------------------------------------------------------


def test_management_certs_parse_thumbprints_per_subscription() -> None:
    """A17: Configuration: `sub=THUMBPRINT[,…]`; a subscription may have several certificates;
    thumbprints in any case, spaces and colons ignored; subscriptions compared without
    case (they are GUIDs)."""
    one, two = "ab" * 20, "0123456789ABCDEF0123456789abcdef01234567"
    spaced = " ".join(two[i : i + 2] for i in range(0, 40, 2))
    parsed = parse_certs(f" SubA={one}, suba={spaced} ,subB={one[:20]}:{one[20:]},")
    assert parsed == {"suba": frozenset({one.upper(), two.upper()}), "subb": {one.upper()}}
    assert parse_certs("") == {}


@pytest.mark.parametrize(
    "entry",
    ["suba", "suba=", f"={'ab' * 20}", "suba=xyz", f"suba={'ab' * 19}a", f"s/b={'ab' * 20}",
     f"suba={'ab' * 21}"],
)  # fmt: skip
def test_management_certs_malformed_entry_is_a_configuration_error_naming_it(entry: str) -> None:
    """A17: Configuration: a malformed entry stops the gateway with a message naming it."""
    with pytest.raises(SystemExit) as caught:
        parse_certs(f"good={'cd' * 20},{entry}")
    assert str(caught.value) == (
        f"JOBCONTROL_MANAGEMENT_CERTS: {entry!r}: expected subscription=THUMBPRINT (a SHA-1 "
        "thumbprint, 40 hex digits)"
    )


def test_management_certs_malformed_entry_stops_the_gateway_app() -> None:
    """A17: Configuration: the gateway application refuses to start on a malformed entry."""
    with pytest.raises(SystemExit, match="'sub=nothex'"):
        SchedulerDialect(GatewaySettings(management_certs="sub=nothex"))


@pytest.mark.parametrize(
    ("settings", "required"),
    [
        (GatewaySettings(), False),
        (GatewaySettings(management_certs=f"s={'ab' * 20}"), True),
        (GatewaySettings(grpc_token_file="/nonexistent/token"), True),
        (GatewaySettings(grpc_tls_cert="/nonexistent/cert"), True),
    ],
)
def test_management_certs_are_required_when_configured_or_the_gateway_is_secured(
    settings: GatewaySettings, required: bool
) -> None:
    """A17: Modes: a certificate is required once management certificates are configured or
    the gateway has an identity towards the server; neither is the open development mode."""
    assert ManagementCerts.from_settings(settings).required is required


# --- Scheduler: the legacy client over real TLS -------------------------------------------


async def test_scheduler_client_over_https_with_its_management_certificate(
    secured: Secured,
) -> None:
    """A17, A22: Scheduler: the SchedulerManagementService client over HTTPS with a certificate
    registered for its subscription creates a job collection and a job, reads them back,
    and the collection is owned by azure:<subscription> (the principal the gateway
    asserts; the gateway itself may only impersonate)."""
    client = secured.legacy(SUB_A, "a")
    await call(client.create_job_collection, CS, "jc")
    created = await call(client.create_job, CS, "jc", "job1", JOB)
    assert (await call(client.get_operation_status, created.request_id)).status == "Succeeded"
    assert (await call(client.get_job, CS, "jc", "job1"))["state"] == "enabled"
    assert [j["id"] for j in await call(client.get_all_jobs, CS, "jc")] == ["job1"]
    service = await call(client.get_cloud_service, CS)
    assert [r.name for r in service.resources] == ["jc"]
    stored = await secured.collection(collection_id(SUB_A, CS, "jc"))
    assert stored is not None and stored.owner == f"azure:{SUB_A}"


async def test_scheduler_second_certificate_and_any_case_of_the_subscription_authenticate(
    secured: Secured,
) -> None:
    """A17: Scheduler: a subscription's second certificate (registered in lower case with
    colons) authenticates too, also where the URL spells the subscription in upper case:
    the principal is the same azure:<subscription>."""
    client = secured.legacy(SUB_A.upper(), "a2")
    await call(client.create_job_collection, CS, "upper")
    stored = await secured.collection(collection_id(SUB_A.upper(), CS, "upper"))
    assert stored is not None and stored.owner == f"azure:{SUB_A}"


@pytest.mark.parametrize("cert", ["b", "stranger", None])
async def test_scheduler_client_without_a_certificate_of_the_subscription_is_403(
    secured: Secured, cert: str | None
) -> None:
    """A17: Scheduler: a certificate registered for another subscription, a trusted one
    registered for none, or no certificate: 403 AuthenticationFailed in the Service
    Management format, and no call reaches the server (nothing is created)."""
    calls = record_rpcs(secured.gateway.app)
    client = secured.legacy(SUB_A, cert)
    with pytest.raises(AzureHttpError) as caught:
        await call(client.create_job_collection, CS, "jc")
    assert caught.value.status_code == 403
    assert str(caught.value).endswith(SCHED_REFUSED)
    assert calls == []
    assert await secured.collection(collection_id(SUB_A, CS, "jc")) is None


async def test_scheduler_untrusted_certificate_fails_the_tls_handshake(secured: Secured) -> None:
    """A17: Scheduler: a certificate the listener does not trust (not in the management bundle,
    not issued by a client CA) never gets an HTTP answer: the handshake fails."""
    client = secured.legacy(SUB_A, "untrusted")
    with pytest.raises(requests.exceptions.ConnectionError):
        await call(client.get_cloud_service, CS)


@pytest.mark.parametrize(
    ("method", "path", "headers", "content"),
    [
        ("GET", sched_jobs(SUB_A), {}, b""),  # no x-ms-version
        ("GET", f"/{SUB_A}/cloudServices/{CS}/nowhere", SCHED_VERSION, b""),  # no route
        ("POST", sched_jobs(SUB_A) + "/job1", SCHED_VERSION, b"{}"),  # wrong method
        ("PUT", sched_jobs(SUB_A) + "/job1", SCHED_VERSION, b"x" * 20_000),  # over 16 KiB
        ("GET", f"/{SUB_A}/operations/{'0' * 32}", SCHED_VERSION, b""),
    ],
)
async def test_scheduler_authentication_comes_before_anything_else(
    secured: Secured, method: str, path: str, headers: dict[str, str], content: bytes
) -> None:
    """A17: Scheduler: without a registered certificate the answer is 403 AuthenticationFailed
    before versions, routing, methods or the body are looked at; no call is made."""
    calls = record_rpcs(secured.gateway.app)
    async with secured.https("b") as http:
        assert_sched_refused(await http.request(method, path, headers=headers, content=content))
    assert calls == []


async def test_scheduler_refused_requests_leave_no_operation_status(secured: Secured) -> None:
    """A17: Scheduler: a request refused for its certificate is not kept for Get Operation
    Status (an unauthenticated caller cannot evict the subscription's outcomes)."""
    async with secured.https("b") as intruder, secured.https("a") as owner:
        refused = await intruder.get(sched_jobs(SUB_A), headers=SCHED_VERSION)
        assert_sched_refused(refused)
        rid = refused.headers["x-ms-request-id"]
        r = await owner.get(f"/{SUB_A}/operations/{rid}", headers=SCHED_VERSION)
        assert r.status_code == 404, r.text
        assert "ResourceNotFound" in r.text


async def test_scheduler_cloud_service_lists_only_what_the_subscription_owns(
    secured: Secured,
) -> None:
    """A17: Principal: the cloud-service listing carries no grant, so it shows the collections
    azure:<subscription> created, not one the admin made with the same labels; Check Name
    Availability carries the owner grant of the name's collection, so a collection with
    that id is taken whoever made it."""
    labels = {"dialect": "scheduler", "subscription": SUB_A, "cloud-service": CS,
              "job-collection": "native"}  # fmt: skip
    await secured.create_natively("native-labelled", labels)
    await secured.create_natively(collection_id(SUB_A, CS, "taken"), {})
    client = secured.legacy(SUB_A, "a")
    await call(client.create_job_collection, CS, "mine")
    service = await call(client.get_cloud_service, CS)
    assert [r.name for r in service.resources] == ["mine"]
    assert (await call(client.check_job_collection_name, CS, "taken")).result is False
    assert (await call(client.check_job_collection_name, CS, "free")).result is True


async def test_scheduler_secured_gateway_without_management_certs_refuses_every_request(
    tmp_path: Path,
) -> None:
    """A17: Modes: a secured gateway with no management certificates configured answers every
    Scheduler and Import/Export request 403 AuthenticationFailed (it never calls the server
    as a principal it has not authenticated)."""
    running, stop = await _secured(tmp_path, management_certs="")
    try:
        calls = record_rpcs(running.gateway.app)
        async with running.https("a") as http:
            assert_sched_refused(await http.get(sched_jobs(SUB_A), headers=SCHED_VERSION))
            assert_ie_refused(await http.get(ie_jobs(SUB_A), headers=IE_VERSION))
        assert calls == []
    finally:
        await stop()


# --- Import/Export over raw HTTPS -----------------------------------------------------------


async def test_importexport_over_https_with_its_management_certificate(secured: Secured) -> None:
    """A17: Import/Export: httpx over HTTPS with a registered certificate puts, reads and lists
    a job; the storage account's collection is owned by azure:<subscription>."""
    async with secured.https("a") as http:
        r = await http.put(f"{ie_jobs(SUB_A)}/j1", json=IE_JOB, headers=IE_VERSION)
        assert r.status_code == 201, r.text
        r = await http.get(f"{ie_jobs(SUB_A)}/j1", headers=IE_VERSION)
        assert (r.status_code, r.json()["Name"]) == (200, "j1")
        r = await http.get(ie_jobs(SUB_A), headers=IE_VERSION)
        assert [j["Name"] for j in r.json()["value"]] == ["j1"]
    stored = await secured.collection(ie_collection(SUB_A, "acct"))
    assert stored is not None and stored.owner == f"azure:{SUB_A}"


@pytest.mark.parametrize("cert", ["b", "stranger", None])
@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("PUT", IE_VERSION),
        ("GET", IE_VERSION),
        ("DELETE", IE_VERSION),
        ("PUT", {}),  # no x-ms-version
        ("GET", {**IE_VERSION, "x-http-method": "DELETE"}),  # a refused method override
        ("PUT", {**IE_VERSION, "accept": "application/xml"}),  # not acceptable
    ],
)
async def test_importexport_without_a_certificate_of_the_subscription_is_403(
    secured: Secured, cert: str | None, method: str, headers: dict[str, str]
) -> None:
    """A17: Import/Export: another subscription's certificate, an unregistered one, or none:
    403 with ExtendedCode AuthenticationFailed (the Service Management code) before any
    other check, no call, no collection."""
    calls = record_rpcs(secured.gateway.app)
    async with secured.https(cert) as http:
        r = await http.request(method, f"{ie_jobs(SUB_A)}/j1", json=IE_JOB, headers=headers)
    assert_ie_refused(r)
    assert calls == []
    assert await secured.collection(ie_collection(SUB_A, "acct")) is None


async def test_importexport_subscriptions_do_not_reach_each_other(secured: Secured) -> None:
    """A17: Principal: SUB_B's certificate works on SUB_B's account and is refused on SUB_A's
    account of the same name; SUB_A's job stays as it was."""
    async with secured.https("a") as a, secured.https("b") as b:
        assert (await a.put(f"{ie_jobs(SUB_A)}/j1", json=IE_JOB, headers=IE_VERSION)).is_success
        assert (await b.put(f"{ie_jobs(SUB_B)}/j1", json=IE_JOB, headers=IE_VERSION)).is_success
        assert_ie_refused(await b.delete(f"{ie_jobs(SUB_A)}/j1", headers=IE_VERSION))
        assert (await a.get(f"{ie_jobs(SUB_A)}/j1", headers=IE_VERSION)).status_code == 200


async def test_importexport_links_use_the_public_url_over_tls(secured: Secured) -> None:
    """A18: Links: DataServiceId and odata.nextLink start with the configured public URL, not
    the Host header the client sent."""
    evil = {**IE_VERSION, "host": "evil.example"}
    async with secured.https("a") as http:
        for name in ("j1", "j2"):
            r = await http.put(f"{ie_jobs(SUB_A)}/{name}", json=IE_JOB, headers=evil)
            assert r.headers["dataserviceid"] == (
                f"{secured.gateway.base_url}{ie_jobs(SUB_A)}/{name}"
            )
        r = await http.get(ie_jobs(SUB_A), params={"$top": "1"}, headers=evil)
        assert r.json()["odata.nextLink"].startswith(f"{secured.gateway.base_url}{ie_jobs(SUB_A)}?")
