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

import httpx
import pytest

from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import operator_service_pb2 as operator_pb
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients, RunningGateway, start_gateway
from tests.helpers import assert_gone, get_job

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
    Backup.HYPERV: "HyperV",
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
        "/api/logonSessions",
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
    # a finished task of one's own: the task rules apply (400), not a role refusal
    error(await vhttp.delete(f"/api/tasks/{task.tid}", headers=auth(sid)), 400)


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
async def test_get_job_is_a_reference_and_format_entity_is_the_entity(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Jobs: GET /api/jobs/<id> -> 200 root Ref; ?format=Entity -> root Job entity (JSON keys
    exactly Href, Type, Name, UID, Links, JobType, Platform, Description, ScheduleConfigured,
    ScheduleEnabled)."""
    job = await seed(clients)
    sid = await logon(vhttp)
    base = base_of(vhttp)
    r = await vhttp.get(f"/api/jobs/{jid(job)}", headers=auth(sid, as_json))
    expect(r, 200, "Ref", ref_of(base, job), as_json)
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
        expect(one, 200, "Ref", ref_of(base, job), False)
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
    expect(r, 200, "Ref", ref_of(base, job), True)
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
    """Jobs: Platform (VMware|vCloud|HyperV|Windows|Linux|FileShare)."""
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
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Tasks: DELETE /api/tasks/<tid> of an unfinished deletion -> 204, the deletion is
    cancelled: the job stays (GET 200, gRPC state back to what it was) and the task then
    reads Finished with Success=false. A finished task -> 400."""
    sid = await logon(vhttp)
    h = auth(sid, as_json)
    job, task = await held_deletion(vhttp, clients, sid)
    r = await vhttp.delete(f"/api/tasks/{task.tid}", headers=h)
    assert (r.status_code, r.content) == (204, b""), r.text
    done = await poll_task(vhttp, sid, task.tid, as_json)
    assert (done.state, done.operation, done.success) == ("Finished", "DeleteJob", False)

    after = await get_job(clients, job.name)
    assert after.state == res.RUNNING
    assert after.delete_operation == ""
    assert after.backup == job.backup
    assert after.display_name == job.display_name
    r = await vhttp.get(f"/api/jobs/{jid(job)}?format=Entity", headers=h)
    expect(r, 200, "Job", entity_of(base_of(vhttp), after), as_json)

    error(await vhttp.delete(f"/api/tasks/{task.tid}", headers=h), 400, as_json)
    assert (await get_job(clients, job.name)) == after
    assert await poll_task(vhttp, sid, task.tid, as_json) == done


@as_json_param
async def test_delete_of_a_finished_task_is_400_and_changes_nothing(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Tasks: DELETE /api/tasks/<tid> of a finished task -> 400 (action and deletion tasks);
    nothing changes."""
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
    for tid in (started.tid, deletion.tid):
        error(await vhttp.delete(f"/api/tasks/{tid}", headers=h), 400, as_json)
    await assert_same(clients, before)
    await assert_gone(clients, gone.name)
    tasks = tasks_of(vhttp, await vhttp.get("/api/tasks", headers=h), as_json)
    assert tasks == [started, deleted]


@as_json_param
async def test_delete_of_unknown_nas_agent_deleting_or_deleted_job_is_404_and_untouched(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection, as_json: bool
) -> None:
    """Delete: unknown id, NAS job, AGENT job, a job already being deleted or deleted -> 404
    (job untouched)."""
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
    for i in (str(uuid.uuid4()), jid(nas), jid(agent), jid(held), jid(gone)):
        error(await vhttp.delete(f"/api/jobs/{i}", headers=h), 404, as_json)
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
        "Ref",
        ref_of(base, nas),
        as_json,
    )
    expect(
        await vhttp.get(f"/api/agents/jobs/{jid(agent)}", headers=h),
        200,
        "Ref",
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
        expect(r, 200, "Ref", ref_of(base, job), as_json)
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


async def test_fixed_segments_are_case_insensitive_and_ids_keep_their_case(
    vhttp: httpx.AsyncClient, clients: Clients, coll: res.Collection
) -> None:
    """Paths: fixed segments are case-insensitive (/API/JOBS = /api/jobs); ids keep their
    case (the id in upper case is another, unknown id)."""
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
        "Ref",
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
    error(await vhttp.get(f"/API/JOBS/{SEED_004_ID.upper()}", headers=h), 404)
    error(await vhttp.get(f"/api/nas/jobs/{jid(nas).upper()}", headers=h), 404)

    task = task_of(vhttp, await vhttp.post(f"/API/JOBS/{SEED_004_ID}?action=start", headers=h))
    assert (task.operation, task.success) == ("StartJob", True)
    task = task_of(vhttp, await vhttp.post(f"/API/Nas/Jobs/{jid(nas)}/START", headers=h))
    assert (task.operation, task.success) == ("StartJob", True)
    assert (await get_job(clients, nas.name)).state == res.RUNNING
    assert task_of(vhttp, await vhttp.get(f"/API/TASKS/{task.tid}", headers=h), 200) == task
    assert len(tasks_of(vhttp, await vhttp.get("/Api/Tasks", headers=h))) == 2
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
