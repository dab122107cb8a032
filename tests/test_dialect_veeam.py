"""The Veeam Backup Enterprise Manager dialect over real HTTP to a real gRPC server
(shared/spec/dialects.md section 4; seed 004 DELETE /jobs/{ID}; the veeam test contract)."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeAlias

import grpc
import httpx
import orjson
import pytest
from google.longrunning import operations_pb2

from jobcontrol.gateway.dialects import veeam_errors, veeam_tasks
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.veeam import VeeamDialect
from jobcontrol.gateway.dialects.veeam_sessions import Session, TaskRecord, parse_users
from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.http import Request
from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import operator_service_pb2 as operator_pb
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients, RunningGateway, record_rpcs, start_gateway
from tests.helpers import assert_gone, get_job, wait_done

NS = "http://www.veeam.com/ent/v1.0"
USERS = "admin:s3cr3t:pw,oper:operpw,view:viewpw"
ROLES = "oper=operator,view=viewer"
PASSWORDS = {"admin": "s3cr3t:pw", "oper": "operpw", "view": "viewpw"}
COLLECTION = "veeam"
SID = "X-RestSvcSessionId"
XML_CT = "application/xml; charset=utf-8"
JSON_CT = "application/json; charset=utf-8"
REALM = 'Basic realm="RestSvc"'
TASK_ID = re.compile(r"task-[0-9]+")
SEED_004_ID = "5b89dae5-6f08-45ec-b068-08f0bd08394a"
LOGON = "/api/sessionMngr/?v=latest"
WITHIN = 10.0
Backup = res.BackupSpec
JobType: TypeAlias = res.BackupSpec.JobType.ValueType
Platform: TypeAlias = res.BackupSpec.Platform.ValueType

FORMATS = [False, True]
FORMAT_IDS = ["xml", "json"]
as_json_param = pytest.mark.parametrize("as_json", FORMATS, ids=FORMAT_IDS)


@dataclass(frozen=True)
class Kind:
    """Where a family of jobs lives in the dialect and how it is named."""

    path: str
    urn: str
    ref_type: str
    entity: str
    list_root: str
    job_type: str
    slash_actions: bool


GENERIC = Kind("/api/jobs", "Job", "JobReference", "Job", "Jobs", "", False)
NAS = Kind("/api/nas/jobs", "NasJob", "NasJobReference", "NasJob", "NasJobs", "NasBackup", True)
AGENT = Kind(
    "/api/agents/jobs",
    "AgentBackupJob",
    "AgentBackupJobReference",
    "AgentBackupJob",
    "AgentBackupJobs",
    "AgentBackup",
    False,
)
GENERIC_TYPES = {
    Backup.BACKUP: "Backup",
    Backup.REPLICA: "Replica",
    Backup.BACKUP_COPY: "BackupCopy",
}
PLATFORMS = {
    Backup.VMWARE: "VMware",
    Backup.VCLOUD: "vCloud",
    Backup.HYPERV: "Hyperv",
    Backup.WINDOWS: "Windows",
    Backup.LINUX: "Linux",
    Backup.FILE_SHARE: "FileShare",
}
DEFAULT_PLATFORM = {
    Backup.BACKUP: Backup.VMWARE,
    Backup.REPLICA: Backup.HYPERV,
    Backup.BACKUP_COPY: Backup.VCLOUD,
    Backup.NAS: Backup.FILE_SHARE,
    Backup.AGENT: Backup.WINDOWS,
}
LIST_ITEMS = {
    "EntityReferences": "Ref",
    "Jobs": "Job",
    "NasJobs": "NasJob",
    "AgentBackupJobs": "AgentBackupJob",
    "TaskList": "Task",
    "LogonSessions": "LogonSession",
}
ACTIONS = [
    ("start", "Start"),
    ("stop", "Stop"),
    ("retry", "Retry"),
    ("toggleScheduleEnabled", "ToggleScheduleEnabled"),
]


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture
async def vgw(server: RunningServer) -> AsyncIterator[RunningGateway]:
    """The gateway with the Veeam dialect on (three users, three roles, 15 minutes idle)."""
    running, stop = await start_gateway(
        server.address,
        veeam_users=USERS,
        veeam_roles=ROLES,
        veeam_session_idle=900.0,
        veeam_collection=COLLECTION,
    )
    try:
        yield running
    finally:
        await stop()


@pytest.fixture
async def vhttp(vgw: RunningGateway) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the Veeam gateway."""
    async with httpx.AsyncClient(base_url=vgw.base_url, timeout=30) as client:
        yield client


@pytest.fixture
async def coll(clients: Clients) -> res.Collection:
    """The dialect's backup collection, made by an operator through gRPC."""
    created: res.Collection = await clients.jobs.CreateCollection(
        jobs_pb.CreateCollectionRequest(
            collection_id=COLLECTION, collection=res.Collection(profile=res.BACKUP)
        )
    )
    return created


# --- gRPC side ----------------------------------------------------------------------


async def seed(
    clients: Clients,
    job_type: JobType = Backup.BACKUP,
    *,
    display_name: str = "Backup Job 1",
    platform: Platform | None = None,
    enabled: bool = True,
    description: str = "nightly",
    job_id: str | None = None,
) -> res.Job:
    """CreateJob in the dialect's collection (the documented way to make jobs)."""
    spec = res.BackupSpec(
        job_type=job_type,
        platform=DEFAULT_PLATFORM[job_type] if platform is None else platform,
        schedule_enabled=enabled,
        description=description,
    )
    created: res.Job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=f"collections/{COLLECTION}",
            job_id=job_id or str(uuid.uuid4()),
            job=res.Job(display_name=display_name, backup=spec),
        )
    )
    return created


async def snapshot(clients: Clients, *jobs: res.Job) -> list[res.Job]:
    """The jobs as they read now through gRPC."""
    return [await get_job(clients, job.name) for job in jobs]


async def assert_same(clients: Clients, before: list[res.Job]) -> None:
    """Every job reads back exactly as in `before` (a refused request changed nothing)."""
    for job in before:
        assert await get_job(clients, job.name) == job, job.name


async def record_run(clients: Clients, name: str) -> None:
    """OperatorService.RecordRun with a COMPLETED entry: ends the job's run."""
    await clients.operator.RecordRun(
        operator_pb.RecordRunRequest(
            parent=name, entry=res.HistoryEntry(status=res.HistoryEntry.COMPLETED)
        )
    )


def jid(job: res.Job) -> str:
    """The job id (last segment of its resource name)."""
    return job.name.rsplit("/", 1)[-1]


def kind_of(job: res.Job) -> Kind:
    """The dialect family of a job."""
    if job.backup.job_type == Backup.NAS:
        return NAS
    if job.backup.job_type == Backup.AGENT:
        return AGENT
    return GENERIC


# --- expected representations (JSON typing) -----------------------------------------


def base_of(http: httpx.AsyncClient) -> str:
    """BASE: the gateway's base URL as the client reached it."""
    return str(http.base_url).rstrip("/")


def job_name(job: res.Job) -> str:
    """Name: display_name or id."""
    return job.display_name or jid(job)


def ref_of(base: str, job: res.Job) -> dict[str, Any]:
    """The Ref of a job."""
    kind, i, name = kind_of(job), jid(job), job_name(job)
    return {
        "UID": f"urn:veeam:{kind.urn}:{i}",
        "Name": name,
        "Href": f"{base}{kind.path}/{i}",
        "Type": kind.ref_type,
        "Links": [
            {
                "Href": f"{base}{kind.path}/{i}?format=Entity",
                "Name": name,
                "Type": kind.entity,
                "Rel": "Alternate",
            }
        ],
    }


def action_href(base: str, kind: Kind, i: str, action: str) -> str:
    """An action link's Href (NAS: /start, others: ?action=start)."""
    if kind.slash_actions:
        return f"{base}{kind.path}/{i}/{action}"
    return f"{base}{kind.path}/{i}?action={action}"


def entity_of(base: str, job: res.Job) -> dict[str, Any]:
    """The entity of a job."""
    kind, i, name = kind_of(job), jid(job), job_name(job)
    links: list[dict[str, str]] = [
        {"Href": f"{base}{kind.path}/{i}", "Name": name, "Type": kind.ref_type, "Rel": "Alternate"}
    ]
    links += [
        {"Href": action_href(base, kind, i, action), "Type": "Task", "Rel": rel}
        for action, rel in ACTIONS
    ]
    return {
        "Href": f"{base}{kind.path}/{i}?format=Entity",
        "Type": kind.entity,
        "Name": name,
        "UID": f"urn:veeam:{kind.urn}:{i}",
        "Links": links,
        "JobType": GENERIC_TYPES.get(job.backup.job_type, kind.job_type),
        "Platform": PLATFORMS[job.backup.platform],
        "Description": job.backup.description,
        "ScheduleConfigured": True,
        "ScheduleEnabled": job.backup.schedule_enabled,
    }


def logon_session_of(base: str, sid: str, user: str) -> dict[str, Any]:
    """The LogonSession body."""
    return {
        "Href": f"{base}/api/logonSessions/{sid}",
        "Type": "LogonSession",
        "Links": [
            {"Href": f"{base}/api/logonSessions/{sid}", "Type": "LogonSession", "Rel": "Delete"},
            {"Href": f"{base}/api/jobs", "Type": "JobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/nas/jobs", "Type": "NasJobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/agents/jobs", "Type": "AgentJobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/tasks", "Type": "TaskList", "Rel": "Down"},
        ],
        "UserName": user,
        "SessionId": sid,
    }


def entry_point_of(base: str) -> dict[str, Any]:
    """The EnterpriseManager body."""
    return {
        "Links": [
            {"Href": f"{base}/api/sessionMngr/?v=latest", "Type": "LogonSession", "Rel": "Create"}
        ],
        "SupportedVersions": [
            {
                "Name": "v1_7",
                "Links": [
                    {
                        "Href": f"{base}/api/sessionMngr/?v=v1_7",
                        "Type": "LogonSession",
                        "Rel": "Create",
                    }
                ],
            }
        ],
    }


def xmlize(value: Any) -> Any:
    """The XML reading of a JSON-typed value: booleans "true"/"false", numbers as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {k: xmlize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [xmlize(v) for v in value]
    return value


# --- reading responses --------------------------------------------------------------


def local(el: ET.Element) -> str:
    """The local name of an element, which must be in NS."""
    prefix = "{" + NS + "}"
    assert el.tag.startswith(prefix), f"{el.tag} not in {NS}"
    return el.tag[len(prefix) :]


def leaf_text(el: ET.Element) -> str:
    """The text of an element with no attributes and no children."""
    assert not el.attrib, (el.tag, el.attrib)
    assert not list(el), el.tag
    return el.text or ""


def x2d(el: ET.Element) -> dict[str, Any]:
    """An element as a dict by the XML -> JSON mapping rules (values left as XML text)."""
    out: dict[str, Any] = dict(el.attrib)
    assert not (el.text or "").strip(), (el.tag, el.text)
    for child in el:
        tag = local(child)
        assert tag not in out, f"{tag} twice in {el.tag}"
        assert not (child.tail or "").strip()
        if tag == "Links":
            assert not child.attrib
            links = []
            for link in child:
                assert local(link) == "Link"
                assert not list(link)
                links.append(dict(link.attrib))
            out[tag] = links
        elif tag == "SupportedVersions":
            assert not child.attrib
            versions = []
            for version in child:
                assert local(version) == "SupportedVersion"
                versions.append(x2d(version))
            out[tag] = versions
        elif tag == "Result":
            assert set(child.attrib) == {"Success"}, child.attrib
            kids = list(child)
            assert [local(k) for k in kids] == ["Message"]
            out[tag] = {"Success": child.attrib["Success"], "Message": leaf_text(kids[0])}
        else:
            out[tag] = leaf_text(child)
    return out


def normalize(root: ET.Element) -> dict[str, Any]:
    """A whole document: list roots become {item + "s": [...]} (and carry no attributes)."""
    item = LIST_ITEMS.get(local(root))
    if item is None:
        return x2d(root)
    assert root.attrib == {}, root.attrib
    items = []
    for child in root:
        assert local(child) == item, (local(child), item)
        items.append(x2d(child))
    return {item + "s": items}


def parsed(r: httpx.Response, status: int, root: str, as_json: bool) -> Any:
    """Status, Content-Type, and the body: JSON as sent, or XML (root and all in NS) mapped."""
    assert r.status_code == status, (r.status_code, r.text)
    if as_json:
        assert r.headers.get("content-type") == JSON_CT, r.headers
        return r.json()
    assert r.headers.get("content-type") == XML_CT, r.headers
    doc = ET.fromstring(r.content)
    assert local(doc) == root, doc.tag
    for el in doc.iter():
        local(el)
    return normalize(doc)


def expect(
    r: httpx.Response, status: int, root: str, expected: dict[str, Any], as_json: bool
) -> None:
    """The response is exactly `expected` (given in JSON typing) in its representation."""
    got = parsed(r, status, root, as_json)
    want = expected if as_json else xmlize(expected)
    assert got == want, f"\n got: {got}\nwant: {want}"


def error(r: httpx.Response, status: int, as_json: bool = False) -> str:
    """The Error body: exactly StatusCode and a non-empty Message; returns the message."""
    assert r.status_code == status, (r.status_code, r.text)
    if as_json:
        assert r.headers.get("content-type") == JSON_CT, r.headers
        body = r.json()
        assert set(body) == {"StatusCode", "Message"}, body
        assert type(body["StatusCode"]) is int and body["StatusCode"] == status, body
        message = body["Message"]
    else:
        assert r.headers.get("content-type") == XML_CT, r.headers
        doc = ET.fromstring(r.content)
        assert local(doc) == "Error", doc.tag
        assert not list(doc), r.text
        assert not (doc.text or "").strip(), r.text
        assert set(doc.attrib) == {"StatusCode", "Message"}, doc.attrib
        assert doc.attrib["StatusCode"] == str(status), doc.attrib
        message = doc.attrib["Message"]
    assert isinstance(message, str) and message, r.text
    return message


@dataclass(frozen=True)
class TaskView:
    """What a Task says."""

    tid: str
    state: str
    operation: str
    success: bool | None
    message: str | None


def check_task(got: dict[str, Any], base: str, as_json: bool) -> TaskView:
    """A Task body (already mapped) has exactly the contract's shape."""
    tid = got.get("TaskId")
    assert isinstance(tid, str) and TASK_ID.fullmatch(tid), got
    state = got.get("State")
    assert state in ("Running", "Finished"), got
    operation = got.get("Operation")
    assert isinstance(operation, str), got
    expected: dict[str, Any] = {
        "Href": f"{base}/api/tasks/{tid}",
        "Type": "Task",
        "Links": [{"Href": f"{base}/api/tasks/{tid}", "Type": "Task", "Rel": "Delete"}],
        "TaskId": tid,
        "State": state,
        "Operation": operation,
    }
    success: bool | None = None
    message: str | None = None
    if state == "Finished":
        result = got.get("Result")
        assert isinstance(result, dict), got
        message = result.get("Message")
        assert isinstance(message, str), got
        raw = result.get("Success")
        if as_json:
            assert isinstance(raw, bool), got
            success = raw
        else:
            assert raw in ("true", "false"), got
            success = raw == "true"
        expected["Result"] = {"Success": success, "Message": message}
    want = expected if as_json else xmlize(expected)
    assert got == want, f"\n got: {got}\nwant: {want}"
    return TaskView(tid, state, operation, success, message)


