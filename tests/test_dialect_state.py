"""Nothing a client depends on lives in one gateway's memory (deployment.md): Veeam logon
sessions and tasks and Azure Scheduler operation outcomes are kept by the core
(DialectStateService), so two gateways in front of one server answer alike."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import descriptor, duration_pb2, empty_pb2
from sqlalchemy import select

from jobcontrol.service import tokens
from jobcontrol.service.core import dialect_state as core_state
from jobcontrol.service.core import reaper
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.service.storage import schema
from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import job_service_pb2_grpc, session_service_pb2_grpc
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import session_service_pb2 as pb
from tests.conftest import (
    SECURED_POLICY,
    RunningGateway,
    make_settings,
    secured_settings,
    start_gateway,
)
from tests.helpers import expect_error

pytestmark = pytest.mark.backends

NOT_FOUND = grpc.StatusCode.NOT_FOUND
DENIED = grpc.StatusCode.PERMISSION_DENIED
SERVICE = pb.DESCRIPTOR.services_by_name["DialectStateService"]
USERS, ROLES = "admin:adminpw,view:viewpw", "view=viewer"
PUBLIC = "https://gateway.example"  # both gateways sit behind one public URL
SID = "X-RestSvcSessionId"
LOGON = "/api/sessionMngr/?v=latest"
JSON = {"Accept": "application/json"}
SESSION_REQUIRED = {
    "StatusCode": 401,
    "Message": "A valid X-RestSvcSessionId is required; log on first.",
}
AZURE = {"x-ms-version": "2013-06-01"}
AZURE_NS = "http://schemas.microsoft.com/windowsazure"
DIGEST = "0" * 64


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@dataclass
class Pair:
    """One server, two gateways in front of it (Veeam on both), a client for each."""

    server: RunningServer
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    gateways: tuple[RunningGateway, RunningGateway]


@contextlib.asynccontextmanager
async def two_gateways(server: RunningServer, idle: float = 900.0) -> AsyncIterator[Pair]:
    """Two gateways in front of `server`, with the Veeam dialect on."""
    started = []
    for _ in range(2):
        started.append(await start_gateway(
            server.address, veeam_users=USERS, veeam_roles=ROLES, veeam_session_idle=idle,
            public_url=PUBLIC))  # fmt: skip
    (ga, stop_a), (gb, stop_b) = started
    try:
        async with (
            httpx.AsyncClient(base_url=ga.base_url, timeout=30) as a,
            httpx.AsyncClient(base_url=gb.base_url, timeout=30) as b,
        ):
            yield Pair(server, a, b, (ga, gb))
    finally:
        await stop_a()
        await stop_b()


@pytest.fixture
async def pair(server: RunningServer) -> AsyncIterator[Pair]:
    async with two_gateways(server) as found:
        yield found


@pytest.fixture
async def state(server: RunningServer) -> AsyncIterator[Any]:
    """A DialectStateService stub on the (open) server."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield session_service_pb2_grpc.DialectStateServiceStub(channel)


async def logon(http: httpx.AsyncClient, user: str = "admin", password: str = "adminpw") -> str:
    r = await http.post(LOGON, headers={**basic(user, password), **JSON})
    assert r.status_code == 201, r.text
    http.cookies.clear()
    return r.headers[SID]


def body(r: httpx.Response, status: int) -> Any:
    assert r.status_code == status, r.text
    return r.json()


