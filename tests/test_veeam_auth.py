"""The Veeam dialect under authentication (issue 13): the core decides what each session's
user may do, failed logons are throttled, links use the public URL, bad input is a 4xx Error
body. A real secured server (JWTs, a policy file), the real gateway over real HTTP, the real
veeam-em client."""

from __future__ import annotations

import asyncio
import base64
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import grpc
import httpx
import pytest
import requests
from google.longrunning import operations_pb2_grpc
from veeam_em.exceptions import VeeamEmError
from veeam_em.manager import VeeamEm

from jobcontrol.gateway.dialects import veeam_logon
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.veeam import VeeamDialect
from jobcontrol.gateway.dialects.veeam_sessions import ROLES as VEEAM_ROLES
from jobcontrol.gateway.dialects.veeam_sessions import Session, parse_users
from jobcontrol.gateway.dialects.veeam_throttle import MAX_BACKOFF, LogonThrottle, retry_after
from jobcontrol.gateway.http import Request
from jobcontrol.gateway.upstream import Upstream
from jobcontrol.service import tokens
from jobcontrol.service.core import access
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import (
    diagnostics_service_pb2_grpc,
    job_service_pb2_grpc,
    operator_service_pb2_grpc,
)
from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import (
    Clients,
    RunningGateway,
    record_rpcs,
    secured_settings,
    start_gateway,
)
from tests.helpers import assert_gone, get_job

COLLECTION = "veeam"
USERS = "admin:adminpw,oper:operpw,view:viewpw"
ROLES = "oper=operator,view=viewer"  # admin: administrator (the default)
PASSWORDS = {"admin": "adminpw", "oper": "operpw", "view": "viewpw"}
SID = "X-RestSvcSessionId"
NS = "http://www.veeam.com/ent/v1.0"
LOGON = "/api/sessionMngr/?v=latest"
JSON = {"Accept": "application/json"}
REALM = 'Basic realm="RestSvc"'
BAD_CREDENTIALS = {"StatusCode": 401, "Message": "The user name or password is incorrect."}
NO_SESSION = {
    "StatusCode": 401,
    "Message": "A valid X-RestSvcSessionId is required; log on first.",
}
THROTTLED = {"StatusCode": 429, "Message": "Too many failed logons; try again in 1 s."}
OTHER_ADDRESS = "127.0.0.2"


def denied(permission: str, job_id: str) -> dict[str, Any]:
    """The core's refusal in Enterprise Manager's Error format (JSON)."""
    where = f"collections/{COLLECTION}/jobs/{job_id}"
    message = f"permission jobcontrol.{permission} denied on {where} (or it does not exist)"
    return {"StatusCode": 403, "Message": message}


# --- a secured server, the gateway in front of it -----------------------------------


class _Bearer(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds a bearer token to every call (the test's own administrator)."""

    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = (*(details.metadata or ()), *self.metadata)
        return await continuation(details._replace(metadata=metadata), request)


@dataclass
class Secured:
    """A server with JWT authentication and SECURED_POLICY, and stubs of its administrator."""

    server: RunningServer
    key: Path
    admin: Clients

    def token_file(self, directory: Path, subject: str) -> str:
        path = directory / f"{subject}.jwt"
        path.write_text(tokens.mint(self.key, subject))
        return str(path)


@asynccontextmanager
async def secured_server(tmp_path: Path) -> AsyncIterator[Secured]:
    settings, key = secured_settings(tmp_path)
    server = await start_server(settings)
    interceptor = _Bearer(tokens.mint(key, "admin"))
    try:
        async with grpc.aio.insecure_channel(server.address, interceptors=[interceptor]) as ch:
            admin = Clients(
                channel=ch,
                jobs=job_service_pb2_grpc.JobServiceStub(ch),
                operator=operator_service_pb2_grpc.OperatorServiceStub(ch),
                operations=operations_pb2_grpc.OperationsStub(ch),
                diag=diagnostics_service_pb2_grpc.DiagnosticsServiceStub(ch),
            )
            await admin.jobs.CreateCollection(
                jobs_pb.CreateCollectionRequest(
                    collection_id=COLLECTION, collection=res.Collection(profile=res.BACKUP)
                )
            )
            yield Secured(server, key, admin)
    finally:
        await server.stop(grace=1.0)


@asynccontextmanager
async def veeam_gateway(target: str, **settings: Any) -> AsyncIterator[RunningGateway]:
    """The gateway with the Veeam dialect (an administrator, an operator, a viewer)."""
    settings = {"veeam_users": USERS, "veeam_roles": ROLES, "veeam_collection": COLLECTION,
                **settings}  # fmt: skip
    running, stop = await start_gateway(target, **settings)
    try:
        yield running
    finally:
        await stop()


@dataclass
class Front:
    """The secured server, the gateway (user:gateway, an impersonator), HTTP clients from
    two client addresses."""

    secured: Secured
    gateway: RunningGateway
    http: httpx.AsyncClient
    other: httpx.AsyncClient

    @property
    def admin(self) -> Clients:
        return self.secured.admin


@asynccontextmanager
async def client(base_url: str, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=base_url, transport=transport, timeout=10) as http:
        yield http


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    async with secured_server(tmp_path) as secured:
        token = secured.token_file(tmp_path, "gateway")
        async with (
            veeam_gateway(secured.server.address, grpc_token_file=token) as gateway,
            client(gateway.base_url) as http,
            client(gateway.base_url, OTHER_ADDRESS) as other,
        ):
            yield Front(secured, gateway, http, other)


async def seed(admin: Clients, job_type: Any = res.BackupSpec.BACKUP) -> res.Job:
    """A job made through gRPC by the administrator (the documented way to make them)."""
    spec = res.BackupSpec(job_type=job_type, platform=res.BackupSpec.VMWARE, schedule_enabled=True)
    job: res.Job = await admin.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=f"collections/{COLLECTION}",
            job_id=str(uuid.uuid4()),
            job=res.Job(display_name="Backup Job", backup=spec),
        )
    )
    return job