def task_of(
    http: httpx.AsyncClient, r: httpx.Response, status: int = 202, as_json: bool = False
) -> TaskView:
    """A response whose body is one Task."""
    return check_task(parsed(r, status, "Task", as_json), base_of(http), as_json)


def tasks_of(http: httpx.AsyncClient, r: httpx.Response, as_json: bool = False) -> list[TaskView]:
    """GET /api/tasks: 200 TaskList."""
    body = parsed(r, 200, "TaskList", as_json)
    assert set(body) == {"Tasks"}, body
    return [check_task(t, base_of(http), as_json) for t in body["Tasks"]]


# --- requests -----------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    """An Authorization: Basic value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def auth(sid: str, as_json: bool = False) -> dict[str, str]:
    """The session header (and Accept: application/json when asked)."""
    headers = {SID: sid}
    if as_json:
        headers["Accept"] = "application/json"
    return headers


async def logon(http: httpx.AsyncClient, user: str = "admin") -> str:
    """Log on (201); the session id. The cookie jar is cleared: tests send tokens explicitly."""
    r = await http.post(LOGON, headers={"Authorization": basic(user, PASSWORDS[user])})
    assert r.status_code == 201, r.text
    http.cookies.clear()
    sid: str = r.headers[SID]
    return sid


async def act(
    http: httpx.AsyncClient, sid: str, job: res.Job, action: str, as_json: bool = False
) -> httpx.Response:
    """POST an action on a job through its family's route."""
    kind, i = kind_of(job), jid(job)
    if kind.slash_actions:
        return await http.post(f"{kind.path}/{i}/{action}", headers=auth(sid, as_json))
    return await http.post(
        f"{kind.path}/{i}", params={"action": action}, headers=auth(sid, as_json)
    )


async def poll_task(http: httpx.AsyncClient, sid: str, tid: str, as_json: bool = False) -> TaskView:
    """GET the task until it is Finished (bounded by WITHIN seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        r = await http.get(f"/api/tasks/{tid}", headers=auth(sid, as_json))
        task = task_of(http, r, 200, as_json)
        if task.state == "Finished":
            return task
        assert loop.time() < deadline, f"task {tid} not Finished after {WITHIN}s"
        await asyncio.sleep(0.05)


async def held_deletion(
    http: httpx.AsyncClient, clients: Clients, sid: str
) -> tuple[res.Job, TaskView]:
    """The deterministic hold: a started job whose deletion task stays Running.
    Returns the job as it was before the DELETE (RUNNING) and the deletion task."""
    job = await seed(clients)
    started = task_of(http, await act(http, sid, job, "start"))
    assert (started.state, started.success) == ("Finished", True)
    running = await get_job(clients, job.name)
    assert running.state == res.RUNNING
    task = task_of(http, await http.delete(f"/api/jobs/{jid(job)}", headers=auth(sid)))
    assert (task.state, task.operation) == ("Running", "DeleteJob")
    first = task_of(http, await http.get(f"/api/tasks/{task.tid}", headers=auth(sid)), 200)
    await asyncio.sleep(0.3)
    second = task_of(http, await http.get(f"/api/tasks/{task.tid}", headers=auth(sid)), 200)
    assert first == second == task
    assert (await get_job(clients, job.name)).state == res.DELETING
    return running, task


def allow_of(r: httpx.Response) -> set[str]:
    """The methods of the Allow header."""
    return {m.strip().upper() for m in r.headers.get("allow", "").split(",") if m.strip()}


# --- entry point --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/", "/api"])
@pytest.mark.parametrize("accept", [None, "application/xml", "*/*", "text/plain"])
async def test_entry_point_needs_no_token_and_is_xml_unless_json_preferred(
    vhttp: httpx.AsyncClient, path: str, accept: str | None
) -> None:
    """Entry point GET /api/ (also /api), no auth: 200 EnterpriseManager with the logon
    link and SupportedVersions v1_7; XML by default and for any Accept not preferring JSON."""
    headers = {} if accept is None else {"Accept": accept}
    r = await vhttp.get(path, headers=headers)
    expect(r, 200, "EnterpriseManager", entry_point_of(base_of(vhttp)), as_json=False)


async def test_entry_point_json_has_exactly_links_and_supported_versions(
    vhttp: httpx.AsyncClient,
) -> None:
    """Entry point: JSON keys exactly {"Links","SupportedVersions"}; SupportedVersions is
    [{"Name": "v1_7", "Links": [...]}]."""
    r = await vhttp.get("/api/", headers={"Accept": "application/json"})
    expect(r, 200, "EnterpriseManager", entry_point_of(base_of(vhttp)), as_json=True)


# --- log on -------------------------------------------------------------------------


@as_json_param
async def test_logon_is_201_with_session_header_cookie_and_logon_session(
    vhttp: httpx.AsyncClient, as_json: bool
) -> None:
    """Log on: 201, header X-RestSvcSessionId, Set-Cookie "X-RestSvcSessionId=<sid>;
    Path=/api; HttpOnly", body LogonSession (Href, Type, five Links, UserName, SessionId);
    SessionId base64-decodes to a 36-char uuid."""
    headers = {"Authorization": basic("admin", "s3cr3t:pw")}
    if as_json:
        headers["Accept"] = "application/json"
    r = await vhttp.post(LOGON, headers=headers)
    sid = r.headers.get(SID, "")
    decoded = base64.b64decode(sid, validate=True).decode()
    assert len(decoded) == 36
    assert str(uuid.UUID(decoded)) == decoded.lower()
    assert r.headers.get_list("set-cookie") == [f"{SID}={sid}; Path=/api; HttpOnly"]
    expect(r, 201, "LogonSession", logon_session_of(base_of(vhttp), sid, "admin"), as_json)


@pytest.mark.parametrize(
    "path",
    [
        "/api/sessionMngr/?v=latest",
        "/api/sessionMngr?v=latest",
        "/api/sessionMngr/",
        "/api/sessionMngr",
        "/api/sessionMngr/?v=v1_4",
        "/api/sessionMngr/?v=v1_5",
        "/api/sessionMngr/?v=v1_6",
        "/api/sessionMngr?v=v1_7",
    ],
)
async def test_logon_path_with_or_without_slash_and_v_absent_latest_or_v1_4_to_v1_7(
    vhttp: httpx.AsyncClient, path: str
) -> None:
    """Log on: also without trailing slash; v may be absent, "latest", or v1_4..v1_7."""
    r = await vhttp.post(path, headers={"Authorization": basic("oper", "operpw")})
    sid = r.headers.get(SID, "")
    expect(r, 201, "LogonSession", logon_session_of(base_of(vhttp), sid, "oper"), False)
    vhttp.cookies.clear()
    assert (await vhttp.get("/api/jobs", headers=auth(sid))).status_code == 200


@pytest.mark.parametrize("version", ["v1_3", "v1_8", "v2_0", "bogus"])
async def test_logon_with_another_version_is_400(vhttp: httpx.AsyncClient, version: str) -> None:
    """Log on: another v -> 400 (Error body, no session header)."""
    r = await vhttp.post(
        "/api/sessionMngr/",
        params={"v": version},
        headers={"Authorization": basic("admin", "s3cr3t:pw")},
    )
    error(r, 400)
    assert SID not in r.headers
    assert "set-cookie" not in r.headers


async def test_each_logon_gives_a_new_session_id(vhttp: httpx.AsyncClient) -> None:
    """Log on: each logon gives a new sid; both sessions work."""
    sids = [await logon(vhttp) for _ in range(3)]
    assert len(set(sids)) == 3
    for sid in sids:
        assert (await vhttp.get("/api/jobs", headers=auth(sid))).status_code == 200


BAD_AUTH = {
    "wrong-password": basic("admin", "nope"),
    "password-before-second-colon": basic("admin", "s3cr3t"),
    "unknown-user": basic("mallory", "s3cr3t:pw"),
    "other-users-password": basic("view", "operpw"),
    "non-basic-scheme": "Bearer " + base64.b64encode(b"admin:s3cr3t:pw").decode(),
    "undecodable-base64": "Basic !!!not-base64!!!",
}


@as_json_param
@pytest.mark.parametrize("case", [*BAD_AUTH, "missing"])
async def test_bad_credentials_are_401_with_www_authenticate_basic_realm(
    vhttp: httpx.AsyncClient, case: str, as_json: bool
) -> None:
    """Log on: bad password, unknown user, missing Authorization, non-Basic scheme,
    undecodable base64 -> 401 Error body AND WWW-Authenticate: Basic realm="RestSvc";
    the password is all after the FIRST ':'."""
    headers = {} if case == "missing" else {"Authorization": BAD_AUTH[case]}
    if as_json:
        headers["Accept"] = "application/json"
    r = await vhttp.post(LOGON, headers=headers)
    error(r, 401, as_json)
    assert r.headers.get("www-authenticate") == REALM
    assert SID not in r.headers
    assert "set-cookie" not in r.headers


async def test_password_is_everything_after_the_first_colon(vhttp: httpx.AsyncClient) -> None:
    """Log on: user:password, password = all after the FIRST ':' ("admin:s3cr3t:pw")."""
    r = await vhttp.post(LOGON, headers={"Authorization": basic("admin", "s3cr3t:pw")})
    sid = r.headers.get(SID, "")
    expect(r, 201, "LogonSession", logon_session_of(base_of(vhttp), sid, "admin"), False)


async def test_passwords_never_appear_in_logs(
    vhttp: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Log on: the password never appears in logs (DEBUG, good and bad logons)."""
    bad = "Wr0ngPassw0rd-xyzzy"
    with caplog.at_level(logging.DEBUG):
        for user, password in PASSWORDS.items():
            r = await vhttp.post(LOGON, headers={"Authorization": basic(user, password)})
            assert r.status_code == 201
            vhttp.cookies.clear()
        r = await vhttp.post(LOGON, headers={"Authorization": basic("admin", bad)})
        error(r, 401)
        r = await vhttp.post(LOGON, headers={"Authorization": basic("nobody", bad)})
        error(r, 401)
    for secret in [*PASSWORDS.values(), bad]:
        assert secret not in caplog.text, secret


async def test_dialect_is_off_when_no_users_are_configured(server: RunningServer) -> None:
    """Set-up: when veeam_users is "" the dialect is off: /api is nobody's route, so the
    native mapping answers 404 in its own (AIP-193) format, and no session is made."""
    running, stop = await start_gateway(server.address, veeam_users="")
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            r = await http.post(LOGON, headers={"Authorization": basic("admin", "s3cr3t:pw")})
            assert r.status_code == 404, r.text
            assert r.json()["error"]["status"] == "NOT_FOUND"
            assert SID not in r.headers
            r = await http.get("/api/")
            assert r.status_code == 404, r.text
            assert r.json()["error"]["status"] == "NOT_FOUND"
    finally:
        await stop()


# --- session token ------------------------------------------------------------------


@as_json_param
@pytest.mark.parametrize("token", [None, "unknown"])
async def test_missing_or_unknown_token_is_401_and_changes_nothing(
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    token: str | None,
    as_json: bool,
) -> None:
    """Session token: missing or unknown -> 401 Error body on every route but entry point
    and logon; the refused request changes nothing."""
    job = await seed(clients)
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    before = await snapshot(clients, job, nas, agent)
    headers: dict[str, str] = {}
    if token is not None:
        headers[SID] = base64.b64encode(str(uuid.uuid4()).encode()).decode()
    if as_json:
        headers["Accept"] = "application/json"
    i, n, a = jid(job), jid(nas), jid(agent)
    requests = [
        ("GET", "/api/jobs", {}),
        ("GET", "/api/jobs", {"format": "Entity"}),
        ("GET", f"/api/jobs/{i}", {}),
        ("GET", "/api/nas/jobs", {}),
        ("GET", f"/api/nas/jobs/{n}", {}),
        ("GET", "/api/agents/jobs", {}),
        ("GET", f"/api/agents/jobs/{a}", {}),
        ("GET", "/api/tasks", {}),
        ("GET", "/api/tasks/task-1", {}),
        ("DELETE", "/api/tasks/task-1", {}),
        ("POST", f"/api/jobs/{i}", {"action": "start"}),
        ("POST", f"/api/jobs/{i}", {"action": "toggleScheduleEnabled"}),
        ("POST", f"/api/nas/jobs/{n}/start", {}),
        ("POST", f"/api/agents/jobs/{a}", {"action": "start"}),
        ("DELETE", f"/api/jobs/{i}", {}),
        ("DELETE", f"/api/logonSessions/{headers.get(SID, 'x')}", {}),
        ("GET", f"/api/logonSessions/{headers.get(SID, 'x')}", {}),
        ("GET", "/api/logonSessions", {}),
    ]
    for method, path, params in requests:
        r = await vhttp.request(method, path, params=params, headers=headers)
        try:
            error(r, 401, as_json)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {params}: {exc}") from exc
    await assert_same(clients, before)


