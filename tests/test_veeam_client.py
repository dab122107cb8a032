"""The real veeam-em client (`veeam_em.VeeamEm`, JSON by default, `?v=latest` on every
request, the token in a header and a cookie) against a real gateway and gRPC server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import requests
from veeam_em.exceptions import VeeamEmError
from veeam_em.manager import VeeamEm

from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import operator_service_pb2 as operator_pb
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients, RunningGateway, record_rpcs, start_gateway
from tests.helpers import assert_gone, get_job

COLLECTION = "veeam"
Backup = res.BackupSpec
WITHIN = 10.0


@pytest.fixture
async def vgw(server: RunningServer, clients: Clients) -> AsyncIterator[RunningGateway]:
    """The Veeam gateway (an administrator and a viewer) over the backup collection."""
    await clients.jobs.CreateCollection(
        jobs_pb.CreateCollectionRequest(
            collection_id=COLLECTION, collection=res.Collection(profile=res.BACKUP)
        )
    )
    running, stop = await start_gateway(
        server.address,
        veeam_users="admin:s3cr3t:pw,view:viewpw",
        veeam_roles="view=viewer",
        veeam_collection=COLLECTION,
    )
    try:
        yield running
    finally:
        await stop()


async def seed(
    clients: Clients, job_type: Any = Backup.BACKUP, name: str = "Backup Job 1"
) -> res.Job:
    """A job made through gRPC (the documented way to make them)."""
    spec = res.BackupSpec(job_type=job_type, platform=Backup.HYPERV, schedule_enabled=True)
    job: res.Job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(
            parent=f"collections/{COLLECTION}",
            job_id=str(uuid.uuid4()),
            job=res.Job(display_name=name, backup=spec),
        )
    )
    return job


def jid(job: res.Job) -> str:
    return job.name.rsplit("/", 1)[-1]


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The client is synchronous (requests): each call runs in a thread."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def logged_on(
    vgw: RunningGateway, user: str = "admin", password: str = "s3cr3t:pw"
) -> VeeamEm:
    em = VeeamEm(api_endpoint=vgw.base_url, ssl_verify=False)
    await call(em.get_token, user, password)
    return em


def ref(base: str, job: res.Job) -> dict[str, Any]:
    """A job's reference in JSON."""
    i, href = jid(job), f"{base}/api/jobs/{jid(job)}"
    return {
        "UID": f"urn:veeam:Job:{i}",
        "Name": job.display_name,
        "Href": href,
        "Type": "JobReference",
        "Links": [
            {"Href": f"{href}?format=Entity", "Name": job.display_name, "Type": "Job",
             "Rel": "Alternate"}
        ],
    }  # fmt: skip


def entity(base: str, job: res.Job) -> dict[str, Any]:
    """A job's entity in JSON."""
    i, href = jid(job), f"{base}/api/jobs/{jid(job)}"
    actions = [("start", "Start"), ("stop", "Stop"), ("retry", "Retry"),
               ("toggleScheduleEnabled", "ToggleScheduleEnabled")]  # fmt: skip
    return {
        "Href": f"{href}?format=Entity",
        "Type": "Job",
        "Name": job.display_name,
        "UID": f"urn:veeam:Job:{i}",
        "Links": [{"Href": href, "Name": job.display_name, "Type": "JobReference",
                   "Rel": "Alternate"}]
        + [{"Href": f"{href}?action={a}", "Type": "Task", "Rel": rel} for a, rel in actions],
        "JobType": "Backup",
        "Platform": "Hyperv",
        "Description": job.backup.description,
        "ScheduleConfigured": True,
        "ScheduleEnabled": job.backup.schedule_enabled,
    }  # fmt: skip


def task(base: str, body: dict[str, Any], operation: str, result: Any = None) -> dict[str, Any]:
    """The Task `body` must be (its TaskId taken from it)."""
    tid = body["TaskId"]
    want: dict[str, Any] = {
        "Href": f"{base}/api/tasks/{tid}",
        "Type": "Task",
        "Links": [{"Href": f"{base}/api/tasks/{tid}", "Type": "Task", "Rel": "Delete"}],
        "TaskId": tid,
        "State": "Running" if result is None else "Finished",
        "Operation": operation,
    }
    if result is not None:
        want["Result"] = {"Success": result[0], "Message": result[1]}
    return want