def jid(job: res.Job) -> str:
    return job.name.rsplit("/", 1)[-1]


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def logon(http: httpx.AsyncClient, user: str) -> dict[str, str]:
    """Log on (201): the session header and Accept JSON (the cookie jar is cleared)."""
    r = await http.post(LOGON, headers=basic(user, PASSWORDS[user]))
    assert r.status_code == 201, r.text
    http.cookies.clear()
    return {SID: r.headers[SID], **JSON}


def body(r: httpx.Response, status: int) -> Any:
    """The status and the JSON body."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json; charset=utf-8", r.headers
    return r.json()


def error_of(r: httpx.Response) -> dict[str, Any]:
    """The Error body, JSON or XML (`<Error xmlns=NS StatusCode= Message=/>`), as JSON."""
    if r.headers["content-type"].startswith("application/json"):
        found: dict[str, Any] = r.json()
        return found
    doc = ET.fromstring(r.content)
    assert (doc.tag, list(doc)) == (f"{{{NS}}}Error", []), r.text
    return {"StatusCode": int(doc.attrib["StatusCode"]), "Message": doc.attrib["Message"]}


async def poll(http: httpx.AsyncClient, headers: dict[str, str], tid: str) -> dict[str, Any]:
    """GET the task until it is Finished (bounded)."""
    for _ in range(500):
        task: dict[str, Any] = body(await http.get(f"/api/tasks/{tid}", headers=headers), 200)
        if task["State"] == "Finished":
            return task
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {tid} not finished")


async def jobs_of(admin: Clients, *jobs: res.Job) -> list[res.Job]:
    return [await get_job(admin, job.name) for job in jobs]


# --- 1. the core decides every right --------------------------------------------------

# what Enterprise Manager's roles could do through /api, by RPC (viewers read; operators
# also run the four actions; administrators also delete jobs and cancel deletions)
EM_RIGHTS = {
    "ListJobs": {"viewer", "operator", "administrator"},
    "GetJob": {"viewer", "operator", "administrator"},
    "ListOperations": {"viewer", "operator", "administrator"},
    "GetOperation": {"viewer", "operator", "administrator"},
    "StartJob": {"operator", "administrator"},
    "StopJob": {"operator", "administrator"},
    "RetryJob": {"operator", "administrator"},
    "ToggleJob": {"operator", "administrator"},
    "DeleteJob": {"administrator"},
    "CancelOperation": {"administrator"},
}


def test_veeam_roles_hold_core_roles_with_exactly_enterprise_managers_rights() -> None:
    """A15: Every RPC a Veeam row calls is allowed by the core role of exactly the Veeam roles
    that Enterprise Manager allowed it (viewer -> viewer, operator -> operator,
    administrator -> editor); no row checks a right of its own any more."""
    dialect = VeeamDialect(parse_users(USERS, ROLES), 900.0, COLLECTION)
    rows = [*dialect.routes, *dialect.by_action.values()]
    called = {row.rpc.name: row.rpc.path for row in rows if row.rpc is not None}
    assert set(called) == set(EM_RIGHTS)
    assert VEEAM_ROLES == {"viewer": "viewer", "operator": "operator", "administrator": "editor"}
    for name, path in called.items():
        permission = access.PERMISSIONS[path]
        allowed = {role for role, core in VEEAM_ROLES.items() if permission in access.ROLES[core]}
        assert allowed == EM_RIGHTS[name], name
    assert {row.data for row in rows} <= {None, "session"}


def incoming_of(dialect: VeeamDialect, user: str, headers: list[tuple[bytes, bytes]]) -> Incoming:
    scope = {"type": "http", "method": "DELETE", "path": "/api/jobs/j", "raw_path": b"/api/jobs/j",
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 5)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    incoming = Incoming(Request(scope, receive), "rid", dialect)
    incoming.route, incoming.params = dialect.resolve(incoming.request)
    incoming.state["session"] = Session("token", dialect.users[user])
    return incoming


@pytest.mark.parametrize(
    ("user", "principal", "grants"),
    [("admin", "veeam:admin", "editor=veeam"), ("oper", "veeam:oper", "operator=veeam"),
     ("view", "veeam:view", "viewer=veeam"), ("j\u00f6rg", "veeam:j%C3%B6rg", "operator=veeam")],
)  # fmt: skip
def test_each_call_asserts_the_session_user_and_never_the_clients_headers(
    user: str, principal: str, grants: str
) -> None:
    """A15: Metadata of a call: the request id, `veeam:<user>` (percent-encoded where metadata
    cannot carry it) with its role on the collection, and the gateway's own token; the
    client's Authorization and identity headers are not sent."""
    dialect = VeeamDialect(parse_users(USERS + ",j\u00f6rg:pw", ROLES + ",j\u00f6rg=operator"),
                           900.0, COLLECTION)  # fmt: skip
    forged = [(b"x-jobcontrol-principal", b"user:admin"), (b"x-jobcontrol-grants", b"admin=*"),
              (b"authorization", b"Bearer client-token")]  # fmt: skip
    upstream = Upstream("127.0.0.1:1")
    upstream.authorization = "Bearer gateway-token"
    assert dialect.metadata(incoming_of(dialect, user, forged), upstream) == [
        ("x-request-id", "rid"),
        ("x-jobcontrol-principal", principal),
        ("x-jobcontrol-grants", grants),
        ("authorization", "Bearer gateway-token"),
    ]
    assert veeam_logon.principal_of("a%b c") == "veeam:a%25b c"