async def test_cookie_from_logon_alone_authenticates(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Session token: from cookie X-RestSvcSessionId (as set by log on), else header."""
    job = await seed(clients)
    r = await vhttp.post(LOGON, headers={"Authorization": basic("admin", "s3cr3t:pw")})
    assert r.status_code == 201
    assert vhttp.cookies.get(SID) == r.headers[SID]
    r = await vhttp.get("/api/jobs")
    expect(r, 200, "EntityReferences", {"Refs": [ref_of(base_of(vhttp), job)]}, False)
    vhttp.cookies.clear()
    error(await vhttp.get("/api/jobs"), 401)


async def test_cookie_wins_over_header_both_ways(vhttp: httpx.AsyncClient) -> None:
    """Session token: the cookie wins (valid header + unknown cookie -> 401; unknown header +
    valid cookie -> 200)."""
    sid = await logon(vhttp)
    unknown = base64.b64encode(str(uuid.uuid4()).encode()).decode()
    r = await vhttp.get("/api/tasks", headers={SID: sid, "Cookie": f"{SID}={unknown}"})
    error(r, 401)
    r = await vhttp.get("/api/tasks", headers={SID: unknown, "Cookie": f"{SID}={sid}"})
    assert tasks_of(vhttp, r) == []
    r = await vhttp.get("/api/tasks", headers={"Cookie": f"{SID}={sid}"})
    assert tasks_of(vhttp, r) == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/nope",
        "/api/jobs/abc/def",
        "/api/nas",
        "/api/nas/things",
        "/api/agents",
        "/api/tasks/task-1/more",
    ],
)
async def test_unknown_route_under_api_is_404_even_without_token(
    vhttp: httpx.AsyncClient, path: str
) -> None:
    """Route resolution comes first: an unknown route under /api is 404 even without a
    token."""
    error(await vhttp.get(path), 404)
    error(await vhttp.get(path, headers={"Accept": "application/json"}), 404, True)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/jobs", {"GET"}),
        ("POST", "/api/jobs", {"GET"}),
        ("PATCH", f"/api/jobs/{SEED_004_ID}", {"GET", "POST", "DELETE"}),
        ("PUT", f"/api/jobs/{SEED_004_ID}", {"GET", "POST", "DELETE"}),
        ("DELETE", f"/api/nas/jobs/{SEED_004_ID}", {"GET"}),
        ("DELETE", f"/api/agents/jobs/{SEED_004_ID}", {"GET", "POST"}),
        ("GET", f"/api/nas/jobs/{SEED_004_ID}/start", {"POST"}),
        ("POST", "/api/tasks", {"GET"}),
        ("PUT", "/api/tasks/task-1", {"GET", "DELETE"}),
        ("GET", "/api/sessionMngr/", {"POST"}),
        ("POST", "/api/logonSessions/abc", {"DELETE"}),
        ("POST", "/api/", {"GET"}),
    ],
)
async def test_wrong_method_is_405_with_allow_even_without_token(
    vhttp: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    """Route resolution comes first: a wrong method is 405 (with Allow header) even without
    a token; Error body."""
    r = await vhttp.request(method, path)
    error(r, 405)
    allow = allow_of(r)
    assert allowed <= allow, r.headers
    assert method not in allow, r.headers


async def test_idle_session_expires_and_a_request_within_the_window_works(
    server: RunningServer,
) -> None:
    """Session token: expired (idle longer than veeam_session_idle seconds) -> 401; a
    request within the window works."""
    running, stop = await start_gateway(
        server.address, veeam_users=USERS, veeam_roles=ROLES, veeam_session_idle=0.5
    )
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            sid = await logon(http)
            expect(
                await http.get("/api/jobs", headers=auth(sid)),
                200,
                "EntityReferences",
                {"Refs": []},
                False,
            )
            await asyncio.sleep(1.0)
            error(await http.get("/api/jobs", headers=auth(sid)), 401)
            error(await http.get("/api/tasks", headers=auth(sid, True)), 401, True)
            other = await logon(http)
            assert (await http.get("/api/tasks", headers=auth(other))).status_code == 200
    finally:
        await stop()


async def test_each_authenticated_request_refreshes_the_idle_window(
    server: RunningServer,
) -> None:
    """Session token: each authenticated request refreshes it (requests every 0.2 s keep a
    0.5 s session alive for well over 0.5 s; idle 1.0 s then ends it)."""
    running, stop = await start_gateway(
        server.address, veeam_users=USERS, veeam_roles=ROLES, veeam_session_idle=0.5
    )
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            sid = await logon(http)
            for _ in range(6):
                await asyncio.sleep(0.2)
                r = await http.get("/api/tasks", headers=auth(sid))
                assert r.status_code == 200, r.text
            await asyncio.sleep(1.0)
            error(await http.get("/api/tasks", headers=auth(sid)), 401)
    finally:
        await stop()


# --- log off ------------------------------------------------------------------------


@as_json_param
async def test_log_off_is_204_and_the_old_token_is_then_401(
    vhttp: httpx.AsyncClient, as_json: bool
) -> None:
    """Log off: DELETE /api/logonSessions/{sid} -> 204 empty body; after log off the old
    token -> 401."""
    sid = await logon(vhttp)
    r = await vhttp.delete(f"/api/logonSessions/{sid}", headers=auth(sid, as_json))
    assert r.status_code == 204, r.text
    assert r.content == b""
    error(await vhttp.get("/api/jobs", headers=auth(sid, as_json)), 401, as_json)
    error(await vhttp.delete(f"/api/logonSessions/{sid}", headers=auth(sid, as_json)), 401, as_json)
    r = await vhttp.get("/api/jobs", headers={"Cookie": f"{SID}={sid}"})
    error(r, 401)


@as_json_param
async def test_log_off_of_another_session_is_404_and_that_session_still_works(
    vhttp: httpx.AsyncClient, as_json: bool
) -> None:
    """Log off: sid other than the caller's own session -> 404 (and that other session
    still works), also for a session of the same user and an unknown sid."""
    mine = await logon(vhttp, "admin")
    same_user = await logon(vhttp, "admin")
    other_user = await logon(vhttp, "view")
    unknown = base64.b64encode(str(uuid.uuid4()).encode()).decode()
    for sid in (same_user, other_user, unknown):
        r = await vhttp.delete(f"/api/logonSessions/{sid}", headers=auth(mine, as_json))
        error(r, 404, as_json)
    for sid in (mine, same_user, other_user):
        assert (await vhttp.get("/api/tasks", headers=auth(sid))).status_code == 200


# --- roles --------------------------------------------------------------------------


@as_json_param
async def test_viewer_may_get_but_post_actions_and_delete_are_403_and_change_nothing(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Roles: viewer: only GETs — POST actions and DELETE /api/jobs -> 403 Error body; a
    refused request changes nothing (gRPC state, and no task made)."""
    job = await seed(clients)
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    sid = await logon(vhttp, "view")
    base = base_of(vhttp)
    r = await vhttp.get("/api/jobs", headers=auth(sid, as_json))
    expect(r, 200, "EntityReferences", {"Refs": [ref_of(base, job)]}, as_json)
    r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=auth(sid, as_json))
    expect(r, 200, "Job", entity_of(base, job), as_json)
    r = await vhttp.get("/api/nas/jobs", headers=auth(sid, as_json))
    expect(r, 200, "EntityReferences", {"Refs": [ref_of(base, nas)]}, as_json)
    r = await vhttp.get("/api/agents/jobs", headers=auth(sid, as_json))
    expect(r, 200, "EntityReferences", {"Refs": [ref_of(base, agent)]}, as_json)

    before = await snapshot(clients, job, nas, agent)
    for target in (job, nas, agent):
        for action in ("start", "toggleScheduleEnabled"):
            error(await act(vhttp, sid, target, action, as_json), 403, as_json)
    error(await vhttp.delete(f"/api/jobs/{jid(job)}", headers=auth(sid, as_json)), 403, as_json)
    await assert_same(clients, before)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []


async def test_viewer_may_read_and_delete_tasks_and_log_off(vhttp: httpx.AsyncClient) -> None:
    """Roles: viewer: only GETs (and log off, and GET/DELETE of tasks): task routes answer
    by the task rules (an unknown task -> 404, not 403); log off -> 204."""
    sid = await logon(vhttp, "view")
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []
    error(await vhttp.get("/api/tasks/task-1", headers=auth(sid)), 404)
    error(await vhttp.delete("/api/tasks/task-1", headers=auth(sid)), 404)
    r = await vhttp.delete(f"/api/logonSessions/{sid}", headers=auth(sid))
    assert (r.status_code, r.content) == (204, b"")