async def poll(em: VeeamEm, tid: str) -> dict[str, Any]:
    """GET /tasks/{tid} until Finished (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while True:
        body: dict[str, Any] = await call(em.request, f"/tasks/{tid}")
        if body["State"] == "Finished":
            return body
        assert loop.time() < deadline, body
        await asyncio.sleep(0.05)


async def test_client_logs_on_and_a_bad_password_raises(vgw: RunningGateway) -> None:
    """get_token: 201 gives the client its token and session data; a bad password is the
    401 the client raises (requests.HTTPError), with WWW-Authenticate Basic realm RestSvc."""
    em = await logged_on(vgw)
    assert em.api_token
    assert em.session_data == {"UserName": "admin", "SessionId": em.api_token,
                               "Href": f"{vgw.base_url}/api/logonSessions/{em.api_token}",
                               "Type": "LogonSession"}  # fmt: skip
    bad = VeeamEm(api_endpoint=vgw.base_url, ssl_verify=False)
    with pytest.raises(requests.HTTPError) as caught:
        await call(bad.get_token, "admin", "wrong")
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="RestSvc"'
    assert response.json() == {
        "StatusCode": 401,
        "Message": "The user name or password is incorrect.",
    }


async def test_client_whoami_and_logon_sessions_are_its_own_session(vgw: RunningGateway) -> None:
    """whoami() = GET /api/logonSessions/{SessionId}: the caller's LogonSession;
    get_logon_sessions() reads `LogonSessions`: only the caller's own session (a session
    body carries its token), even with other users logged on."""
    em = await logged_on(vgw)
    await logged_on(vgw, "view", "viewpw")
    base, sid = vgw.base_url, em.api_token
    own = {
        "Href": f"{base}/api/logonSessions/{sid}",
        "Type": "LogonSession",
        "Links": [
            {"Href": f"{base}/api/logonSessions/{sid}", "Type": "LogonSession", "Rel": "Delete"},
            {"Href": f"{base}/api/jobs", "Type": "JobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/nas/jobs", "Type": "NasJobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/agents/jobs", "Type": "AgentJobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/tasks", "Type": "TaskList", "Rel": "Down"},
        ],
        "UserName": "admin",
        "SessionId": sid,
    }
    assert await call(em.whoami) == own
    assert await call(em.get_logon_sessions) == [own]


async def test_client_lists_and_gets_jobs_as_references_and_entities(
    vgw: RunningGateway, clients: Clients
) -> None:
    """request('/jobs') -> {"Refs": [...]}, format=Entity -> {"Jobs": [...]}; a job alone is
    its EntityRef (same keys as a Ref), format=Entity its Job; NAS jobs are not listed."""
    jobs = sorted([await seed(clients), await seed(clients, name="Second")], key=jid)
    await seed(clients, Backup.NAS)
    em = await logged_on(vgw)
    base = vgw.base_url
    assert await call(em.request, "/jobs") == {"Refs": [ref(base, j) for j in jobs]}
    listed = await call(em.request, "/jobs", params={"format": "Entity"})
    assert listed == {"Jobs": [entity(base, j) for j in jobs]}
    assert await call(em.request, f"/jobs/{jid(jobs[0])}") == ref(base, jobs[0])
    one = await call(em.request, f"/jobs/{jid(jobs[0])}", params={"format": "Entity"})
    assert one == entity(base, jobs[0])


async def test_client_runs_start_stop_retry_and_toggle_in_one_call_each(
    vgw: RunningGateway, clients: Clients
) -> None:
    """request(..., method="POST", params={"action": …}) -> 202 Task, Finished, Success;
    each is exactly one RPC (Start/Stop/Retry/ToggleJob) and changes the job."""
    job = await seed(clients)
    em = await logged_on(vgw)
    calls = record_rpcs(vgw.app)
    steps = [
        ("start", "StartJob", "StartJob", "The job has been started.", res.RUNNING),
        ("stop", "StopJob", "StopJob", "The job has been stopped.", res.IDLE),
        ("retry", "RetryJob", "RetryJob", "The job has been retried.", res.RUNNING),
        ("toggleScheduleEnabled", "ToggleJob", "ToggleScheduleEnabled",
         "The schedule has been disabled.", res.RUNNING),
        ("toggleScheduleEnabled", "ToggleJob", "ToggleScheduleEnabled",
         "The schedule has been enabled.", res.RUNNING),
    ]  # fmt: skip
    for action, rpc, operation, message, state in steps:
        calls.clear()
        body = await call(em.request, f"/jobs/{jid(job)}", method="POST", params={"action": action})
        assert body == task(vgw.base_url, body, operation, (True, message))
        assert calls == [rpc]
        assert (await get_job(clients, job.name)).state == state
    assert (await get_job(clients, job.name)).backup.schedule_enabled is True


async def test_client_retry_after_success_raises_with_the_400_error_body(
    vgw: RunningGateway, clients: Clients
) -> None:
    """A refusal reaches the client as VeeamEmError carrying EM's error body (400,
    RETRY_NOT_ALLOWED)."""
    job = await seed(clients)
    em = await logged_on(vgw)
    with pytest.raises(VeeamEmError) as caught:
        await call(em.request, f"/jobs/{jid(job)}", method="POST", params={"action": "retry"})
    text = str(caught.value)
    assert text.startswith("status: 400; "), text
    assert "'StatusCode': 400" in text, text


async def test_client_deletes_a_job_and_polls_its_task_to_finished(
    vgw: RunningGateway, clients: Clients
) -> None:
    """DELETE /jobs/{id} -> 202 Task DeleteJob; GET /tasks/{id} until Finished with Success;
    the job is gone; DELETE of the finished task -> 204 and it is gone from /tasks."""
    job = await seed(clients)
    em = await logged_on(vgw)
    body = await call(em.request, f"/jobs/{jid(job)}", method="DELETE")
    assert body == task(vgw.base_url, body, "DeleteJob")
    done = await poll(em, body["TaskId"])
    assert done == task(vgw.base_url, body, "DeleteJob", (True, "The job has been deleted."))
    await assert_gone(clients, job.name)
    assert await call(em.request, "/tasks") == {"Tasks": [done]}
    removed = await call(em.request, f"/tasks/{body['TaskId']}", method="DELETE")
    assert removed["status"] == 204
    assert await call(em.request, "/tasks") == {"Tasks": []}


async def test_client_cancels_a_deletion_held_by_a_running_job(
    vgw: RunningGateway, clients: Clients
) -> None:
    """A running job's deletion waits for the run: DELETE /tasks/{id} cancels it (204), the
    task reads Finished, not successful, cancelled; the job is back to RUNNING."""
    job = await seed(clients)
    em = await logged_on(vgw)
    await call(em.request, f"/jobs/{jid(job)}", method="POST", params={"action": "start"})
    body = await call(em.request, f"/jobs/{jid(job)}", method="DELETE")
    assert body["State"] == "Running"
    assert (await get_job(clients, job.name)).state == res.DELETING
    cancelled = await call(em.request, f"/tasks/{body['TaskId']}", method="DELETE")
    assert cancelled["status"] == 204
    got = await call(em.request, f"/tasks/{body['TaskId']}")
    assert got == task(vgw.base_url, body, "DeleteJob", (False, "The deletion has been cancelled."))
    after = await get_job(clients, job.name)
    assert (after.state, after.delete_operation) == (res.RUNNING, "")
    await clients.operator.RecordRun(
        operator_pb.RecordRunRequest(
            parent=job.name, entry=res.HistoryEntry(status=res.HistoryEntry.COMPLETED)
        )
    )
    assert (await get_job(clients, job.name)).state == res.IDLE


async def test_client_log_off_then_requests_raise_401(vgw: RunningGateway) -> None:
    """request(f"/logonSessions/{sid}", method="DELETE") -> 204; then the token (header and
    cookie) is refused: 401 with EM's error body."""
    em = await logged_on(vgw)
    sid = em.api_token
    assert (await call(em.request, f"/logonSessions/{sid}", method="DELETE"))["status"] == 204
    with pytest.raises(VeeamEmError) as caught:
        await call(em.request, "/jobs")
    text = str(caught.value)
    assert text.startswith("status: 401; "), text
    assert "'StatusCode': 401" in text, text
    with pytest.raises(VeeamEmError):
        await call(em.whoami)