async def test_viewer_delete_is_the_cores_403_and_changes_nothing(front: Front) -> None:
    """A15: Probe "a viewer-refused Veeam delete": a viewer's DELETE is refused by the core
    (one DeleteJob, PERMISSION_DENIED -> 403 Error body), before any lookup (an unknown id
    is 403 too); its actions are refused likewise; it still reads; nothing changed."""
    job = await seed(front.admin)
    view = await logon(front.http, "view")
    calls = record_rpcs(front.gateway.app)
    before = await jobs_of(front.admin, job)
    r = await front.http.delete(f"/api/jobs/{jid(job)}", headers=view)
    assert body(r, 403) == denied("jobs.delete", jid(job))
    unknown = str(uuid.uuid4())
    r = await front.http.delete(f"/api/jobs/{unknown}", headers=view)
    assert body(r, 403) == denied("jobs.delete", unknown)
    r = await front.http.post(f"/api/jobs/{jid(job)}?action=start", headers=view)
    assert body(r, 403) == denied("jobs.run", jid(job))
    r = await front.http.post(f"/api/jobs/{jid(job)}?action=toggleScheduleEnabled", headers=view)
    assert body(r, 403) == denied("jobs.pause", jid(job))
    assert calls == ["DeleteJob", "DeleteJob", "StartJob", "ToggleJob"]
    assert await jobs_of(front.admin, job) == before
    assert body(await front.http.get("/api/tasks", headers=view), 200) == {"Tasks": []}
    refs = body(await front.http.get("/api/jobs", headers=view), 200)["Refs"]
    assert [ref["UID"] for ref in refs] == [f"urn:veeam:Job:{jid(job)}"]
    r = await front.http.delete(f"/api/jobs/{jid(job)}", headers={SID: view[SID]})  # XML
    assert (r.status_code, error_of(r)) == (403, denied("jobs.delete", jid(job)))
    assert await jobs_of(front.admin, job) == before