@as_json_param
async def test_operator_may_run_actions_but_delete_is_403_and_changes_nothing(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Roles: operator: GETs + POST actions; DELETE /api/jobs -> 403; nothing changed."""
    job = await seed(clients)
    sid = await logon(vhttp, "oper")
    task = task_of(vhttp, await act(vhttp, sid, job, "start", as_json), 202, as_json)
    assert (task.state, task.operation, task.success) == ("Finished", "StartJob", True)
    before = await snapshot(clients, job)
    assert before[0].state == res.RUNNING
    error(await vhttp.delete(f"/api/jobs/{jid(job)}", headers=auth(sid, as_json)), 403, as_json)
    await assert_same(clients, before)
    assert before[0].delete_operation == ""
    tasks = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid)))
    assert [t.tid for t in tasks] == [task.tid]
    # a finished task of one's own: the task rules apply (204, removed), not a role refusal
    r = await vhttp.delete(f"/api/tasks/{task.tid}", headers=auth(sid))
    assert (r.status_code, r.content) == (204, b""), r.text
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []


# --- generic jobs -------------------------------------------------------------------


@as_json_param
async def test_list_jobs_gives_references_of_generic_jobs_only_ordered_by_id(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: GET /api/jobs -> 200 EntityReferences (JSON {"Refs": [...]}) of generic jobs
    only (BACKUP, REPLICA, BACKUP_COPY), ordered by id; Ref UID/Name/Href/Type/Links."""
    generic = [
        await seed(clients, Backup.BACKUP, display_name="Backup Job 1"),
        await seed(clients, Backup.REPLICA, display_name="Replica Job"),
        await seed(clients, Backup.BACKUP_COPY, display_name="Copy Job"),
        await seed(clients, Backup.BACKUP, display_name="Backup Job 2"),
    ]
    await seed(clients, Backup.NAS)
    await seed(clients, Backup.AGENT)
    sid = await logon(vhttp)
    refs = [ref_of(base_of(vhttp), j) for j in sorted(generic, key=jid)]
    r = await vhttp.get("/api/jobs", headers=auth(sid, as_json))
    expect(r, 200, "EntityReferences", {"Refs": refs}, as_json)


@as_json_param
async def test_list_jobs_format_entity_gives_job_entities(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: GET /api/jobs?format=Entity -> 200 root Jobs (JSON {"Jobs": [...]}) of Job
    entities: JobType Backup|Replica|BackupCopy, Platform, Description, ScheduleConfigured
    true, ScheduleEnabled."""
    generic = [
        await seed(clients, Backup.BACKUP, platform=Backup.VMWARE, description="nightly"),
        await seed(clients, Backup.REPLICA, platform=Backup.HYPERV, enabled=False),
        await seed(clients, Backup.BACKUP_COPY, platform=Backup.LINUX, description="copy"),
    ]
    await seed(clients, Backup.NAS)
    await seed(clients, Backup.AGENT)
    sid = await logon(vhttp)
    entities = [entity_of(base_of(vhttp), j) for j in sorted(generic, key=jid)]
    assert {e["JobType"] for e in entities} == {"Backup", "Replica", "BackupCopy"}
    assert {e["ScheduleEnabled"] for e in entities} == {True, False}
    r = await vhttp.get("/api/jobs", params={"format": "Entity"}, headers=auth(sid, as_json))
    expect(r, 200, "Jobs", {"Jobs": entities}, as_json)


@as_json_param
async def test_get_job_without_format_is_its_entity_ref_and_format_entity_is_the_entity(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: GET /api/jobs/<id> -> 200 root EntityRef (the single entity reference: Type
    JobReference, UID, Name, Href, Links; JSON exactly those keys) where lists hold Refs;
    ?format=Entity -> root Job entity (JSON keys exactly Href, Type, Name, UID, Links,
    JobType, Platform, Description, ScheduleConfigured, ScheduleEnabled)."""
    job = await seed(clients)
    sid = await logon(vhttp)
    base = base_of(vhttp)
    r = await vhttp.get(f"/api/jobs/{jid(job)}", headers=auth(sid, as_json))
    expect(r, 200, "EntityRef", ref_of(base, job), as_json)
    if as_json:
        assert set(r.json()) == {"Type", "UID", "Name", "Href", "Links"}
    r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=auth(sid, as_json))
    expect(r, 200, "Job", entity_of(base, job), as_json)
    if as_json:
        assert set(r.json()) == {
            "Href",
            "Type",
            "Name",
            "UID",
            "Links",
            "JobType",
            "Platform",
            "Description",
            "ScheduleConfigured",
            "ScheduleEnabled",
        }


@pytest.mark.parametrize("fmt", ["Entity", "entity", "ENTITY", "Ref", "ref", "REF"])
async def test_format_entity_or_ref_is_case_insensitive(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, fmt: str
) -> None:
    """Jobs: format Entity/Ref (case-insensitive) select entities or references."""
    job = await seed(clients)
    sid = await logon(vhttp)
    base = base_of(vhttp)
    one = await vhttp.get(f"/api/jobs/{jid(job)}", params={"format": fmt}, headers=auth(sid))
    many = await vhttp.get("/api/jobs", params={"format": fmt}, headers=auth(sid))
    if fmt.lower() == "entity":
        expect(one, 200, "Job", entity_of(base, job), False)
        expect(many, 200, "Jobs", {"Jobs": [entity_of(base, job)]}, False)
    else:
        expect(one, 200, "EntityRef", ref_of(base, job), False)
        expect(many, 200, "EntityReferences", {"Refs": [ref_of(base, job)]}, False)


@as_json_param
@pytest.mark.parametrize("fmt", ["Full", "Entities", "References", "json"])
async def test_other_format_is_400(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, fmt: str, as_json: bool
) -> None:
    """Jobs: format other than Entity/Ref (case-insensitive) -> 400, on lists and ids of
    every family."""
    job = await seed(clients)
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    sid = await logon(vhttp)
    for path in (
        "/api/jobs",
        f"/api/jobs/{jid(job)}",
        "/api/nas/jobs",
        f"/api/nas/jobs/{jid(nas)}",
        "/api/agents/jobs",
        f"/api/agents/jobs/{jid(agent)}",
    ):
        r = await vhttp.get(path, params={"format": fmt}, headers=auth(sid, as_json))
        error(r, 400, as_json)


async def test_job_name_is_the_id_without_display_name(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Jobs: Ref Name=<display_name or id> (and in the Alternate link's Name)."""
    job = await seed(clients, display_name="")
    sid = await logon(vhttp)
    base = base_of(vhttp)
    r = await vhttp.get(f"/api/jobs/{jid(job)}", headers=auth(sid, True))
    expect(r, 200, "EntityRef", ref_of(base, job), True)
    assert r.json()["Name"] == jid(job)
    assert r.json()["Links"][0]["Name"] == jid(job)
    r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=auth(sid))
    expect(r, 200, "Job", entity_of(base, job), False)


async def test_job_entity_has_no_delete_link_seed_004(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Seed 004 note: the /jobs/{ID} resource does not contain the Delete link (entity Links:
    Alternate, Start, Stop, Retry, ToggleScheduleEnabled only)."""
    job = await seed(clients, job_id=SEED_004_ID)
    sid = await logon(vhttp)
    for as_json in FORMATS:
        r = await vhttp.get(f"/api/jobs/{SEED_004_ID}?format=Entity", headers=auth(sid, as_json))
        body = parsed(r, 200, "Job", as_json)
        assert [link["Rel"] for link in body["Links"]] == [
            "Alternate",
            "Start",
            "Stop",
            "Retry",
            "ToggleScheduleEnabled",
        ]
        assert body == (
            entity_of(base_of(vhttp), job) if as_json else xmlize(entity_of(base_of(vhttp), job))
        )


@pytest.mark.parametrize("platform", list(PLATFORMS), ids=list(PLATFORMS.values()))
async def test_platform_maps_to_its_veeam_name(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, platform: Platform
) -> None:
    """Jobs: Platform (VMware|vCloud|Hyperv|Windows|Linux|FileShare): Enterprise Manager
    spells Hyper-V `Hyperv` (its hierarchy platforms: VMware, Hyperv, vCloud)."""
    job = await seed(clients, platform=platform)
    sid = await logon(vhttp)
    r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=auth(sid, True))
    expect(r, 200, "Job", entity_of(base_of(vhttp), job), True)
    assert r.json()["Platform"] == PLATFORMS[platform]


async def test_nas_agent_or_unknown_id_on_the_jobs_route_is_404_and_changes_nothing(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Jobs: GET /api/jobs/<id> of a NAS or AGENT job, or unknown id -> 404; NAS/AGENT id on
    POST /api/jobs/...?action= -> 404; job untouched."""
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    sid = await logon(vhttp)
    before = await snapshot(clients, nas, agent)
    for i in (jid(nas), jid(agent), str(uuid.uuid4())):
        for as_json in FORMATS:
            h = auth(sid, as_json)
            error(await vhttp.get(f"/api/jobs/{i}", headers=h), 404, as_json)
            error(await vhttp.get(f"/api/jobs/{i}?format=Entity", headers=h), 404, as_json)
            for action in ("start", "toggleScheduleEnabled"):
                r = await vhttp.post(f"/api/jobs/{i}", params={"action": action}, headers=h)
                error(r, 404, as_json)
    await assert_same(clients, before)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []


async def test_missing_collection_lists_are_empty_and_ids_are_404(
    vhttp: httpx.AsyncClient,
) -> None:
    """Set-up: if the collection does not exist, list routes answer an empty list; id
    routes 404."""
    sid = await logon(vhttp)
    i = str(uuid.uuid4())
    for as_json in FORMATS:
        h = auth(sid, as_json)
        for path in ("/api/jobs", "/api/nas/jobs", "/api/agents/jobs"):
            expect(await vhttp.get(path, headers=h), 200, "EntityReferences", {"Refs": []}, as_json)
        for path, root in (
            ("/api/jobs", "Jobs"),
            ("/api/nas/jobs", "NasJobs"),
            ("/api/agents/jobs", "AgentBackupJobs"),
        ):
            r = await vhttp.get(path, params={"format": "Entity"}, headers=h)
            expect(r, 200, root, {root: []}, as_json)
        for path in (f"/api/jobs/{i}", f"/api/nas/jobs/{i}", f"/api/agents/jobs/{i}"):
            error(await vhttp.get(path, headers=h), 404, as_json)
        error(await vhttp.delete(f"/api/jobs/{i}", headers=h), 404, as_json)
        error(
            await vhttp.post(f"/api/jobs/{i}", params={"action": "start"}, headers=h), 404, as_json
        )
        error(await vhttp.post(f"/api/nas/jobs/{i}/start", headers=h), 404, as_json)
        r = await vhttp.post(f"/api/agents/jobs/{i}", params={"action": "start"}, headers=h)
        error(r, 404, as_json)


# --- delete -------------------------------------------------------------------------


@as_json_param
async def test_full_flow_log_on_list_delete_poll_task_then_gone_and_log_off(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Full flow: log on (administrator is the default role), list, DELETE /api/jobs/<id> ->
    202 Task (Operation DeleteJob, State Running or Finished), poll (<= 10 s) to
    Finished/Success=true, GET job -> 404, gRPC GetJob NOT_FOUND, log off -> 204, old token
    -> 401."""
    job = await seed(clients)
    keep = await seed(clients, display_name="Keep me")
    sid = await logon(vhttp)
    base = base_of(vhttp)
    h = auth(sid, as_json)
    refs = [ref_of(base, j) for j in sorted([job, keep], key=jid)]
    expect(
        await vhttp.get("/api/jobs", headers=h), 200, "EntityReferences", {"Refs": refs}, as_json
    )

    task = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(job)}", headers=h), 202, as_json)
    assert task.operation == "DeleteJob"
    done = await poll_task(vhttp, sid, task.tid, as_json)
    assert (done.tid, done.operation, done.success) == (task.tid, "DeleteJob", True)

    error(await vhttp.get(f"/api/jobs/{jid(job)}", headers=h), 404, as_json)
    error(await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=h), 404, as_json)
    expect(
        await vhttp.get("/api/jobs", headers=h),
        200,
        "EntityReferences",
        {"Refs": [ref_of(base, keep)]},
        as_json,
    )
    await assert_gone(clients, job.name)
    assert (await get_job(clients, keep.name)).state == res.IDLE
    assert [t.tid for t in tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json)] == [
        task.tid
    ]

    r = await vhttp.delete(f"/api/logonSessions/{sid}", headers=h)
    assert (r.status_code, r.content) == (204, b"")
    error(await vhttp.get("/api/jobs", headers=h), 401, as_json)
    error(await vhttp.get(f"/api/tasks/{task.tid}", headers=h), 401, as_json)


async def test_deletion_of_a_running_job_stays_running_until_its_run_is_recorded(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Deterministic hold: a RUNNING job's deletion waits until its run ends — the Task stays
    Running (GET twice ~0.3 s apart); RecordRun (COMPLETED) ends the run and the task reaches
    Finished/Success=true; the job is gone."""
    sid = await logon(vhttp)
    job, task = await held_deletion(vhttp, clients, sid)
    await record_run(clients, job.name)
    done = await poll_task(vhttp, sid, task.tid)
    assert (done.state, done.operation, done.success) == ("Finished", "DeleteJob", True)
    error(await vhttp.get(f"/api/jobs/{jid(job)}", headers=auth(sid)), 404)
    await assert_gone(clients, job.name)


@as_json_param
async def test_delete_task_cancels_an_unfinished_deletion_and_the_job_stays(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Tasks: DELETE /api/tasks/<tid> of an unfinished deletion -> 204 (one CancelOperation),
    the deletion is cancelled: the job stays (GET 200, gRPC state back to what it was) and
    the task then reads Finished with Success=false, "cancelled". Deleting it again (it is
    finished now) -> 204 and the task is gone (404)."""
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    job, task = await held_deletion(vhttp, clients, sid)
    calls = record_rpcs(vgw.app)
    r = await vhttp.delete(f"/api/tasks/{task.tid}", headers=h)
    assert (r.status_code, r.content) == (204, b""), r.text
    assert calls == ["CancelOperation"]
    done = await poll_task(vhttp, sid, task.tid, as_json)
    assert (done.state, done.operation) == ("Finished", "DeleteJob")
    assert (done.success, done.message) == (False, "The deletion has been cancelled.")

    after = await get_job(clients, job.name)
    assert after.state == res.RUNNING
    assert after.delete_operation == ""
    assert after.backup == job.backup
    assert after.display_name == job.display_name
    r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=h)
    expect(r, 200, "Job", entity_of(base_of(vhttp), after), as_json)

    calls.clear()
    r = await vhttp.delete(f"/api/tasks/{task.tid}", headers=h)
    assert (r.status_code, r.content) == (204, b""), r.text
    assert calls == []
    assert (await get_job(clients, job.name)) == after
    message = error(await vhttp.get(f"/api/tasks/{task.tid}", headers=h), 404, as_json)
    assert message == f"Task {task.tid} not found."


@as_json_param
async def test_delete_of_a_finished_task_is_204_and_removes_it_without_a_call(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Tasks (spec table: DELETE /api/tasks/{taskId} -> 204): a finished task (action or
    deletion) -> 204 empty, the task is removed (GET 404, gone from the list, the other
    task stays) and no RPC is made; jobs are untouched. (Round 1 answered 400.)"""
    job = await seed(clients)
    gone = await seed(clients)
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    started = task_of(vhttp, await act(vhttp, sid, job, "start", as_json), 202, as_json)
    assert started.state == "Finished"
    deletion = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(gone)}", headers=h), 202, as_json)
    deleted = await poll_task(vhttp, sid, deletion.tid, as_json)
    assert deleted.success is True
    before = await snapshot(clients, job)
    calls = record_rpcs(vgw.app)
    r = await vhttp.delete(f"/api/tasks/{started.tid}", headers=h)
    assert (r.status_code, r.content) == (204, b""), r.text
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json) == [deleted]
    r = await vhttp.delete(f"/api/tasks/{deletion.tid}", headers=h)
    assert (r.status_code, r.content) == (204, b""), r.text
    assert calls == []
    for tid in (started.tid, deletion.tid):
        message = error(await vhttp.get(f"/api/tasks/{tid}", headers=h), 404, as_json)
        assert message == f"Task {tid} not found."
        error(await vhttp.delete(f"/api/tasks/{tid}", headers=h), 404, as_json)
    await assert_same(clients, before)
    await assert_gone(clients, gone.name)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json) == []


@as_json_param
async def test_delete_of_unknown_nas_agent_deleting_or_deleted_job_is_404_and_untouched(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Delete: unknown id, NAS job, AGENT job, a job already being deleted or deleted -> 404
    "Job <id> not found." in one DeleteJob call each (the core refuses: JOB_NOT_FOUND,
    JOB_TYPE_NOT_DELETABLE, JOB_BEING_DELETED; the delete row's own error rows make the
    last two 404); job untouched, no task made."""
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    gone = await seed(clients)
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    first = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(gone)}", headers=h), 202, as_json)
    assert (await poll_task(vhttp, sid, first.tid)).success is True
    held, task = await held_deletion(vhttp, clients, sid)

    before = await snapshot(clients, nas, agent, held)
    assert before[2].state == res.DELETING
    tasks_before = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json)
    calls = record_rpcs(vgw.app)
    for i in (str(uuid.uuid4()), jid(nas), jid(agent), jid(held), jid(gone)):
        calls.clear()
        message = error(await vhttp.delete(f"/api/jobs/{i}", headers=h), 404, as_json)
        assert (message, calls) == (f"Job {i} not found.", ["DeleteJob"])
    await assert_same(clients, before)
    await assert_gone(clients, gone.name)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json) == tasks_before
    again = task_of(vhttp, await vhttp.get(f"/api/tasks/{task.tid}", headers=h), 200, as_json)
    assert again.state == "Running"


@as_json_param
async def test_delete_on_nas_or_agent_routes_is_405_with_allow_and_job_untouched(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """NAS and agent jobs: DELETE /api/nas/jobs/<id> and DELETE /api/agents/jobs/<id> -> 405
    Error body with an Allow header; job untouched. DELETE /api/jobs/<nas or agent id> ->
    404; job untouched."""
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    before = await snapshot(clients, nas, agent)
    for job in (nas, agent):
        r = await vhttp.delete(f"{kind_of(job).path}/{jid(job)}", headers=h)
        error(r, 405, as_json)
        assert "GET" in allow_of(r), r.headers
        assert "DELETE" not in allow_of(r), r.headers
        error(await vhttp.delete(f"/api/jobs/{jid(job)}", headers=h), 404, as_json)
    await assert_same(clients, before)
    base = base_of(vhttp)
    expect(
        await vhttp.get(f"/api/nas/jobs/{jid(nas)}", headers=h),
        200,
        "EntityRef",
        ref_of(base, nas),
        as_json,
    )
    expect(
        await vhttp.get(f"/api/agents/jobs/{jid(agent)}", headers=h),
        200,
        "EntityRef",
        ref_of(base, agent),
        as_json,
    )


# --- actions ------------------------------------------------------------------------


@as_json_param
async def test_actions_start_stop_retry_toggle_give_finished_tasks_and_change_the_job(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: POST /api/jobs/<id>?action=start|stop|retry|toggleScheduleEnabled (operator+) ->
    202 Task, State Finished, Result Success=true, Operation StartJob|StopJob|RetryJob|
    ToggleScheduleEnabled; start: RUNNING; stop: IDLE with last_result FAILED; retry: RUNNING;
    toggle: schedule_enabled flipped."""
    job = await seed(clients, enabled=True)
    sid = await logon(vhttp, "oper")

    async def run(action: str, operation: str) -> res.Job:
        task = task_of(vhttp, await act(vhttp, sid, job, action, as_json), 202, as_json)
        assert (task.state, task.operation, task.success) == ("Finished", operation, True)
        got = await get_job(clients, job.name)
        r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=auth(sid, as_json))
        expect(r, 200, "Job", entity_of(base_of(vhttp), got), as_json)
        return got

    assert (await run("start", "StartJob")).state == res.RUNNING
    stopped = await run("stop", "StopJob")
    assert (stopped.state, stopped.backup.last_result) == (res.IDLE, Backup.FAILED)
    assert (await run("retry", "RetryJob")).state == res.RUNNING
    toggled = await run("toggleScheduleEnabled", "ToggleScheduleEnabled")
    assert toggled.backup.HasField("schedule_enabled")
    assert (toggled.backup.schedule_enabled, toggled.state) == (False, res.RUNNING)
    toggled = await run("toggleScheduleEnabled", "ToggleScheduleEnabled")
    assert toggled.backup.schedule_enabled is True
    tasks = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid, as_json)), as_json)
    assert [t.operation for t in tasks] == [
        "StartJob",
        "StopJob",
        "RetryJob",
        "ToggleScheduleEnabled",
        "ToggleScheduleEnabled",
    ]