async def seed_job(server: RunningServer) -> str:
    """The Veeam collection and one backup job in it; the job's GUID."""
    async with grpc.aio.insecure_channel(server.address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        await jobs.CreateCollection(jobs_pb.CreateCollectionRequest(
            collection_id="veeam", collection=res.Collection(profile=res.BACKUP)))  # fmt: skip
        guid = str(uuid.uuid4())
        spec = res.BackupSpec(job_type=res.BackupSpec.BACKUP, schedule_enabled=True)
        await jobs.CreateJob(jobs_pb.CreateJobRequest(
            parent="collections/veeam", job_id=guid, job=res.Job(backup=spec)))  # fmt: skip
        return guid


def idle(seconds: float) -> duration_pb2.Duration:
    found = duration_pb2.Duration()
    found.FromMicroseconds(int(seconds * 1_000_000))
    return found


async def new_session(stub: Any, digest: str = DIGEST, seconds: float = 900.0) -> Any:
    return await stub.CreateLogonSession(pb.CreateLogonSessionRequest(
        parent="dialects/veeam", logon_session_id=digest,
        logon_session=pb.LogonSession(user="admin", roles=["administrator"],
                                      idle_timeout=idle(seconds))))  # fmt: skip


# --- Veeam across gateways ----------------------------------------------------------------


async def test_veeam_token_from_gateway_a_works_on_gateway_b(pair: Pair) -> None:
    """A token issued by gateway A works on gateway B: the same LogonSession, the same
    jobs; an unknown token is 401 on both."""
    await seed_job(pair.server)
    sid = await logon(pair.a)
    head = {SID: sid, **JSON}
    on_a, on_b = (await pair.a.get("/api/jobs", headers=head), await pair.b.get("/api/jobs",
                  headers=head))  # fmt: skip
    assert (on_b.status_code, on_b.content) == (200, on_a.content)
    assert len(on_b.json()["Refs"]) == 1
    session = body(await pair.b.get(f"/api/logonSessions/{sid}", headers=head), 200)
    assert (session["SessionId"], session["UserName"]) == (sid, "admin")
    assert session["Href"] == f"{PUBLIC}/api/logonSessions/{sid}"
    forged = {SID: base64.b64encode(str(uuid.uuid4()).encode()).decode(), **JSON}
    for http in (pair.a, pair.b):
        assert body(await http.get("/api/jobs", headers=forged), 401) == SESSION_REQUIRED


async def test_veeam_logoff_on_b_ends_session_on_a(pair: Pair) -> None:
    """Log off on gateway B ends the session on gateway A (and on B): 204, then 401."""
    sid = await logon(pair.a)
    head = {SID: sid, **JSON}
    assert (await pair.a.get("/api/tasks", headers=head)).status_code == 200
    r = await pair.b.delete(f"/api/logonSessions/{sid}", headers=head)
    assert (r.status_code, r.content) == (204, b"")
    for http in (pair.a, pair.b):
        assert body(await http.get("/api/tasks", headers=head), 401) == SESSION_REQUIRED
        r = await http.get("/api/jobs", headers={"Cookie": f"{SID}={sid}", **JSON})
        assert body(r, 401) == SESSION_REQUIRED


async def test_veeam_task_polled_on_other_gateway_same_state(pair: Pair) -> None:
    """A task created on gateway A reads the same on B (byte for byte), a deletion resolved
    by polling on B is Finished on A too, and task numbers never collide across gateways;
    another session sees none of them."""
    guid = await seed_job(pair.server)
    sid = await logon(pair.a)
    head = {SID: sid, **JSON}
    started = body(await pair.a.post(f"/api/jobs/{guid}?action=start", headers=head), 202)
    assert started["State"] == "Finished"
    tid = started["TaskId"]
    on_a = await pair.a.get(f"/api/tasks/{tid}", headers=head)
    on_b = await pair.b.get(f"/api/tasks/{tid}", headers=head)
    assert (on_a.status_code, on_b.status_code, on_b.content) == (200, 200, on_a.content)
    assert body(on_b, 200) == started

    stopped = body(await pair.b.post(f"/api/jobs/{guid}?action=stop", headers=head), 202)
    number = int(stopped["TaskId"].removeprefix("task-"))
    assert number > int(tid.removeprefix("task-"))
    deletion = body(await pair.a.delete(f"/api/jobs/{guid}", headers=head), 202)
    assert deletion["Operation"] == "DeleteJob"
    for _ in range(200):
        polled = body(await pair.b.get(f"/api/tasks/{deletion['TaskId']}", headers=head), 200)
        if polled["State"] == "Finished":
            break
        await asyncio.sleep(0.02)
    assert polled["Result"] == {"Success": True, "Message": "The job has been deleted."}
    assert body(await pair.a.get(f"/api/tasks/{deletion['TaskId']}", headers=head), 200) == polled
    listed_a = await pair.a.get("/api/tasks", headers=head)
    listed_b = await pair.b.get("/api/tasks", headers=head)
    assert listed_a.content == listed_b.content
    assert [t["TaskId"] for t in body(listed_a, 200)["Tasks"]] == [
        tid, stopped["TaskId"], deletion["TaskId"]
    ]  # fmt: skip

    other = {SID: await logon(pair.b), **JSON}
    assert body(await pair.b.get("/api/tasks", headers=other), 200) == {"Tasks": []}
    r = await pair.a.get(f"/api/tasks/{tid}", headers=other)
    assert body(r, 404) == {"StatusCode": 404, "Message": f"Task {tid} not found."}
    r = await pair.b.delete(f"/api/tasks/{tid}", headers=head)
    assert (r.status_code, r.content) == (204, b"")
    r = await pair.a.get(f"/api/tasks/{tid}", headers=head)
    assert body(r, 404) == {"StatusCode": 404, "Message": f"Task {tid} not found."}


async def test_session_idle_expiry(server: RunningServer, state: Any) -> None:
    """A session idle longer than its timeout (on the server's clock) is 401 on every
    gateway, and the lookup removes it; requests within the window keep it alive."""
    async with two_gateways(server, idle=0.6) as found:
        sid = await logon(found.a)
        head = {SID: sid, **JSON}
        for http in (found.b, found.a, found.b):
            await asyncio.sleep(0.3)
            assert (await http.get("/api/tasks", headers=head)).status_code == 200
        await asyncio.sleep(0.9)
        assert body(await found.b.get("/api/tasks", headers=head), 401) == SESSION_REQUIRED
        assert body(await found.a.get("/api/tasks", headers=head), 401) == SESSION_REQUIRED
    digest = hashlib.sha256(sid.encode()).hexdigest()
    assert await server.store.read(lambda tx: tx.get_logon_session("veeam", digest)) is None
    name = f"dialects/veeam/logonSessions/{digest}"
    await expect_error(state.GetLogonSession(pb.GetLogonSessionRequest(name=name)), NOT_FOUND,
                       "LOGON_SESSION_NOT_FOUND")  # fmt: skip


async def test_session_expiry_is_refreshed_at_most_every_tenth_of_the_idle_timeout(
    state: Any,
) -> None:
    """GetLogonSession moves the expiry only once it was set more than a tenth of the
    idle timeout ago (no write on every request)."""
    created = await new_session(state, seconds=10.0)
    name = created.name
    first = await state.GetLogonSession(pb.GetLogonSessionRequest(name=name))
    assert first.expire_time == created.expire_time  # within 1 s: not moved
    await asyncio.sleep(1.2)
    moved = await state.GetLogonSession(pb.GetLogonSessionRequest(name=name))
    assert moved.expire_time.ToMicroseconds() >= created.expire_time.ToMicroseconds() + 1_200_000
    assert core_state.REFRESH_FRACTION == 0.1


async def test_token_stored_as_digest(pair: Pair) -> None:
    """The core stores the SHA-256 digest of a Veeam token, never the token; a token sent
    as the session id (not a digest) is refused."""
    sid = await logon(pair.a)
    await seed_job(pair.server)

    async def stored(tx: Any) -> list[Any]:
        found = []
        for table in (schema.logon_sessions, schema.session_tasks):
            found += list((await tx.conn.execute(select(table))).all())
        return found

    everything = repr(await pair.server.store.read(stored))
    assert sid not in everything
    assert hashlib.sha256(sid.encode()).hexdigest() in everything
    async with grpc.aio.insecure_channel(pair.server.address) as channel:
        stub = session_service_pb2_grpc.DialectStateServiceStub(channel)
        err = await expect_error(new_session(stub, digest=sid), grpc.StatusCode.INVALID_ARGUMENT,
                                 "INVALID_FIELD")  # fmt: skip
        assert err.info is not None and err.info.metadata["field"] == "logon_session_id"


# --- Scheduler across gateways ------------------------------------------------------------


async def test_scheduler_operation_from_a_read_on_b(pair: Pair) -> None:
    """A request id issued by gateway A is read with Get Operation Status on gateway B
    (recorded before A answered), failures with their code and message; another
    subscription's is 404 ResourceNotFound."""
    jc = "/mysub/cloudServices/mycs/resources/scheduler/jobCollections/jc"
    r = await pair.a.put(jc, headers=AZURE)
    assert r.status_code == 202, r.text
    rid = r.headers["x-ms-request-id"]
    op = await pair.b.get(f"/mysub/operations/{rid}", headers=AZURE)
    assert (op.status_code, op.text) == (200, (
        f'<Operation xmlns="{AZURE_NS}"><ID>{rid}</ID><Status>Succeeded</Status>'
        "<HttpStatusCode>202</HttpStatusCode></Operation>"))  # fmt: skip
    r = await pair.b.get("/mysub/cloudServices/mycs/resources/scheduler/~/jobCollections/jc"
                         "/jobs/nope", headers=AZURE)  # fmt: skip
    failed = r.headers["x-ms-request-id"]
    op = await pair.a.get(f"/mysub/operations/{failed}", headers=AZURE)
    assert (op.status_code, op.text) == (200, (
        f'<Operation xmlns="{AZURE_NS}"><ID>{failed}</ID><Status>Failed</Status>'
        "<HttpStatusCode>404</HttpStatusCode><Error><Code>ResourceNotFound</Code>"
        "<Message>The job 'nope' was not found.</Message></Error></Operation>"))  # fmt: skip
    other = await pair.b.get(f"/othersub/operations/{rid}", headers=AZURE)
    assert (other.status_code, other.text) == (404, (
        f'<Error xmlns="{AZURE_NS}"><Code>ResourceNotFound</Code>'
        f"<Message>The operation '{rid}' was not found.</Message></Error>"))  # fmt: skip


# --- the service itself -------------------------------------------------------------------


async def test_session_keeps_its_newest_1000_tasks(state: Any) -> None:
    """A session keeps its newest 1,000 tasks (the oldest go first); numbers are unique
    and never reused, also when created concurrently."""
    session = (await new_session(state)).name
    request = pb.CreateSessionTaskRequest(
        parent=session, session_task=pb.SessionTask(operation="StartJob")
    )
    created: list[Any] = []
    for _ in range(11):
        created += await asyncio.gather(*(state.CreateSessionTask(request) for _ in range(100)))
    numbers = [int(t.name.rsplit("-", 1)[1]) for t in created]
    assert len(set(numbers)) == 1100
    listed = await state.ListSessionTasks(pb.ListSessionTasksRequest(parent=session))
    kept = [int(t.name.rsplit("-", 1)[1]) for t in listed.session_tasks]
    assert (kept, listed.next_page_token) == (sorted(numbers)[-1000:], "")
    page = await state.ListSessionTasks(pb.ListSessionTasksRequest(parent=session, page_size=600))
    rest = await state.ListSessionTasks(pb.ListSessionTasksRequest(
        parent=session, page_size=600, page_token=page.next_page_token))  # fmt: skip
    assert [*page.session_tasks, *rest.session_tasks] == list(listed.session_tasks)
    oldest = f"{session}/tasks/task-{min(numbers)}"
    await expect_error(state.GetSessionTask(pb.GetSessionTaskRequest(name=oldest)), NOT_FOUND,
                       "SESSION_TASK_NOT_FOUND")  # fmt: skip


async def test_session_task_first_result_wins(state: Any) -> None:
    """FinishSessionTask sets a result once; a later one returns the task as it is. Log
    off removes the session's tasks."""
    session = (await new_session(state)).name
    task = await state.CreateSessionTask(pb.CreateSessionTaskRequest(
        parent=session, session_task=pb.SessionTask(operation="DeleteJob",
                                                    operation_name="operations/x")))  # fmt: skip
    assert not task.HasField("result")
    first = pb.SessionTask.Result(success=False, message="The deletion has been cancelled.")
    done = await state.FinishSessionTask(pb.FinishSessionTaskRequest(name=task.name, result=first))
    later = pb.SessionTask.Result(success=True, message="The job has been deleted.")
    again = await state.FinishSessionTask(pb.FinishSessionTaskRequest(name=task.name, result=later))
    assert (done.result, again) == (first, done)
    assert await state.GetSessionTask(pb.GetSessionTaskRequest(name=task.name)) == done
    await state.DeleteLogonSession(pb.DeleteLogonSessionRequest(name=session))
    await expect_error(state.GetSessionTask(pb.GetSessionTaskRequest(name=task.name)), NOT_FOUND,
                       "SESSION_TASK_NOT_FOUND")  # fmt: skip
    await expect_error(state.DeleteLogonSession(pb.DeleteLogonSessionRequest(name=session)),
                       NOT_FOUND, "LOGON_SESSION_NOT_FOUND")  # fmt: skip
    gone = pb.DeleteLogonSessionRequest(name=session, allow_missing=True)
    assert await state.DeleteLogonSession(gone) == empty_pb2.Empty()


async def test_every_dialect_state_rpc_is_served(state: Any) -> None:
    """Contract: every RPC of DialectStateService answers a valid call."""
    seen: set[str] = set()

    async def call(method: str, request: Any) -> Any:
        reply = await getattr(state, method)(request)
        seen.add(method)
        return reply

    session = await call(
        "CreateLogonSession",
        pb.CreateLogonSessionRequest(
            parent="dialects/veeam",
            logon_session_id="a" * 64,
            logon_session=pb.LogonSession(user="u", roles=["viewer"], idle_timeout=idle(60)),
        ),
    )
    assert await call("GetLogonSession", pb.GetLogonSessionRequest(name=session.name)) == session
    task = await call(
        "CreateSessionTask",
        pb.CreateSessionTaskRequest(
            parent=session.name, session_task=pb.SessionTask(operation="StartJob")
        ),
    )
    assert await call("GetSessionTask", pb.GetSessionTaskRequest(name=task.name)) == task
    listed = await call("ListSessionTasks", pb.ListSessionTasksRequest(parent=session.name))
    assert list(listed.session_tasks) == [task]
    result = pb.SessionTask.Result(success=True, message="ok")
    await call("FinishSessionTask", pb.FinishSessionTaskRequest(name=task.name, result=result))
    await call("DeleteSessionTask", pb.DeleteSessionTaskRequest(name=task.name))
    await call("DeleteLogonSession", pb.DeleteLogonSessionRequest(name=session.name))
    name = "dialects/scheduler/scopes/sub/outcomes/rid"
    recorded = await call("RecordRequestOutcome", pb.RecordRequestOutcomeRequest(
        request_outcome=pb.RequestOutcome(name=name, http_status=404, error_code="X",
                                          error_message="m")))  # fmt: skip
    assert await call("GetRequestOutcome", pb.GetRequestOutcomeRequest(name=name)) == recorded
    assert seen == {m.name for m in SERVICE.methods}


async def test_reaper_sweeps_expired_sessions_and_outcomes_past_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reaper's reply sweep also removes expired logon sessions (with their tasks) and
    outcomes older than the idempotency window, without anyone asking for them."""
    monkeypatch.setattr(reaper, "REPLY_SWEEP_EVERY", 0.05)
    running = await start_server(make_settings(tmp_path, idempotency_window=0.3))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = session_service_pb2_grpc.DialectStateServiceStub(channel)
            session = await new_session(stub, seconds=0.2)
            await stub.CreateSessionTask(
                pb.CreateSessionTaskRequest(
                    parent=session.name, session_task=pb.SessionTask(operation="StartJob")
                )
            )
            await stub.RecordRequestOutcome(pb.RecordRequestOutcomeRequest(
                request_outcome=pb.RequestOutcome(name="dialects/scheduler/scopes/s/outcomes/r",
                                                  http_status=200)))  # fmt: skip

        async def left(tx: Any) -> int:
            tables = (schema.logon_sessions, schema.session_tasks, schema.request_outcomes)
            count = 0
            for table in tables:
                count += len((await tx.conn.execute(select(table))).all())
            return count

        assert await running.store.read(left) == 3
        for _ in range(100):
            if await running.store.read(left) == 0:
                break
            await asyncio.sleep(0.05)
        assert await running.store.read(left) == 0
    finally:
        await running.stop(grace=1.0)


# --- who may call it ------------------------------------------------------------------------

POLICY = (
    SECURED_POLICY
    + """
[[bindings]]
principals = ["user:alice"]
role = "editor"
"""
)


def bearer(key: Path, subject: str) -> list[tuple[str, str]]:
    token = tokens.mint(key, subject, algorithm="ES256")
    return [("authorization", f"Bearer {token}")]


def method_path(method: descriptor.MethodDescriptor) -> str:
    return f"/{SERVICE.full_name}/{method.name}"


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, Path]]:
    settings, key = secured_settings(tmp_path, POLICY)
    running = await start_server(settings)
    try:
        yield running, key
    finally:
        await running.stop(grace=1.0)


@pytest.mark.parametrize("method", list(SERVICE.methods), ids=lambda m: m.name)
async def test_dialect_state_rpcs_are_denied_without_impersonator_or_admin(
    secured: tuple[RunningServer, Path], method: descriptor.MethodDescriptor
) -> None:
    """Permissions: a principal that is neither an impersonator (a gateway) nor an admin
    (here an editor of every collection) gets PERMISSION_DENIED on every
    DialectStateService RPC, before anything is looked up."""
    running, key = secured
    async with grpc.aio.insecure_channel(running.address) as channel:
        call = channel.unary_unary(method_path(method), request_serializer=bytes,
                                   response_deserializer=bytes)  # fmt: skip
        err = await expect_error(call(b"", metadata=bearer(key, "alice")), DENIED,
                                 "PERMISSION_DENIED")  # fmt: skip
        assert err.info is not None
        assert dict(err.info.metadata) == {
            "permission": f"jobcontrol.dialects.{_noun(method.name)}",
            "resource": "this service",
        }


def _noun(method: str) -> str:
    return "outcomes" if "Outcome" in method else "tasks" if "Task" in method else "sessions"


@pytest.mark.parametrize("subject", ["gateway", "admin"])
async def test_dialect_state_rpcs_are_allowed_to_impersonators_and_admins(
    secured: tuple[RunningServer, Path], subject: str
) -> None:
    """Permissions: the gateway's own principal (impersonator) and an admin create, read
    and end sessions and record outcomes."""
    running, key = secured
    metadata = bearer(key, subject)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = session_service_pb2_grpc.DialectStateServiceStub(channel)
        created = await stub.CreateLogonSession(pb.CreateLogonSessionRequest(
            parent="dialects/veeam", logon_session_id="b" * 64,
            logon_session=pb.LogonSession(user="u", idle_timeout=idle(60))),
            metadata=metadata)  # fmt: skip
        got = await stub.GetLogonSession(pb.GetLogonSessionRequest(name=created.name),
                                         metadata=metadata)  # fmt: skip
        assert got == created
        name = "dialects/scheduler/scopes/s/outcomes/r"
        await stub.RecordRequestOutcome(
            pb.RecordRequestOutcomeRequest(
                request_outcome=pb.RequestOutcome(name=name, http_status=200)
            ),
            metadata=metadata,
        )
        await stub.DeleteLogonSession(pb.DeleteLogonSessionRequest(name=created.name),
                                      metadata=metadata)  # fmt: skip