async def test_operator_runs_actions_but_its_delete_is_the_cores_403(front: Front) -> None:
    """A15: An operator starts, stops, retries (after the stop's failed run) and toggles (202
    finished Tasks); its DELETE is the core's 403 and changes nothing."""
    job = await seed(front.admin)
    oper = await logon(front.http, "oper")
    operations = ["StartJob", "StopJob", "RetryJob", "ToggleScheduleEnabled"]
    actions = ("start", "stop", "retry", "toggleScheduleEnabled")
    for action, operation in zip(actions, operations, strict=True):
        r = await front.http.post(f"/api/jobs/{jid(job)}?action={action}", headers=oper)
        task = body(r, 202)
        assert (task["Operation"], task["State"], task["Result"]["Success"]) == (
            operation,
            "Finished",
            True,
        )
    before = await jobs_of(front.admin, job)
    assert before[0].backup.schedule_enabled is False
    r = await front.http.delete(f"/api/jobs/{jid(job)}", headers=oper)
    assert body(r, 403) == denied("jobs.delete", jid(job))
    assert await jobs_of(front.admin, job) == before
    tasks = body(await front.http.get("/api/tasks", headers=oper), 200)["Tasks"]
    assert [t["Operation"] for t in tasks] == operations


async def test_administrator_deletes_jobs_and_cancels_deletions(front: Front) -> None:
    """A15: An administrator's DELETE works (202 Task, Finished, the job gone), the task list
    reads the deletions' Operations (ListOperations shows them to the asserted user), and
    the cancellation of a deletion held by a running job works (CancelOperation: editor)."""
    idle, running = await seed(front.admin), await seed(front.admin)
    admin = await logon(front.http, "admin")
    task = body(await front.http.delete(f"/api/jobs/{jid(idle)}", headers=admin), 202)
    done = await poll(front.http, admin, task["TaskId"])
    assert done["Result"] == {"Success": True, "Message": "The job has been deleted."}
    await assert_gone(front.admin, idle.name)
    body(await front.http.post(f"/api/jobs/{jid(running)}?action=start", headers=admin), 202)
    held = body(await front.http.delete(f"/api/jobs/{jid(running)}", headers=admin), 202)
    assert held["State"] == "Running"
    calls = record_rpcs(front.gateway.app)
    tasks = body(await front.http.get("/api/tasks", headers=admin), 200)["Tasks"]
    assert calls == ["ListOperations"]  # filtered to what the asserted user may see
    assert [(t["Operation"], t["State"]) for t in tasks] == [
        ("DeleteJob", "Finished"),
        ("StartJob", "Finished"),
        ("DeleteJob", "Running"),
    ]
    r = await front.http.delete(f"/api/tasks/{held['TaskId']}", headers=admin)
    assert (r.status_code, r.content) == (204, b"")
    after = await get_job(front.admin, running.name)
    assert (after.state, after.delete_operation) == (res.RUNNING, "")


async def test_identity_headers_of_a_client_change_nothing(front: Front) -> None:
    """A15: A viewer sending x-jobcontrol-principal / -grants and an administrator's JWT is
    still the viewer: 403, nothing changed."""
    job = await seed(front.admin)
    view = await logon(front.http, "view")
    before = await jobs_of(front.admin, job)
    admin_jwt = tokens.mint(front.secured.key, "admin")
    forged = {**view, "x-jobcontrol-principal": "user:admin", "x-jobcontrol-grants": "admin=*",
              "authorization": f"Bearer {admin_jwt}"}  # fmt: skip
    r = await front.http.delete(f"/api/jobs/{jid(job)}", headers=forged)
    assert body(r, 403) == denied("jobs.delete", jid(job))
    assert await jobs_of(front.admin, job) == before


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "credentials are required: `authorization: Bearer <JWT>`"),
     ("mallory", "permission jobcontrol.dialects.sessions denied on this service (or it does "
                 "not exist)")],
)  # fmt: skip
async def test_a_gateway_the_server_does_not_trust_gets_403(
    tmp_path: Path, token: str | None, message: str
) -> None:
    """A15: A gateway without a token, or with one of a principal not bound to impersonator:
    even the logon is refused by the core (403; sessions are kept by the core, which does
    not trust the gateway), and so is the session lookup of every other request; nothing
    changes."""
    async with secured_server(tmp_path) as secured:
        job = await seed(secured.admin)
        before = await jobs_of(secured.admin, job)
        extra = {"grpc_token_file": secured.token_file(tmp_path, token)} if token else {}
        async with (
            veeam_gateway(secured.server.address, **extra) as gateway,
            client(gateway.base_url) as http,
        ):
            r = await http.post(LOGON, headers={**basic("admin", PASSWORDS["admin"]), **JSON})
            assert body(r, 403) == {"StatusCode": 403, "Message": message}
            assert SID not in r.headers
            forged = {SID: "c2lk", **JSON}
            for method, path in (("GET", "/api/jobs"), ("DELETE", f"/api/jobs/{jid(job)}")):
                r = await http.request(method, path, headers=forged)
                assert body(r, 403) == {"StatusCode": 403, "Message": message}
            assert await jobs_of(secured.admin, job) == before