@as_json_param
@pytest.mark.parametrize(
    "params",
    [{}, {"action": "bogus"}, {"action": ""}, {"action": "delete"}, {"action": "pause"}],
    ids=["missing", "bogus", "empty", "delete", "pause"],
)
async def test_missing_or_unknown_action_is_400_and_changes_nothing(
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    params: dict[str, str],
    as_json: bool,
) -> None:
    """Jobs: POST /api/jobs/<id> with a missing or unknown action -> 400; nothing changes."""
    job = await seed(clients)
    sid = await logon(vhttp)
    before = await snapshot(clients, job)
    r = await vhttp.post(f"/api/jobs/{jid(job)}", params=params, headers=auth(sid, as_json))
    error(r, 400, as_json)
    await assert_same(clients, before)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []


@as_json_param
async def test_retry_when_the_last_run_did_not_fail_is_400(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: retry when the last run did not fail (new job, or after a SUCCESS RecordRun) ->
    400; nothing changes."""
    job = await seed(clients)
    sid = await logon(vhttp)
    before = await snapshot(clients, job)
    error(await act(vhttp, sid, job, "retry", as_json), 400, as_json)
    await assert_same(clients, before)

    task_of(vhttp, await act(vhttp, sid, job, "start"))
    await record_run(clients, job.name)
    before = await snapshot(clients, job)
    assert (before[0].state, before[0].backup.last_result) == (res.IDLE, Backup.SUCCESS)
    error(await act(vhttp, sid, job, "retry", as_json), 400, as_json)
    await assert_same(clients, before)
    tasks = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid)))
    assert [t.operation for t in tasks] == ["StartJob"]


@as_json_param
async def test_start_of_a_running_job_or_stop_of_an_idle_job_is_400(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: start of a RUNNING job, stop of an IDLE job -> 400; nothing changes."""
    job = await seed(clients)
    sid = await logon(vhttp)
    before = await snapshot(clients, job)
    error(await act(vhttp, sid, job, "stop", as_json), 400, as_json)
    await assert_same(clients, before)
    task_of(vhttp, await act(vhttp, sid, job, "start"))
    before = await snapshot(clients, job)
    assert before[0].state == res.RUNNING
    error(await act(vhttp, sid, job, "start", as_json), 400, as_json)
    await assert_same(clients, before)


# --- NAS and agent jobs -------------------------------------------------------------


@as_json_param
@pytest.mark.parametrize("job_type", [Backup.NAS, Backup.AGENT], ids=["nas", "agents"])
async def test_nas_and_agent_lists_and_gets_give_their_references_and_entities(
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    job_type: JobType,
    as_json: bool,
) -> None:
    """NAS and agent jobs: GET /api/nas/jobs and /api/agents/jobs (refs urn:veeam:NasJob: /
    urn:veeam:AgentBackupJob:, Types NasJobReference / AgentBackupJobReference), ?format=Entity
    -> NasJobs / AgentBackupJobs of entities (JobType NasBackup / AgentBackup, NAS action
    links /start etc., agent action links ?action=start etc.); GET by id and ?format=Entity."""
    mine = [
        await seed(clients, job_type, display_name="First"),
        await seed(clients, job_type, display_name="", enabled=False, description="x"),
    ]
    await seed(clients, Backup.BACKUP)
    await seed(clients, Backup.NAS if job_type == Backup.AGENT else Backup.AGENT)
    kind = kind_of(mine[0])
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    base = base_of(vhttp)
    ordered = sorted(mine, key=jid)
    expect(
        await vhttp.get(kind.path, headers=h),
        200,
        "EntityReferences",
        {"Refs": [ref_of(base, j) for j in ordered]},
        as_json,
    )
    r = await vhttp.get(kind.path, params={"format": "Entity"}, headers=h)
    expect(r, 200, kind.list_root, {kind.list_root: [entity_of(base, j) for j in ordered]}, as_json)
    for job in mine:
        r = await vhttp.get(f"{kind.path}/{jid(job)}", headers=h)
        expect(r, 200, "EntityRef", ref_of(base, job), as_json)
        r = await vhttp.get(f"{kind.path}/{jid(job)}", params={"format": "Entity"}, headers=h)
        expect(r, 200, kind.entity, entity_of(base, job), as_json)


@as_json_param
@pytest.mark.parametrize("job_type", [Backup.NAS, Backup.AGENT], ids=["nas", "agents"])
async def test_nas_and_agent_actions_give_finished_tasks_and_change_the_job(
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    job_type: JobType,
    as_json: bool,
) -> None:
    """NAS and agent jobs: POST /api/nas/jobs/<id>/start|stop|retry|toggleScheduleEnabled and
    POST /api/agents/jobs/<id>?action=... -> 202 Task (Finished, Success=true); the job
    changes as for generic jobs."""
    job = await seed(clients, job_type)
    sid = await logon(vhttp, "oper")
    expected = [
        ("start", "StartJob", res.RUNNING),
        ("stop", "StopJob", res.IDLE),
        ("retry", "RetryJob", res.RUNNING),
        ("toggleScheduleEnabled", "ToggleScheduleEnabled", res.RUNNING),
    ]
    for action, operation, state in expected:
        task = task_of(vhttp, await act(vhttp, sid, job, action, as_json), 202, as_json)
        assert (task.state, task.operation, task.success) == ("Finished", operation, True)
        got = await get_job(clients, job.name)
        assert got.state == state, action
        if action == "stop":
            assert got.backup.last_result == Backup.FAILED
    assert (await get_job(clients, job.name)).backup.schedule_enabled is False


@pytest.mark.parametrize(
    ("route", "others"),
    [("nas", (Backup.BACKUP, Backup.AGENT)), ("agents", (Backup.BACKUP, Backup.NAS))],
)
@as_json_param
async def test_nas_and_agents_routes_serve_only_their_own_jobs(
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
    route: str,
    others: tuple[Any, Any],
) -> None:
    """NAS jobs / agents: GET /api/nas/jobs/<id> and /api/agents/jobs/<id> (?format=Entity)
    -> 404 for a job of another kind (generic, agent or NAS) or an unknown id."""
    ids = [jid(await seed(clients, kind)) for kind in others]
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    for i in (*ids, str(uuid.uuid4())):
        error(await vhttp.get(f"/api/{route}/jobs/{i}", headers=h), 404, as_json)
        r = await vhttp.get(f"/api/{route}/jobs/{i}", params={"format": "Entity"}, headers=h)
        error(r, 404, as_json)


# --- tasks --------------------------------------------------------------------------


@as_json_param
async def test_task_list_holds_this_sessions_tasks_in_creation_order(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Tasks: GET /api/tasks -> 200 TaskList (JSON {"Tasks": [...]}) of this session's tasks
    in creation order; GET /api/tasks/<tid> -> 200 Task; TaskId "task-N"."""
    job = await seed(clients)
    nas = await seed(clients, Backup.NAS)
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json) == []
    made = [
        task_of(vhttp, await act(vhttp, sid, job, "start", as_json), 202, as_json),
        task_of(vhttp, await act(vhttp, sid, nas, "toggleScheduleEnabled", as_json), 202, as_json),
        task_of(vhttp, await act(vhttp, sid, job, "stop", as_json), 202, as_json),
    ]
    assert len({t.tid for t in made}) == 3
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json) == made
    for task in made:
        r = await vhttp.get(f"/api/tasks/{task.tid}", headers=h)
        assert task_of(vhttp, r, 200, as_json) == task


@as_json_param
async def test_two_sessions_cannot_see_or_delete_each_others_tasks(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Tasks: belong to the logon session that created them; a task of another session -> 404
    on GET and DELETE (two sessions of the same user also cannot see each other's tasks); the
    other session's DELETE does not cancel the deletion."""
    job = await seed(clients)
    mine = await logon(vhttp, "admin")
    theirs = await logon(vhttp, "admin")
    viewer = await logon(vhttp, "view")
    action = task_of(vhttp, await act(vhttp, mine, job, "toggleScheduleEnabled"))
    held, deletion = await held_deletion(vhttp, clients, mine)
    own = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(mine)))
    assert [t.tid for t in own] == [action.tid, own[1].tid, deletion.tid]

    for other in (theirs, viewer):
        h = auth(other, as_json)
        assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json) == []
        for task in own:
            error(await vhttp.get(f"/api/tasks/{task.tid}", headers=h), 404, as_json)
            error(await vhttp.delete(f"/api/tasks/{task.tid}", headers=h), 404, as_json)
    assert (await get_job(clients, held.name)).state == res.DELETING
    still = task_of(vhttp, await vhttp.get(f"/api/tasks/{deletion.tid}", headers=auth(mine)), 200)
    assert still.state == "Running"

    # the other session's own task stays invisible to the first
    theirs_task = task_of(vhttp, await act(vhttp, theirs, job, "toggleScheduleEnabled"))
    assert theirs_task.tid not in {t.tid for t in own}
    error(await vhttp.get(f"/api/tasks/{theirs_task.tid}", headers=auth(mine)), 404)
    after = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(mine)))
    assert [t.tid for t in after] == [t.tid for t in own]


@as_json_param
@pytest.mark.parametrize("tid", ["task-999999", "task-0", "nope"])
async def test_unknown_task_is_404(vhttp: httpx.AsyncClient, tid: str, as_json: bool) -> None:
    """Tasks: GET /api/tasks/<tid> of an unknown task -> 404; DELETE -> 404."""
    sid = await logon(vhttp)
    error(await vhttp.get(f"/api/tasks/{tid}", headers=auth(sid, as_json)), 404, as_json)
    error(await vhttp.delete(f"/api/tasks/{tid}", headers=auth(sid, as_json)), 404, as_json)


# --- paths --------------------------------------------------------------------------