# --- 2. logon throttling ---------------------------------------------------------------


async def refused_logon(http: httpx.AsyncClient, user: str, password: str, status: int) -> None:
    """A logon refused with `status` (401 bad credentials, 429 throttled): its exact Error
    body and headers, and no session (no token header, no cookie)."""
    r = await http.post(LOGON, headers={**basic(user, password), **JSON})
    assert body(r, status) == (BAD_CREDENTIALS if status == 401 else THROTTLED)
    assert SID not in r.headers
    assert "set-cookie" not in r.headers
    if status == 401:
        assert r.headers["www-authenticate"] == REALM
        assert "retry-after" not in r.headers
    else:
        assert r.headers["retry-after"] == "1"
        assert "www-authenticate" not in r.headers


async def test_five_failed_logons_of_a_user_make_its_logons_wait_even_with_the_right_password(
    front: Front,
) -> None:
    """A16: Throttling per user name: after 5 failures, the user's logons are 429 with
    Retry-After, even with the right password and from another address; other users there
    are not held; after the back-off (1 s) the right password logs on and clears the
    count (the next failure is a 401 again, five more throttle again)."""
    for _ in range(5):
        await refused_logon(front.http, "admin", "guess", 401)
    await refused_logon(front.http, "admin", PASSWORDS["admin"], 429)
    await refused_logon(front.other, "admin", PASSWORDS["admin"], 429)
    await logon(front.other, "oper")
    await asyncio.sleep(1.05)
    await logon(front.http, "admin")
    for _ in range(5):
        await refused_logon(front.http, "admin", "guess", 401)
    await refused_logon(front.http, "admin", PASSWORDS["admin"], 429)


async def test_five_failed_logons_from_an_address_make_every_logon_from_there_wait(
    front: Front,
) -> None:
    """A16: Throttling per client address: five failures under five names from one address ->
    every logon from there is 429 (a right password too); the same user from another
    address logs on."""
    for n in range(5):
        await refused_logon(front.other, f"nobody{n}", "guess", 401)
    await refused_logon(front.other, "view", PASSWORDS["view"], 429)
    await refused_logon(front.other, "nobody9", "guess", 429)
    await logon(front.http, "view")


async def test_requests_without_basic_credentials_guess_nothing_and_are_not_counted(
    front: Front,
) -> None:
    """A15: Throttling counts guesses: logons without Authorization, with another scheme or
    undecodable Basic are 401 without counting (twelve of them, then a right password:
    201)."""
    for headers in [{}, {"Authorization": "Bearer x"}, {"Authorization": "Basic !!"}] * 4:
        r = await front.http.post(LOGON, headers={**headers, **JSON})
        assert body(r, 401) == BAD_CREDENTIALS
    await logon(front.http, "admin")


async def test_logon_throttle_follows_the_gateway_settings(server: RunningServer) -> None:
    """A16: veeam_logon_failures / veeam_logon_backoff (through the gateway's settings): after
    2 failures a 0.3 s back-off; the next failure (once it has passed) doubles it to 0.6 s;
    after that the right password logs on."""
    async with (
        veeam_gateway(server.address, veeam_logon_failures=2, veeam_logon_backoff=0.3) as gateway,
        client(gateway.base_url) as http,
    ):
        for _ in range(2):
            await refused_logon(http, "admin", "guess", 401)
        await refused_logon(http, "admin", PASSWORDS["admin"], 429)
        await asyncio.sleep(0.35)
        await refused_logon(http, "admin", "guess", 401)
        await asyncio.sleep(0.3)
        await refused_logon(http, "admin", PASSWORDS["admin"], 429)
        await asyncio.sleep(0.4)
        await logon(http, "admin")


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_back_off_doubles_with_each_further_failure_up_to_15_minutes() -> None:
    """A15: LogonThrottle: the Nth failure starts `backoff`, each further one (tried once the
    wait is over) doubles it, capped at 900 s; success clears the name and the address."""
    clock = Clock()
    throttle = LogonThrottle(failures=5, backoff=1.0, clock=clock)
    waits = []
    for _ in range(20):
        clock.now += throttle.wait("admin", "10.0.0.1")
        throttle.failed("admin", "10.0.0.1")
        waits.append(throttle.wait("admin", "10.0.0.1"))
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900, 900,
                     900, 900]  # fmt: skip
    assert throttle.wait("admin", "10.0.0.2") == 900  # the name is held everywhere
    assert throttle.wait("oper", "10.0.0.1") == 900  # and the address for every name
    assert throttle.wait("oper", "10.0.0.2") == 0
    throttle.succeeded("admin", "10.0.0.1")
    assert throttle.wait("admin", "10.0.0.1") == 0
    assert [retry_after(s) for s in (0.001, 0.2, 1.0, 1.01, MAX_BACKOFF)] == [
        "1",
        "1",
        "1",
        "2",
        "900",
    ]