async def test_fixed_segments_are_case_insensitive_and_job_guids_match_in_any_case(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Paths: fixed segments are case-insensitive (/API/JOBS = /api/jobs); job GUIDs match in
    any case (the core looks backup ids up so, K11) and every representation keeps the case
    the job was created with. (Round 1: the id in upper case was another, unknown id.)"""
    job = await seed(clients, job_id=SEED_004_ID)
    nas = await seed(clients, Backup.NAS)
    agent = await seed(clients, Backup.AGENT)
    r = await vhttp.post(
        "/API/SESSIONMNGR/?v=latest", headers={"Authorization": basic("admin", "s3cr3t:pw")}
    )
    assert r.status_code == 201, r.text
    sid = r.headers[SID]
    vhttp.cookies.clear()
    h = auth(sid)
    base = base_of(vhttp)
    expect(
        await vhttp.get("/API/", headers=h), 200, "EnterpriseManager", entry_point_of(base), False
    )
    expect(
        await vhttp.get("/API/JOBS", headers=h),
        200,
        "EntityReferences",
        {"Refs": [ref_of(base, job)]},
        False,
    )
    r = await vhttp.get(f"/Api/Jobs/{SEED_004_ID}", params={"format": "Entity"}, headers=h)
    expect(r, 200, "Job", entity_of(base, job), False)
    expect(
        await vhttp.get(f"/API/NAS/JOBS/{jid(nas)}", headers=h),
        200,
        "EntityRef",
        ref_of(base, nas),
        False,
    )
    expect(
        await vhttp.get("/api/Agents/JOBS", headers=h),
        200,
        "EntityReferences",
        {"Refs": [ref_of(base, agent)]},
        False,
    )
    r = await vhttp.get(f"/API/JOBS/{SEED_004_ID.upper()}", headers=h)
    expect(r, 200, "EntityRef", ref_of(base, job), False)
    r = await vhttp.get(f"/api/jobs/{SEED_004_ID.upper()}", params={"format": "Entity"}, headers=h)
    expect(r, 200, "Job", entity_of(base, job), False)
    r = await vhttp.get(f"/api/nas/jobs/{jid(nas).upper()}", headers=h)
    expect(r, 200, "EntityRef", ref_of(base, nas), False)

    task = task_of(vhttp, await vhttp.post(f"/API/JOBS/{SEED_004_ID}?action=start", headers=h))
    assert (task.operation, task.success) == ("StartJob", True)
    upper = SEED_004_ID.upper()
    task = task_of(vhttp, await vhttp.post(f"/api/jobs/{upper}?action=stop", headers=h))
    assert (task.operation, task.success) == ("StopJob", True)
    assert (await get_job(clients, job.name)).state == res.IDLE
    task = task_of(vhttp, await vhttp.post(f"/API/Nas/Jobs/{jid(nas).upper()}/START", headers=h))
    assert (task.operation, task.success) == ("StartJob", True)
    assert (await get_job(clients, nas.name)).state == res.RUNNING
    assert task_of(vhttp, await vhttp.get(f"/API/TASKS/{task.tid}", headers=h), 200) == task
    assert len(tasks_of(vhttp, await vhttp.get("/Api/Tasks", headers=h))) == 3
    deletion = task_of(vhttp, await vhttp.delete(f"/API/JOBS/{upper}", headers=h))
    assert (await poll_task(vhttp, sid, deletion.tid)).success is True
    await assert_gone(clients, job.name)
    r = await vhttp.delete(f"/API/LOGONSESSIONS/{sid}", headers=h)
    assert r.status_code == 204, r.text
    error(await vhttp.get("/api/jobs", headers=h), 401)


# --- error bodies -------------------------------------------------------------------


@as_json_param
async def test_every_error_status_has_the_error_body(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Error (every error, every status): XML <Error xmlns=NS StatusCode= Message=/> with no
    children and no other attributes; JSON exactly {"StatusCode": n, "Message": "..."}:
    400, 401, 403, 404, 405."""
    job = await seed(clients)
    accept = {"Accept": "application/json"} if as_json else {}
    admin = await logon(vhttp)
    viewer = await logon(vhttp, "view")
    cases: list[tuple[int, str, str, dict[str, str]]] = [
        (400, "GET", "/api/jobs?format=Bogus", auth(admin)),
        (400, "POST", f"/api/jobs/{jid(job)}?action=bogus", auth(admin)),
        (400, "POST", "/api/sessionMngr/?v=v9_9", {"Authorization": basic("admin", "s3cr3t:pw")}),
        (401, "GET", "/api/jobs", {}),
        (401, "POST", LOGON, {"Authorization": basic("admin", "bad")}),
        (403, "DELETE", f"/api/jobs/{jid(job)}", auth(viewer)),
        (404, "GET", f"/api/jobs/{uuid.uuid4()}", auth(admin)),
        (404, "GET", "/api/nothing-here", {}),
        (405, "PUT", "/api/jobs", {}),
    ]
    for status, method, path, headers in cases:
        r = await vhttp.request(method, path, headers={**headers, **accept})
        try:
            error(r, status, as_json)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path}: {exc}") from exc


# --- one call per route (round 2 seam) ----------------------------------------------


def dialect_of(gateway: RunningGateway) -> VeeamDialect:
    """The gateway's Veeam dialect."""
    found = [d for d in gateway.app.dialects if isinstance(d, VeeamDialect)]
    assert len(found) == 1
    return found[0]


async def operation_of(clients: Clients, job: res.Job) -> str:
    """The name of the deletion Operation of `job` (ListOperations by target)."""
    reply = await clients.operations.ListOperations(
        operations_pb2.ListOperationsRequest(filter=f'target = "{job.name}"')
    )
    assert len(reply.operations) == 1, reply
    name: str = reply.operations[0].name
    return name