def test_throttle_memory_is_bounded_and_names_cost_a_fixed_size() -> None:
    """A16: At most 10,000 names and 10,000 addresses are tracked (the least recently failed
    are forgotten first); a 60 KiB name is kept as a 16-byte digest."""
    throttle = LogonThrottle(failures=1, backoff=60.0, clock=Clock())
    for n in range(10_001):
        throttle.failed(f"user{n}", f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert (len(throttle.names), len(throttle.addresses)) == (10_000, 10_000)
    assert throttle.wait("user0", "") == 0  # forgotten, the oldest
    assert throttle.wait("user1", "") == 60.0
    throttle.failed("x" * 60_000, "")
    assert {len(key) for key in throttle.names._records} == {16}
    assert throttle.wait("x" * 60_000, "") == 60.0


# --- 3. links --------------------------------------------------------------------------


def hrefs(node: Any) -> Iterator[str]:
    """Every Href of a JSON body."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Href":
                yield value
            yield from hrefs(value)
    elif isinstance(node, list):
        for item in node:
            yield from hrefs(item)


async def test_links_use_the_public_url_never_the_host_header(
    server: RunningServer, clients: Clients
) -> None:
    """A18: Probe "links from the Host header": with Host: evil.example (and X-Forwarded-Host /
    -Proto), every Href of the entry point, logon session, job lists and entities, action
    and deletion tasks starts with the configured public URL; XML says the same."""
    await clients.jobs.CreateCollection(
        jobs_pb.CreateCollectionRequest(
            collection_id=COLLECTION, collection=res.Collection(profile=res.BACKUP)
        )
    )
    job, gone = await seed(clients), await seed(clients)
    public = "https://em.example.com:9398"
    evil = {"Host": "evil.example", "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "gopher", **JSON}  # fmt: skip
    async with (
        veeam_gateway(server.address, public_url=public) as gateway,
        client(gateway.base_url) as http,
    ):
        r = await http.post(LOGON, headers={**basic("admin", PASSWORDS["admin"]), **evil})
        sid = r.headers[SID]
        headers = {**evil, SID: sid}
        bodies = [body(r, 201), body(await http.get("/api/", headers=evil), 200)]
        for path in ("/api/jobs", "/api/jobs?format=Entity", f"/api/jobs/{jid(job)}",
                     f"/api/jobs/{jid(job)}?format=Entity", "/api/nas/jobs", "/api/agents/jobs",
                     "/api/logonSessions", f"/api/logonSessions/{sid}"):  # fmt: skip
            bodies.append(body(await http.get(path, headers=headers), 200))
        r = await http.post(f"/api/jobs/{jid(job)}?action=start", headers=headers)
        bodies.append(body(r, 202))
        bodies.append(body(await http.delete(f"/api/jobs/{jid(gone)}", headers=headers), 202))
        bodies.append(body(await http.get("/api/tasks", headers=headers), 200))
        links = [href for b in bodies for href in hrefs(b)]
        assert len(links) > 40
        assert [href for href in links if not href.startswith(public + "/api")] == []
        xml = await http.get("/api/jobs?format=Entity", headers={"Host": "evil.example", SID: sid})
        assert "evil" not in xml.text and f'Href="{public}/api/jobs/' in xml.text


# --- 4. bad input ----------------------------------------------------------------------

# over-long input: two of it in one request still fit the gateway's 64 KiB header limit
HUGE = "x" * 20_000


async def test_bad_tokens_and_cookies_are_401_error_bodies_and_change_nothing(
    front: Front,
) -> None:
    """A19: Over-long session tokens (20,000 characters in the header, in the cookie, in the
    path) and malformed cookies: 401 in the Error format on every kind of row, no call,
    nothing changed."""
    job = await seed(front.admin)
    before = await jobs_of(front.admin, job)
    calls = record_rpcs(front.gateway.app)
    credentials: list[dict[str, str]] = [
        {SID: HUGE},
        {"Cookie": f"{SID}={HUGE}"},
        {"Cookie": f'{SID}="unterminated'},
        {"Cookie": f"{SID}"},
        {"Cookie": "=;=;=;;"},
        {"Cookie": f"{SID}=; {SID}=x"},
        {"Cookie": 'prefs={"a":"b;c"}; junk="'},
        {"Cookie": ";" * 10_000},
    ]
    for headers in credentials:
        for method, path in (
            ("GET", "/api/jobs"),
            ("DELETE", f"/api/jobs/{jid(job)}"),
            ("POST", f"/api/jobs/{jid(job)}?action=start"),
            ("GET", f"/api/logonSessions/{HUGE}"),
            ("GET", "/api/tasks"),
        ):
            r = await front.http.request(method, path, headers={**headers, **JSON})
            assert body(r, 401) == NO_SESSION, (method, path, headers.keys())
    assert calls == []
    assert await jobs_of(front.admin, job) == before


async def test_a_session_cookie_beside_malformed_foreign_cookies_still_counts(
    front: Front,
) -> None:
    """A19: Cookies are parsed leniently (RFC 6265): a quote, a JSON value or a stray `=`
    beside the session cookie does not hide it; the first session cookie wins."""
    sid = (await logon(front.http, "view"))[SID]
    for cookie in (f'prefs={{"a":1}}; junk="; {SID}={sid}', f'=; {SID}="{sid}"',
                   f"{SID}={sid}; {SID}=other"):  # fmt: skip
        r = await front.http.get("/api/tasks", headers={"Cookie": cookie, **JSON})
        assert body(r, 200) == {"Tasks": []}, cookie


@pytest.mark.parametrize(
    ("version", "shown"),
    [
        ("v9_9", "v9_9"),
        ("", ""),
        ("LATEST", "LATEST"),
        ("v1_7 ", "v1_7 "),
        (HUGE[:3000], HUGE[:64]),
    ],
)
async def test_unknown_api_version_is_400_without_a_session_or_a_count(
    front: Front, version: str, shown: str
) -> None:
    """A19: Log on with an unknown `v` (also empty, another case, 3,000 characters): 400 Error
    body echoing at most 64 characters, no session; it is not a failed logon (six of
    them, then the right password logs on)."""
    for _ in range(6):
        r = await front.http.post(
            "/api/sessionMngr/", params={"v": version}, headers={**basic("admin", "guess"), **JSON}
        )
        assert body(r, 400) == {"StatusCode": 400,
                                "Message": f"API version {shown} is not supported."}  # fmt: skip
        assert SID not in r.headers
    await logon(front.http, "admin")


async def test_malformed_basic_credentials_are_401_error_bodies(front: Front) -> None:
    """A19: Log on with a 20,000-character user name, a name that is not UTF-8, a control
    character, no colon, an empty credential: 401 Error body with the realm, no session."""
    raws = (HUGE.encode() + b":pw", b"\xff\xfe:pw", b"ad\x00min:adminpw", b"admin")
    encoded = [base64.b64encode(raw).decode() for raw in raws]
    for value in [*(f"Basic {e}" for e in encoded), "Basic", "basic ==", "Basic a b"]:
        r = await front.http.post(LOGON, headers={"Authorization": value, **JSON})
        assert body(r, 401) == BAD_CREDENTIALS, value[:40]
        assert (r.headers["www-authenticate"], SID in r.headers) == (REALM, False)


async def test_bad_query_values_and_ids_are_4xx_error_bodies_and_change_nothing(
    front: Front,
) -> None:
    """A19: A 3,000-character `format` (echoed at most 64), a 3,000-character `action`, ids
    that are not ids (NUL, 3,000 characters, a slash, invalid UTF-8, a space) on reads,
    actions and deletes: 400 Error bodies, XML and JSON, nothing changed."""
    job = await seed(front.admin)
    admin = await logon(front.http, "admin")
    before = await jobs_of(front.admin, job)
    r = await front.http.get(f"/api/jobs?format={HUGE[:3000]}", headers=admin)
    message = f"format must be Entity or Ref, not {HUGE[:64]}."
    assert body(r, 400) == {"StatusCode": 400, "Message": message}
    r = await front.http.post(f"/api/jobs/{jid(job)}?action={HUGE[:3000]}", headers=admin)
    message = "action must be one of start, stop, retry, toggleScheduleEnabled."
    assert body(r, 400) == {"StatusCode": 400, "Message": message}
    for method in ("GET", "DELETE", "POST"):
        for bad in ("%00", HUGE[:3000], "..%2F..", "%ff%fe", "%20"):
            # the core echoes at most 200 characters of a name
            name = f"collections/{COLLECTION}/jobs/{unquote(bad, errors='replace')}"[:200]
            want = f"name: must look like collections/{{collection}}/jobs/{{job}}, got {name!r}"
            for accept in (JSON, {"Accept": "application/xml"}):
                r = await front.http.request(
                    method, f"/api/jobs/{bad}?action=start", headers={**admin, **accept}
                )
                assert r.status_code == 400, (method, bad[:10], r.text)
                assert error_of(r) == {"StatusCode": 400, "Message": want}, (method, bad[:10])
    assert await jobs_of(front.admin, job) == before


# --- 5. the real veeam-em client against a secured server ------------------------------


async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The client is synchronous (requests): each call runs in a thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def em_of(front: Front, user: str, password: str = "") -> VeeamEm:
    em = VeeamEm(api_endpoint=front.gateway.base_url, ssl_verify=False)
    await call(em.get_token, user, password or PASSWORDS[user])
    return em


async def em_refusal(fn: Any, *args: Any, **kwargs: Any) -> str:
    """The VeeamEmError a refused request raises (its message ends with the Error body)."""
    with pytest.raises(VeeamEmError) as caught:
        await call(fn, *args, **kwargs)
    return str(caught.value)


async def test_veeam_em_client_with_each_role_against_a_secured_server(front: Front) -> None:
    """A15, A22: veeam-em, gateway secured (grpc_token_file, user:gateway impersonator): the
    administrator lists, starts, deletes and polls; the operator starts, its delete raises
    403; the viewer lists, its start and delete raise 403; nothing refused changed."""
    job, other = await seed(front.admin), await seed(front.admin)
    admin, oper, view = [await em_of(front, user) for user in ("admin", "oper", "view")]
    uids = {f"urn:veeam:Job:{jid(j)}" for j in (job, other)}
    for em in (admin, oper, view):
        assert {ref["UID"] for ref in (await call(em.request, "/jobs"))["Refs"]} == uids
    started = await call(
        oper.request, f"/jobs/{jid(job)}", method="POST", params={"action": "start"}
    )
    assert (started["Operation"], started["Result"]["Success"]) == ("StartJob", True)
    before = await jobs_of(front.admin, job, other)
    for em, method, params, permission in (
        (oper, "DELETE", None, "jobs.delete"),
        (view, "DELETE", None, "jobs.delete"),
        (view, "POST", {"action": "stop"}, "jobs.run"),
    ):
        text = await em_refusal(em.request, f"/jobs/{jid(job)}", method=method, params=params)
        assert text.startswith("status: 403; "), text
        assert text.endswith(f"data: {denied(permission, jid(job))}"), text
    assert await jobs_of(front.admin, job, other) == before
    task = await call(admin.request, f"/jobs/{jid(other)}", method="DELETE")
    for _ in range(500):
        task = await call(admin.request, f"/tasks/{task['TaskId']}")
        if task["State"] == "Finished":
            break
        await asyncio.sleep(0.02)
    assert task["Result"] == {"Success": True, "Message": "The job has been deleted."}
    await assert_gone(front.admin, other.name)


async def test_veeam_em_client_logon_is_throttled_after_five_bad_passwords(front: Front) -> None:
    """A16: veeam-em get_token: five bad passwords raise 401, the sixth logon (right password)
    raises 429 with Retry-After and the Error body."""
    for _ in range(5):
        with pytest.raises(requests.HTTPError) as caught:
            await em_of(front, "oper", "guess")
        assert caught.value.response.status_code == 401
    with pytest.raises(requests.HTTPError) as caught:
        await em_of(front, "oper")
    response = caught.value.response
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    assert response.json() == THROTTLED