async def test_every_route_makes_at_most_one_rpc(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seam: every route of the dialect (each checked to have been driven), on success and
    on refusal, makes exactly the calls listed: one declared RPC or none (gateway-local
    sessions and tasks, refusals before the call, tasks already known to be finished)."""
    dialect = dialect_of(vgw)
    seen: set[int] = set()
    resolve = dialect.resolve

    def spy(request: Any) -> Any:
        route, params = resolve(request)
        seen.add(id(route))
        return route, params

    monkeypatch.setattr(dialect, "resolve", spy)
    job, idle, nas, agent = (
        await seed(clients),
        await seed(clients, display_name="Idle"),
        await seed(clients, Backup.NAS),
        await seed(clients, Backup.AGENT),
    )
    calls = record_rpcs(vgw.app)
    h: dict[str, str] = {}

    async def check(
        method: str, path: str, status: int, want: list[str], **kwargs: Any
    ) -> httpx.Response:
        calls.clear()
        kwargs.setdefault("headers", h)
        r = await vhttp.request(method, path, **kwargs)
        vhttp.cookies.clear()
        assert (r.status_code, calls) == (status, want), (method, path, kwargs, r.text)
        return r

    admin = basic("admin", PASSWORDS["admin"])
    sid = (await check("POST", LOGON, 201, [], headers={"Authorization": admin})).headers[SID]
    h.update(auth(sid))
    viewer = await logon(vhttp, "view")
    await check("GET", "/api/", 200, [], headers={})
    await check("POST", LOGON, 401, [], headers={"Authorization": basic("admin", "x")})
    await check("GET", "/api/logonSessions", 200, [])
    await check("GET", f"/api/logonSessions/{sid}", 200, [])
    await check("GET", f"/api/logonSessions/{viewer}", 404, [])

    for target, other in ((job, nas), (nas, agent), (agent, job)):
        path = kind_of(target).path
        for fmt in ({}, {"format": "Entity"}):
            await check("GET", path, 200, ["ListJobs"], params=fmt)
            await check("GET", f"{path}/{jid(target)}", 200, ["GetJob"], params=fmt)
            await check("GET", f"{path}/{jid(other)}", 404, ["GetJob"], params=fmt)
        await check("GET", path, 400, [], params={"format": "Bogus"})
        await check("GET", f"{path}/{jid(target)}", 400, [], params={"format": "Bogus"})
        for action, rpc in (("start", "StartJob"), ("stop", "StopJob"), ("retry", "RetryJob"),
                            ("toggleScheduleEnabled", "ToggleJob")):  # fmt: skip
            path, kwargs = action_of(target, action)
            task_of(vhttp, await check("POST", path, 202, [rpc], **kwargs))
            path, kwargs = action_of(target, action, jid(other))
            await check("POST", path, 404, [rpc], **kwargs)
        path, kwargs = action_of(target, "start")
        await check("POST", path, 400, ["StartJob"], **kwargs)  # it is RUNNING
        path, kwargs = action_of(target, "bogus")
        unknown = 404 if kind_of(target).slash_actions else 400  # NAS: no such route
        await check("POST", path, unknown, [], **kwargs)

    action_task = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h))[0]
    held = task_of(vhttp, await check("DELETE", f"/api/jobs/{jid(job)}", 202, ["DeleteJob"]))
    await check("DELETE", f"/api/jobs/{jid(nas)}", 404, ["DeleteJob"])
    gone = task_of(vhttp, await check("DELETE", f"/api/jobs/{jid(idle)}", 202, ["DeleteJob"]))
    await wait_done(clients.operations, await operation_of(clients, idle))
    await check("GET", "/api/tasks", 200, ["ListOperations"])
    await check("GET", "/api/tasks", 200, ["ListOperations"])  # `held` still runs
    await check("GET", f"/api/tasks/{gone.tid}", 200, [])  # resolved by the list
    await check("GET", f"/api/tasks/{action_task.tid}", 200, [])
    await check("GET", f"/api/tasks/{held.tid}", 200, ["GetOperation"])
    await check("GET", "/api/tasks/task-999999", 404, [])
    await check("DELETE", f"/api/tasks/{held.tid}", 204, ["CancelOperation"])
    await check("DELETE", f"/api/tasks/{held.tid}", 204, [])  # finished now: removed
    await check("DELETE", f"/api/tasks/{action_task.tid}", 204, [])
    await check("DELETE", "/api/tasks/task-999999", 404, [])
    await check("GET", "/api/tasks", 200, [])  # nothing unresolved: no call

    late = await seed(clients)
    task = task_of(vhttp, await check("DELETE", f"/api/jobs/{jid(late)}", 202, ["DeleteJob"]))
    await wait_done(clients.operations, await operation_of(clients, late))
    await check("DELETE", f"/api/tasks/{task.tid}", 400, ["CancelOperation"])

    await check("GET", "/api/jobs", 401, [], headers={})
    # a viewer's DELETE is the core's refusal now (issue 13): one DeleteJob, 403
    await check("DELETE", f"/api/jobs/{jid(agent)}", 403, ["DeleteJob"], headers=auth(viewer))
    await check("GET", "/api/nope", 404, [])
    await check("PUT", "/api/jobs", 405, [])
    await check("POST", LOGON, 413, [], headers={"Authorization": admin}, content=BIG)
    await check("DELETE", f"/api/logonSessions/{viewer}", 404, [])
    await check("DELETE", f"/api/logonSessions/{viewer}", 204, [], headers=auth(viewer))
    every = [*dialect.routes, *dialect.by_action.values()]
    assert [r.template.source for r in every if id(r) not in seen] == []


BIG = b"x" * (1024 * 1024 + 1)


def action_of(job: res.Job, action: str, i: str | None = None) -> tuple[str, dict[str, Any]]:
    """The path and request arguments of an action on `job`'s family route (on id `i`)."""
    kind, i = kind_of(job), i or jid(job)
    if kind.slash_actions:
        return f"{kind.path}/{i}/{action}", {}
    return f"{kind.path}/{i}", {"params": {"action": action}}


# --- the rows' build and render, as pure functions ------------------------------------


def incoming_for(
    dialect: VeeamDialect, method: str, path: str, query: str = "", accept: str = ""
) -> Incoming:
    """A routed request as the rows see it, with a logged-on administrator's session."""
    # the Host header is the client's choice: links never come from it
    headers = [(b"host", b"evil.example")] + ([(b"accept", accept.encode())] if accept else [])
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": query.encode(), "headers": headers, "scheme": "https"}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    request = Request(scope, receive)
    incoming = Incoming(request, "rid", dialect)
    incoming.route, incoming.params = dialect.resolve(request)
    incoming.state["session"] = Session("token", dialect.users["admin"])
    return incoming


@pytest.fixture
def dialect() -> VeeamDialect:
    """The dialect alone (no server): its rows are pure functions of the request. Links
    start with the configured public URL (as the gateway sets it), not the Host header."""
    alone = VeeamDialect(parse_users(USERS, ROLES), 900.0, COLLECTION)
    alone.base_url = "https://em.test:9398"
    return alone


@pytest.mark.parametrize(
    ("path", "types"),
    [
        ("/api/jobs", ["BACKUP", "REPLICA", "BACKUP_COPY"]),
        ("/api/nas/jobs", ["NAS"]),
        ("/api/agents/jobs", ["AGENT"]),
    ],
)
@pytest.mark.parametrize("query", ["", "format=Entity"])
def test_job_list_is_one_list_jobs_of_the_routes_types_allowing_a_missing_collection(
    dialect: VeeamDialect, path: str, types: list[str], query: str
) -> None:
    """Jobs: a list is ONE ListJobs (allow_missing: a missing collection lists as empty;
    page_size 1000: a list holds at most 1,000 jobs) whose structured filter is `type` =
    each of the route's job types (data, never filter text)."""
    incoming = incoming_for(dialect, "GET", path, query)
    assert incoming.route is not None and incoming.route.rpc is not None
    assert incoming.route.rpc.name == "ListJobs"
    comparisons = [
        res.Filter(comparison=res.Comparison(field="type", operator=res.Comparison.EQUAL, text=t))
        for t in types
    ]
    wanted = (
        comparisons[0] if len(types) == 1 else res.Filter(any=res.FilterList(filters=comparisons))
    )
    assert incoming.route.build is not None
    assert incoming.route.build(incoming) == jobs_pb.ListJobsRequest(
        parent=f"collections/{COLLECTION}",
        page_size=1000,
        allow_missing=True,
        structured_filter=wanted,
    )


@pytest.mark.parametrize(
    ("path", "query", "rpc", "types"),
    [
        ("/api/jobs/J", "action=start", "StartJob", ["BACKUP", "REPLICA", "BACKUP_COPY"]),
        ("/api/jobs/J", "action=STOP", "StopJob", ["BACKUP", "REPLICA", "BACKUP_COPY"]),
        ("/api/jobs/J", "v=latest&action=retry", "RetryJob", ["BACKUP", "REPLICA", "BACKUP_COPY"]),
        ("/api/jobs/J", "action=togglescheduleenabled", "ToggleJob",
         ["BACKUP", "REPLICA", "BACKUP_COPY"]),
        ("/api/nas/jobs/J/start", "", "StartJob", ["NAS"]),
        ("/api/nas/jobs/J/Stop", "", "StopJob", ["NAS"]),
        ("/api/nas/jobs/J/retry", "", "RetryJob", ["NAS"]),
        ("/api/nas/jobs/J/toggleScheduleEnabled", "", "ToggleJob", ["NAS"]),
        ("/api/agents/jobs/J", "action=start", "StartJob", ["AGENT"]),
        ("/api/agents/jobs/J", "action=toggleScheduleEnabled", "ToggleJob", ["AGENT"]),
    ],
)  # fmt: skip
def test_action_is_one_call_carrying_the_routes_job_types(
    dialect: VeeamDialect, path: str, query: str, rpc: str, types: list[str]
) -> None:
    """Jobs: an action (in any case) is ONE Start/Stop/Retry/ToggleJob whose
    preconditions.types are the route's job types, so the core refuses a job of another
    family (JOB_TYPE_MISMATCH) in the action's own transaction; no GetJob first."""
    incoming = incoming_for(dialect, "POST", path, query)
    assert incoming.route is not None and incoming.route.rpc is not None
    assert (incoming.route.rpc.name, incoming.route.status) == (rpc, 202)
    request_type = getattr(jobs_pb, f"{rpc}Request")
    assert incoming.route.build is not None
    assert incoming.route.build(incoming) == request_type(
        name=f"collections/{COLLECTION}/jobs/J",
        preconditions=jobs_pb.Preconditions(types=types),
    )


def test_delete_task_follows_the_reply_operation(dialect: VeeamDialect) -> None:
    """Delete: the 202 Task's state comes from DeleteJob's own reply: a pending Operation
    is Running, a done one Finished with Success=true (no second call to find out)."""
    incoming = incoming_for(dialect, "DELETE", f"/api/jobs/{SEED_004_ID}")
    assert incoming.route is not None and incoming.route.rpc is not None
    assert (incoming.route.rpc.name, incoming.route.status) == ("DeleteJob", 202)
    assert incoming.route.build is not None
    assert incoming.route.build(incoming) == jobs_pb.DeleteJobRequest(
        name=f"collections/{COLLECTION}/jobs/{SEED_004_ID}"
    )
    base = "https://em.test:9398"
    incoming.state["task_id"] = "task-7"  # the id the core gave the task (the row's save)
    for done, want in (
        (False, None),
        (True, {"Success": "true", "Message": "The job has been deleted."}),
    ):
        r = incoming.route.render(
            incoming, operations_pb2.Operation(name="operations/x", done=done)
        )
        assert (r.status, r.content_type) == (202, XML_CT)
        body = normalize(ET.fromstring(r.body))
        tid = body["TaskId"]
        expected: dict[str, Any] = {
            "Href": f"{base}/api/tasks/{tid}",
            "Type": "Task",
            "Links": [{"Href": f"{base}/api/tasks/{tid}", "Type": "Task", "Rel": "Delete"}],
            "TaskId": tid,
            "State": "Finished" if done else "Running",
            "Operation": "DeleteJob",
        }
        if want is not None:
            expected["Result"] = want
        assert body == expected


def gateway_refusal(
    reason: str, code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION
) -> GatewayError:
    """A refusal as the server sends it (code + ErrorInfo reason)."""
    return GatewayError(code, "the server's message", reason)


@pytest.mark.parametrize("reason", ["JOB_TYPE_NOT_DELETABLE", "JOB_BEING_DELETED"])
def test_delete_refusals_are_404_by_the_delete_rows_own_errors(
    dialect: VeeamDialect, reason: str
) -> None:
    """Delete (dialects.md §4 Decision): a NAS/agent job or one already being deleted is 404
    "Job <id> not found." through the DELETE row's error rows (not a handler rewriting the
    reason); the same reason on an action route stays 400 with the server's message."""
    delete = incoming_for(dialect, "DELETE", f"/api/jobs/{SEED_004_ID}")
    assert delete.route is not None
    error = gateway_refusal(reason)
    r = dialect.format_error(error, dialect.errors.row(error, delete.route.errors), delete)
    want = {"StatusCode": "404", "Message": f"Job {SEED_004_ID} not found."}
    assert (r.status, dict(ET.fromstring(r.body).attrib)) == (404, want)
    action = incoming_for(dialect, "POST", f"/api/jobs/{SEED_004_ID}", "action=start")
    assert action.route is not None
    r = dialect.format_error(error, dialect.errors.row(error, action.route.errors), action)
    want = {"StatusCode": "400", "Message": "the server's message"}
    assert (r.status, dict(ET.fromstring(r.body).attrib)) == (400, want)


def test_task_list_asks_about_the_newest_64_unresolved_deletions(dialect: VeeamDialect) -> None:
    """Tasks: GET /api/tasks is ONE ListOperations whose filter names the unresolved
    deletions' Operations (at most 64, the newest); finished and action tasks are not
    asked about; with nothing unresolved there is no call (build None)."""
    incoming = incoming_for(dialect, "GET", "/api/tasks")
    assert incoming.route is not None and incoming.route.build is not None
    # the session's tasks as the row's `load` reads them from the core
    incoming.state["tasks"] = []
    assert incoming.route.build(incoming) is None
    tasks = [TaskRecord("task-1", "StartJob", result=(True, "The job has been started."))]
    names = [f'operations/{n}"\\' for n in range(70)]
    tasks += [TaskRecord(f"task-{n + 2}", "DeleteJob", name) for n, name in enumerate(names)]
    tasks.append(TaskRecord("task-72", "DeleteJob", "operations/done", (True, "x")))
    incoming.state["tasks"] = tasks
    request = incoming.route.build(incoming)
    wanted = " OR ".join(f'name = "operations/{n}\\"\\\\"' for n in range(6, 70))
    assert request == operations_pb2.ListOperationsRequest(filter=wanted, page_size=64)


def test_task_list_resolves_exactly_the_tasks_it_asked_about(dialect: VeeamDialect) -> None:
    """Tasks: the list's reply resolves the tasks the request named (done: Finished; absent:
    Finished, Success=false, untracked; running: no result yet); a deletion added while the
    call ran is not taken for a missing Operation (it was not asked about)."""
    incoming = incoming_for(dialect, "GET", "/api/tasks", accept="application/json")
    done = TaskRecord("task-1", "DeleteJob", "operations/done")
    running = TaskRecord("task-2", "DeleteJob", "operations/running")
    missing = TaskRecord("task-3", "DeleteJob", "operations/missing")
    incoming.state["tasks"] = [done, running, missing]
    assert incoming.route is not None and incoming.route.build is not None
    assert incoming.route.build(incoming) is not None
    late = TaskRecord("task-4", "DeleteJob", "operations/late")
    reply = operations_pb2.ListOperationsResponse(
        operations=[
            operations_pb2.Operation(name="operations/done", done=True),
            operations_pb2.Operation(name="operations/running"),
        ]
    )
    gone = "The deletion can no longer be tracked: its operation is gone."
    assert veeam_tasks.resolutions(incoming.state["asked"], reply) == [
        (done, (True, "The job has been deleted.")),
        (running, None),
        (missing, (False, gone)),
    ]
    assert late not in incoming.state["asked"]


# --- the rules of the port over HTTP -------------------------------------------------


@as_json_param
async def test_action_on_a_job_of_another_family_is_404_in_one_call_and_changes_nothing(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Jobs: every action through a family's route on a job of another family (or an
    unknown id) is ONE call refused by the core (JOB_TYPE_MISMATCH, before any state rule:
    stop of an IDLE job too) -> 404 "Job <id> not found."; nothing changes, no task."""
    job, nas, agent = (
        await seed(clients),
        await seed(clients, Backup.NAS),
        await seed(clients, Backup.AGENT),
    )
    sid = await logon(vhttp, "oper")
    before = await snapshot(clients, job, nas, agent)
    calls = record_rpcs(vgw.app)
    for route_job, others in ((job, (nas, agent)), (nas, (job, agent)), (agent, (job, nas))):
        kind = kind_of(route_job)
        for target in (*others, None):
            i = jid(target) if target is not None else str(uuid.uuid4())
            for action, rpc in (("start", "StartJob"), ("stop", "StopJob"), ("retry", "RetryJob"),
                                ("toggleScheduleEnabled", "ToggleJob")):  # fmt: skip
                calls.clear()
                path, kwargs = action_of(route_job, action, i)
                r = await vhttp.post(path, headers=auth(sid, as_json), **kwargs)
                message = error(r, 404, as_json)
                assert (message, calls) == (f"Job {i} not found.", [rpc]), (kind.path, action)
    await assert_same(clients, before)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []


@as_json_param
async def test_toggle_is_one_toggle_job_call_and_its_task_says_which_way(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Jobs: toggleScheduleEnabled is ONE ToggleJob (no GetJob, no etag read first); the
    Task's message says which way the schedule went, from the reply's schedule_enabled."""
    jobs = [await seed(clients, enabled=True), await seed(clients, Backup.NAS, enabled=False)]
    sid = await logon(vhttp, "oper")
    calls = record_rpcs(vgw.app)
    for job in jobs:
        enabled = job.backup.schedule_enabled
        for _ in range(2):
            calls.clear()
            r = await act(vhttp, sid, job, "toggleScheduleEnabled", as_json)
            task = task_of(vhttp, r, 202, as_json)
            enabled = not enabled
            said = f"The schedule has been {'enabled' if enabled else 'disabled'}."
            assert (task.state, task.operation, task.success, task.message) == (
                "Finished",
                "ToggleScheduleEnabled",
                True,
                said,
            )
            assert calls == ["ToggleJob"]
            assert (await get_job(clients, job.name)).backup.schedule_enabled is enabled


@as_json_param
async def test_action_on_a_job_being_deleted_is_400_and_changes_nothing(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: every action on a DELETING job -> 400 (JOB_BEING_DELETED, K9); the deletion goes
    on and no task is made."""
    sid = await logon(vhttp)
    held, deletion = await held_deletion(vhttp, clients, sid)
    before = await snapshot(clients, held)
    tasks = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid)))
    for action in ("start", "stop", "retry", "toggleScheduleEnabled"):
        error(await act(vhttp, sid, held, action, as_json), 400, as_json)
    await assert_same(clients, before)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == tasks
    assert tasks[-1] == deletion


async def test_task_get_asks_the_server_only_while_its_deletion_is_unresolved(
    vgw: RunningGateway, vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Tasks: GET /api/tasks/<tid> of an action task, or of a deletion already seen finished,
    makes no call; of an unresolved deletion ONE GetOperation, which resolves it."""
    sid = await logon(vhttp)
    job = await seed(clients)
    started = task_of(vhttp, await act(vhttp, sid, job, "toggleScheduleEnabled"))
    deletion = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(job)}", headers=auth(sid)))
    assert deletion.state == "Running"
    await wait_done(clients.operations, await operation_of(clients, job))
    calls = record_rpcs(vgw.app)
    r = await vhttp.get(f"/api/tasks/{started.tid}", headers=auth(sid))
    assert (task_of(vhttp, r, 200), calls) == (started, [])
    done = task_of(vhttp, await vhttp.get(f"/api/tasks/{deletion.tid}", headers=auth(sid)), 200)
    assert (done.state, done.success, done.message) == (
        "Finished",
        True,
        "The job has been deleted.",
    )
    assert calls == ["GetOperation"]
    calls.clear()
    again = task_of(vhttp, await vhttp.get(f"/api/tasks/{deletion.tid}", headers=auth(sid)), 200)
    assert (again, calls) == (done, [])


async def test_task_list_is_one_list_operations_call_and_none_when_nothing_is_unresolved(
    vgw: RunningGateway, vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Tasks: GET /api/tasks with unresolved deletions is ONE ListOperations that resolves
    every one it names; once none is unresolved (action tasks only), no call at all."""
    sid = await logon(vhttp)
    jobs = [await seed(clients) for _ in range(3)]
    started = task_of(vhttp, await act(vhttp, sid, jobs[0], "start"))
    held = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(jobs[0])}", headers=auth(sid)))
    quick = [
        task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(j)}", headers=auth(sid)))
        for j in jobs[1:]
    ]
    for job in jobs[1:]:
        await wait_done(clients.operations, await operation_of(clients, job))
    calls = record_rpcs(vgw.app)
    listed = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid)))
    assert calls == ["ListOperations"]
    assert [(t.tid, t.state, t.success) for t in listed] == [
        (started.tid, "Finished", True),
        (held.tid, "Running", None),
        *[(t.tid, "Finished", True) for t in quick],
    ]
    r = await vhttp.delete(f"/api/tasks/{held.tid}", headers=auth(sid))
    assert r.status_code == 204
    calls.clear()
    listed = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid)))
    assert calls == []
    assert [(t.tid, t.success, t.message) for t in listed][:2] == [
        (started.tid, True, "The job has been started."),
        (held.tid, False, "The deletion has been cancelled."),
    ]


@as_json_param
async def test_task_whose_operation_is_gone_reads_finished_unsuccessful(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Tasks: a deletion whose Operation the server no longer has (DeleteOperation through
    gRPC) is absent from the ListOperations reply: the task reads Finished, Success=false,
    and stays so without further calls."""
    job = await seed(clients)
    sid = await logon(vhttp)
    task = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(job)}", headers=auth(sid)))
    name = await operation_of(clients, job)
    await wait_done(clients.operations, name)
    await clients.operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name))
    calls = record_rpcs(vgw.app)
    listed = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid, as_json)), as_json)
    gone = "The deletion can no longer be tracked: its operation is gone."
    assert [(t.tid, t.state, t.success, t.message) for t in listed] == [
        (task.tid, "Finished", False, gone)
    ]
    assert calls == ["ListOperations"]
    calls.clear()
    r = await vhttp.get(f"/api/tasks/{task.tid}", headers=auth(sid, as_json))
    assert (task_of(vhttp, r, 200, as_json), calls) == (listed[0], [])


async def test_get_of_a_task_whose_operation_is_gone_is_404(
    vgw: RunningGateway, vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Tasks: GET /api/tasks/<tid> of a deletion not yet seen finished whose Operation the
    server no longer has: its one GetOperation is NOT_FOUND -> 404 "Task <tid> not found."
    (the list, asked first, would show it Finished, Success=false)."""
    job = await seed(clients)
    sid = await logon(vhttp)
    task = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(job)}", headers=auth(sid)))
    name = await operation_of(clients, job)
    await wait_done(clients.operations, name)
    await clients.operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=name))
    calls = record_rpcs(vgw.app)
    message = error(await vhttp.get(f"/api/tasks/{task.tid}", headers=auth(sid)), 404)
    assert (message, calls) == (f"Task {task.tid} not found.", ["GetOperation"])


@as_json_param
async def test_cancel_of_a_deletion_that_finished_meanwhile_is_400(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Tasks: DELETE /api/tasks/<tid> of a deletion the gateway still thinks unfinished but
    that finished meanwhile: ONE CancelOperation refused (OPERATION_NOT_CANCELLABLE) -> 400
    "Task <tid> has already finished." by the cancel row's errors; the task stays and then
    reads Finished with Success=true."""
    job = await seed(clients)
    sid = await logon(vhttp)
    task = task_of(vhttp, await vhttp.delete(f"/api/jobs/{jid(job)}", headers=auth(sid)))
    assert task.state == "Running"
    await wait_done(clients.operations, await operation_of(clients, job))
    calls = record_rpcs(vgw.app)
    r = await vhttp.delete(f"/api/tasks/{task.tid}", headers=auth(sid, as_json))
    message = error(r, 400, as_json)
    assert (message, calls) == (f"Task {task.tid} has already finished.", ["CancelOperation"])
    done = task_of(vhttp, await vhttp.get(f"/api/tasks/{task.tid}", headers=auth(sid)), 200)
    assert (done.state, done.success) == ("Finished", True)
    await assert_gone(clients, job.name)


@as_json_param
async def test_get_logon_session_is_the_callers_own_and_another_id_is_404(
    vgw: RunningGateway, vhttp: httpx.AsyncClient, as_json: bool
) -> None:
    """Sessions: GET /api/logonSessions/<sid> -> 200 the caller's own LogonSession (what
    log on answered); any other id (the same user's other session, another user's,
    unknown) -> 404 "Logon session <sid> not found."; no RPC."""
    mine = await logon(vhttp, "view")
    same_user = await logon(vhttp, "view")
    other = await logon(vhttp, "admin")
    calls = record_rpcs(vgw.app)
    r = await vhttp.get(f"/api/logonSessions/{mine}", headers=auth(mine, as_json))
    expect(r, 200, "LogonSession", logon_session_of(base_of(vhttp), mine, "view"), as_json)
    for sid in (same_user, other, "bm9wZQ=="):
        r = await vhttp.get(f"/api/logonSessions/{sid}", headers=auth(mine, as_json))
        assert error(r, 404, as_json) == f"Logon session {sid} not found."
    assert calls == []


@as_json_param
async def test_logon_session_list_holds_only_the_callers_own_session(
    vgw: RunningGateway, vhttp: httpx.AsyncClient, as_json: bool
) -> None:
    """Sessions: GET /api/logonSessions -> 200 LogonSessions holding only the caller's own
    session (a LogonSession carries its token: other users' sessions, and the same user's
    others, are never listed); no RPC."""
    others = [await logon(vhttp, "admin"), await logon(vhttp, "oper"), await logon(vhttp, "view")]
    mine = await logon(vhttp, "view")
    calls = record_rpcs(vgw.app)
    r = await vhttp.get("/api/logonSessions", headers=auth(mine, as_json))
    own = logon_session_of(base_of(vhttp), mine, "view")
    expect(r, 200, "LogonSessions", {"LogonSessions": [own]}, as_json)
    assert not [sid for sid in others if sid in r.text]
    assert calls == []


@as_json_param
async def test_body_over_the_gateway_limit_is_413_in_the_error_format(
    vgw: RunningGateway,
    vhttp: httpx.AsyncClient,
    clients: Clients,
    coll: res.Collection,
    as_json: bool,
) -> None:
    """Errors: a body over the gateway's limit (JOBCONTROL_MAX_BODY, 1 MiB) -> 413 Error
    body (StatusCode 413) before any call, on log on and on a job action; nothing changes,
    no session, no task."""
    job = await seed(clients)
    sid = await logon(vhttp)
    before = await snapshot(clients, job)
    calls = record_rpcs(vgw.app)
    accept = {"Accept": "application/json"} if as_json else {}
    requests = [
        (LOGON, {"Authorization": basic("admin", PASSWORDS["admin"]), **accept}),
        (f"/api/jobs/{jid(job)}?action=start", auth(sid, as_json)),
    ]
    for path, headers in requests:
        r = await vhttp.post(path, headers=headers, content=BIG)
        assert error(r, 413, as_json) == "request body over 1048576 bytes"
        assert SID not in r.headers
    assert calls == []
    await assert_same(clients, before)
    assert tasks_of(vhttp, await vhttp.get("/api/tasks", headers=auth(sid))) == []


async def test_job_list_holds_at_most_1000_jobs(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Jobs: a list is one ListJobs page: it holds at most 1,000 jobs (the first 1,000 by
    id; Enterprise Manager's lists have no paging of their own)."""
    spec = res.BackupSpec(job_type=Backup.BACKUP, platform=Backup.VMWARE)
    limit = asyncio.Semaphore(64)

    async def make(n: int) -> None:
        async with limit:
            job_id = f"{n:08x}-0000-4000-8000-000000000000"
            request = jobs_pb.CreateJobRequest(parent=coll.name, job_id=job_id)
            request.job.backup.CopyFrom(spec)
            await clients.jobs.CreateJob(request)

    await asyncio.gather(*(make(n) for n in range(1001)))
    sid = await logon(vhttp)
    r = await vhttp.get("/api/jobs", headers=auth(sid, True))
    refs = parsed(r, 200, "EntityReferences", True)["Refs"]
    assert [ref["UID"].rsplit(":", 1)[1][:8] for ref in refs] == [f"{n:08x}" for n in range(1000)]


# --- the error table ------------------------------------------------------------------

S = grpc.StatusCode
JOB_GET = ("GET", f"/api/jobs/{SEED_004_ID}", "")
JOB_START = ("POST", f"/api/jobs/{SEED_004_ID}", "action=start")
JOB_DELETE = ("DELETE", f"/api/jobs/{SEED_004_ID}", "")
TASK_GET = ("GET", "/api/tasks/task-7", "")
TASK_DELETE = ("DELETE", "/api/tasks/task-7", "")
SESSION_GET = ("GET", "/api/logonSessions/c2lk", "")
NOT_FOUND_JOB = f"Job {SEED_004_ID} not found."
SERVER = "the server's message"
# (table, key, code, route, status, message): every row of the dialect's tables
ERROR_CASES: list[tuple[str, Any, grpc.StatusCode, tuple[str, str, str], int, str]] = [
    ("reason", "JOB_NOT_FOUND", S.NOT_FOUND, JOB_GET, 404, NOT_FOUND_JOB),
    ("reason", "COLLECTION_NOT_FOUND", S.NOT_FOUND, JOB_START, 404, NOT_FOUND_JOB),
    ("reason", "JOB_TYPE_MISMATCH", S.FAILED_PRECONDITION, JOB_START, 404, NOT_FOUND_JOB),
    ("reason", "TASK_NOT_FOUND", S.NOT_FOUND, TASK_GET, 404, "Task task-7 not found."),
    ("reason", "SESSION_NOT_FOUND", S.NOT_FOUND, SESSION_GET, 404,
     "Logon session c2lk not found."),
    ("reason", "ROUTE_NOT_FOUND", S.NOT_FOUND, JOB_GET, 404, SERVER),
    ("reason", "METHOD_NOT_ALLOWED", S.UNIMPLEMENTED, JOB_GET, 405, SERVER),
    ("reason", "BODY_TOO_LARGE", S.INVALID_ARGUMENT, JOB_START, 413, SERVER),
    ("reason", "BAD_CREDENTIALS", S.UNAUTHENTICATED, JOB_GET, 401, SERVER),
    ("reason", "SESSION_REQUIRED", S.UNAUTHENTICATED, JOB_GET, 401, SERVER),
    ("reason", "LOGON_THROTTLED", S.RESOURCE_EXHAUSTED, JOB_GET, 429, SERVER),
    ("reason", "RETRY_NOT_ALLOWED", S.FAILED_PRECONDITION, JOB_START, 400, SERVER),
    ("reason", "OPERATION_INVALID_FOR_STATE", S.FAILED_PRECONDITION, JOB_START, 400, SERVER),
    ("reason", "JOB_BEING_DELETED", S.FAILED_PRECONDITION, JOB_START, 400, SERVER),
    ("reason", "OPERATION_NOT_CANCELLABLE", S.FAILED_PRECONDITION, TASK_GET, 400, SERVER),
    ("reason", "OPERATION_NOT_FOUND", S.NOT_FOUND, TASK_GET, 404, "Task task-7 not found."),
    ("code", S.INVALID_ARGUMENT, S.INVALID_ARGUMENT, JOB_GET, 400, SERVER),
    ("code", S.FAILED_PRECONDITION, S.FAILED_PRECONDITION, JOB_START, 400, SERVER),
    ("code", S.NOT_FOUND, S.NOT_FOUND, TASK_GET, 404, SERVER),
    ("code", S.ALREADY_EXISTS, S.ALREADY_EXISTS, JOB_START, 409, SERVER),
    ("code", S.ABORTED, S.ABORTED, JOB_START, 409, SERVER),
    ("code", S.UNAUTHENTICATED, S.UNAUTHENTICATED, JOB_GET, 401, SERVER),
    ("code", S.PERMISSION_DENIED, S.PERMISSION_DENIED, JOB_GET, 403, SERVER),
    ("code", S.UNAVAILABLE, S.UNAVAILABLE, JOB_GET, 503, SERVER),
    ("code", S.DEADLINE_EXCEEDED, S.DEADLINE_EXCEEDED, JOB_GET, 504, SERVER),
    # codes the table leaves to the standard gRPC -> HTTP mapping
    ("standard", S.RESOURCE_EXHAUSTED, S.RESOURCE_EXHAUSTED, JOB_START, 429, SERVER),
    ("standard", S.INTERNAL, S.INTERNAL, JOB_GET, 500, SERVER),
    ("delete", "JOB_TYPE_NOT_DELETABLE", S.FAILED_PRECONDITION, JOB_DELETE, 404, NOT_FOUND_JOB),
    ("delete", "JOB_BEING_DELETED", S.FAILED_PRECONDITION, JOB_DELETE, 404, NOT_FOUND_JOB),
    ("cancel", "OPERATION_NOT_CANCELLABLE", S.FAILED_PRECONDITION, TASK_DELETE, 400,
     "Task task-7 has already finished."),
]  # fmt: skip


def test_error_cases_cover_every_row_of_the_dialects_tables() -> None:
    """Errors: the parametrized cases below walk every row of the error table, its codes and
    the routes' own rows (a row added without a case fails here)."""
    covered = {(table, key) for table, key, *_ in ERROR_CASES}
    rows: set[tuple[str, Any]] = {("reason", k) for k in veeam_errors.ERRORS.by_reason}
    rows |= {("code", k) for k in veeam_errors.ERRORS.by_code}
    rows |= {("delete", k) for k in veeam_errors.DELETE_ERRORS}
    rows |= {("cancel", k) for k in veeam_errors.CANCEL_ERRORS}
    assert {c for c in covered if c[0] != "standard"} == rows


@pytest.mark.parametrize("as_json", FORMATS, ids=FORMAT_IDS)
@pytest.mark.parametrize(
    ("table", "key", "code", "route", "status", "message"),
    ERROR_CASES,
    ids=[f"{c[0]}-{getattr(c[1], 'name', c[1])}" for c in ERROR_CASES],
)
def test_error_table_gives_status_and_error_body(
    dialect: VeeamDialect,
    table: str,
    key: Any,
    code: grpc.StatusCode,
    route: tuple[str, str, str],
    status: int,
    message: str,
    as_json: bool,
) -> None:
    """Errors: each (reason, code) -> its StatusCode and Message, in `<Error xmlns=NS
    StatusCode Message/>` or exactly {"StatusCode", "Message"}; only bad credentials carry
    WWW-Authenticate: Basic realm="RestSvc", only a throttled logon Retry-After."""
    method, path, query = route
    incoming = incoming_for(dialect, method, path, query, "application/json" if as_json else "")
    assert incoming.route is not None
    throttled = key == "LOGON_THROTTLED"
    extra = {"retry_after": "7"} if throttled else {}
    error = GatewayError(code, SERVER, key if isinstance(key, str) else "", extra)
    r = dialect.format_error(error, dialect.errors.row(error, incoming.route.errors), incoming)
    assert r.status == status
    if as_json:
        assert (r.content_type, orjson.loads(r.body)) == (
            JSON_CT,
            {"StatusCode": status, "Message": message},
        )
    else:
        doc = ET.fromstring(r.body)
        assert (r.content_type, doc.tag, list(doc)) == (XML_CT, f"{{{NS}}}Error", [])
        assert doc.attrib == {"StatusCode": str(status), "Message": message}
    realm = [("www-authenticate", REALM)] if key == "BAD_CREDENTIALS" else []
    assert r.headers == realm + ([("retry-after", "7")] if throttled else [])
