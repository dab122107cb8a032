"""N replicas on one PostgreSQL, as real processes: three `jobctl serve --http-address ''`
gRPC servers on one database (and two `jobctl gateway` processes, each on its own
server), clients spreading requests round-robin. What a client sees
is what one process would show (deployment.md, "What N replicas means")."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import httpx
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import field_mask_pb2

from jobcontrol.service.loadgen.served import free_port
from jobcontrol.v1 import (
    job_service_pb2,
    job_service_pb2_grpc,
    resources_pb2,
    worker_service_pb2,
    worker_service_pb2_grpc,
)
from tests.conftest import postgres_database
from tests.http_target import Target, serving_target
from tests.test_process import ServerProcess

pytestmark = pytest.mark.slow
R, J, W = resources_pb2, job_service_pb2, worker_service_pb2
JSON = {"Accept": "application/json"}


class Replicas:
    """Servers on one database and a stub per server; `next()` is round-robin."""

    def __init__(self, servers: list[ServerProcess]) -> None:
        self.servers = servers
        self.channels: list[grpc.aio.Channel] = []
        self._turn = itertools.count()

    async def start(self) -> None:
        await asyncio.gather(*(s.start() for s in self.servers))
        self.channels = [grpc.aio.insecure_channel(s.address) for s in self.servers]

    def jobs(self, index: int | None = None) -> job_service_pb2_grpc.JobServiceAsyncStub:
        i = next(self._turn) % len(self.channels) if index is None else index
        return job_service_pb2_grpc.JobServiceStub(self.channels[i])

    def worker(self, index: int) -> worker_service_pb2_grpc.WorkerServiceAsyncStub:
        return worker_service_pb2_grpc.WorkerServiceStub(self.channels[index])

    def operations(self, index: int) -> operations_pb2_grpc.OperationsStub:
        return operations_pb2_grpc.OperationsStub(self.channels[index])

    async def restart(self, index: int) -> None:
        await self.channels[index].close()
        await self.servers[index].start()
        self.channels[index] = grpc.aio.insecure_channel(self.servers[index].address)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()
        for server in self.servers:
            if server.proc is not None and server.proc.returncode is None:
                server.proc.kill()
                await server.proc.wait()


def _servers(tmp_path: Path, count: int, **env: str) -> list[ServerProcess]:
    url = postgres_database()
    return [
        ServerProcess(
            tmp_path / f"unused-{i}.db",
            env={"JOBCONTROL_DATABASE_URL": url, "JOBCONTROL_REPLICA_ID": f"r{i}", **env},
        )
        for i in range(count)
    ]


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[Replicas]:
    group = Replicas(_servers(tmp_path, 3))
    await group.start()
    try:
        yield group
    finally:
        await group.close()


async def _collection(stub: job_service_pb2_grpc.JobServiceAsyncStub, cid: str,
                      profile: R.Profile.ValueType) -> R.Collection:  # fmt: skip
    return await stub.CreateCollection(
        J.CreateCollectionRequest(collection_id=cid, collection=R.Collection(profile=profile))
    )


async def _outcome(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def test_concurrent_updates_with_one_etag_across_replicas_have_one_winner(
    replicas: Replicas,
) -> None:
    """R1: 20 UpdateJobs carrying the same etag, spread over three servers at once: exactly
    one succeeds, 19 are ABORTED (ETAG_MISMATCH), and every replica shows the winner."""
    coll = await _collection(replicas.jobs(0), "c", R.SCHEDULED)
    job = await replicas.jobs(0).CreateJob(J.CreateJobRequest(parent=coll.name, job_id="j"))
    calls = [
        replicas.jobs().UpdateJob(
            J.UpdateJobRequest(
                job=R.Job(name=job.name, etag=job.etag, display_name=f"writer {i}"),
                update_mask=field_mask_pb2.FieldMask(paths=["display_name"]),
            )
        )
        for i in range(20)
    ]
    outcomes = await asyncio.gather(*(_outcome(c) for c in calls))
    assert sorted(outcomes) == ["ABORTED"] * 19 + ["OK"]
    seen = {
        (await replicas.jobs(i).GetJob(J.GetJobRequest(name=job.name))).display_name
        for i in range(3)
    }
    winner = outcomes.index("OK")
    assert seen == {f"writer {winner}"}


async def test_delete_all_racing_creates_leaves_every_replica_agreeing(
    replicas: Replicas,
) -> None:
    """R3: DeleteJobs (all) on one server while two others create jobs: nothing fails but
    with a lifecycle answer, the Operation completes, no job is left DELETING, and all
    three replicas list the same jobs — exactly the created ones the deletion did not take."""
    coll = await _collection(replicas.jobs(0), "c", R.BATCH)
    spec = R.Job(batch=R.BatchSpec(pool_info=R.PoolInfo(pool_id="p")))
    for i in range(50):
        await replicas.jobs().CreateJob(J.CreateJobRequest(parent=coll.name, job_id=f"old{i}",
                                                           job=spec))  # fmt: skip

    async def creates(index: int) -> list[str]:
        made = []
        for i in range(30):
            job_id = f"new{index}-{i}"
            request = J.CreateJobRequest(parent=coll.name, job_id=job_id, job=spec)
            if await _outcome(replicas.jobs(index).CreateJob(request)) == "OK":
                made.append(job_id)
        return made

    delete = replicas.jobs(0).DeleteJobs(J.DeleteJobsRequest(parent=coll.name))
    op, made1, made2 = await asyncio.gather(delete, creates(1), creates(2))
    assert len(made1) == len(made2) == 30
    for _ in range(200):
        op = await replicas.operations(1).GetOperation(
            operations_pb2.GetOperationRequest(name=op.name)
        )
        if op.done:
            break
        await asyncio.sleep(0.05)
    assert op.done and not op.HasField("error")
    listings = []
    for i in range(3):
        page = await replicas.jobs(i).ListJobs(J.ListJobsRequest(parent=coll.name, page_size=500))
        assert all(j.state != R.DELETING for j in page.jobs)
        listings.append(sorted(j.name.rsplit("/", 1)[1] for j in page.jobs))
    assert listings[0] == listings[1] == listings[2]
    assert not any(name.startswith("old") for name in listings[0])
    assert set(listings[0]) <= set(made1) | set(made2)


async def test_batch_delete_acknowledged_by_a_killed_replica_is_finished_by_another(
    tmp_path: Path,
) -> None:
    """R4: A Batch job with 400 tasks is deleted on server A, which purges one row per
    transaction; A is `kill -9`ed mid-purge. Its lease expires (2 s) and server B finishes
    the Operation once: the job and its tasks are gone and the Operation is done."""
    a, b = _servers(tmp_path, 2, JOBCONTROL_LEASE_DURATION="2")
    a.env["JOBCONTROL_PURGE_CHUNK"] = "1"
    group = Replicas([a])
    try:
        await group.start()
        coll = await _collection(group.jobs(0), "b", R.BATCH)
        job = await group.jobs(0).CreateJob(
            J.CreateJobRequest(parent=coll.name, job_id="big",
                               job=R.Job(batch=R.BatchSpec(pool_info=R.PoolInfo(pool_id="p"))))
        )  # fmt: skip
        for start in range(0, 400, 50):
            await asyncio.gather(*(
                group.jobs(0).CreateTask(J.CreateTaskRequest(parent=job.name, task_id=f"t{i}",
                                                             task=R.Task()))
                for i in range(start, start + 50)
            ))  # fmt: skip
        op = await group.jobs(0).DeleteJob(J.DeleteJobRequest(name=job.name))
        # B starts while A purges: it finds A's lease live and leaves the Operation alone
        await b.start()
        group.servers.append(b)
        group.channels.append(grpc.aio.insecure_channel(b.address))
        await asyncio.sleep(0.3)
        await a.kill9()
        mid = await group.operations(1).GetOperation(
            operations_pb2.GetOperationRequest(name=op.name)
        )
        assert not mid.done, "the purge finished before the kill; the test proves nothing"
        for _ in range(300):
            op = await group.operations(1).GetOperation(
                operations_pb2.GetOperationRequest(name=op.name)
            )
            if op.done:
                break
            await asyncio.sleep(0.05)
        assert op.done and not op.HasField("error")
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await group.jobs(1).GetJob(J.GetJobRequest(name=job.name))
        assert gone.value.code() is grpc.StatusCode.NOT_FOUND
    finally:
        await group.close()


async def test_restart_of_every_replica_loses_nothing_acknowledged(
    replicas: Replicas,
) -> None:
    """R6: Writes acknowledged by any of three servers survive `kill -9` of all three: after
    restarting them, every replica returns every acknowledged job at its last etag."""
    coll = await _collection(replicas.jobs(0), "c", R.SCHEDULED)
    acknowledged: dict[str, str] = {}
    for i in range(30):
        job = await replicas.jobs().CreateJob(J.CreateJobRequest(parent=coll.name,
                                                                 job_id=f"j{i}"))  # fmt: skip
        updated = await replicas.jobs().UpdateJob(
            J.UpdateJobRequest(job=R.Job(name=job.name, display_name="kept"),
                               update_mask=field_mask_pb2.FieldMask(paths=["display_name"]))
        )  # fmt: skip
        acknowledged[updated.name] = updated.etag
    for server in replicas.servers:
        await server.kill9()
    for index in range(3):
        await replicas.restart(index)
    for index in range(3):
        for name, etag in acknowledged.items():
            job = await replicas.jobs(index).GetJob(J.GetJobRequest(name=name))
            assert (job.etag, job.display_name) == (etag, "kept")


async def test_lease_waiting_on_one_replica_is_woken_by_work_made_on_another(
    tmp_path: Path,
) -> None:
    """W14: Two servers polling for work only every 60 s: a LeaseWork waiting (up to 10 s)
    on server A returns, within a few seconds, the task a client creates through server B,
    and again once B's worker releases it; only B's NOTIFY can have woken A."""
    group = Replicas(_servers(tmp_path, 2, JOBCONTROL_WORK_POLL_INTERVAL="60"))
    await group.start()
    loop = asyncio.get_running_loop()

    async def woken_on_a(make: Callable[[], Awaitable[object]]) -> W.WorkItem:
        request = W.LeaseWorkRequest(worker_id="a", max_items=1)
        request.wait_timeout.seconds = 10
        waiting = asyncio.ensure_future(group.worker(0).LeaseWork(request))
        await asyncio.sleep(0.5)
        assert not waiting.done(), "A found work before B made any"
        await make()
        made = loop.time()
        [item] = (await asyncio.wait_for(waiting, 15)).items
        assert loop.time() - made < 5, "A was not woken: it waited out its wait"
        return item

    try:
        coll = await _collection(group.jobs(1), "w", R.BATCH)
        job = await group.jobs(1).CreateJob(J.CreateJobRequest(
            parent=coll.name, job_id="j",
            job=R.Job(batch=R.BatchSpec(pool_info=R.PoolInfo(pool_id="p")))))  # fmt: skip
        task = R.Task()
        first = await woken_on_a(lambda: group.jobs(1).CreateTask(
            J.CreateTaskRequest(parent=job.name, task_id="t", task=task)))  # fmt: skip
        assert (first.target, first.attempt) == (f"{job.name}/tasks/t", 1)
        await group.worker(0).ReleaseWork(W.ReleaseWorkRequest(lease_token=first.lease_token))
        [held] = (await group.worker(1).LeaseWork(
            W.LeaseWorkRequest(worker_id="b", max_items=1))).items  # fmt: skip
        again = await woken_on_a(lambda: group.worker(1).ReleaseWork(
            W.ReleaseWorkRequest(lease_token=held.lease_token)))  # fmt: skip
        assert (again.target, again.attempt) == (first.target, 3)
    finally:
        await group.close()


class GatewayProcess:
    """`jobctl gateway` in a child process, pointed at one server."""

    def __init__(self, grpc_target: str, env: dict[str, str]) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.grpc_target = grpc_target
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "jobcontrol.service.cli", "gateway",
            "--grpc-target", self.grpc_target, "--http-address", self.address,
            "--log-level", "WARNING", env={**os.environ, **self.env},
        )  # fmt: skip
        async with httpx.AsyncClient(base_url=f"http://{self.address}") as http:
            for _ in range(200):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise AssertionError("gateway not ready")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def gateways(replicas: Replicas) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Two gateway processes, on servers 0 and 1, with one Veeam user."""
    env = {"JOBCONTROL_VEEAM_USERS": "admin:adminpw"}
    found = [GatewayProcess(replicas.servers[i].address, env) for i in (0, 1)]
    try:
        await asyncio.gather(*(g.start() for g in found))
        async with httpx.AsyncClient(base_url=f"http://{found[0].address}") as a, \
                httpx.AsyncClient(base_url=f"http://{found[1].address}") as b:  # fmt: skip
            yield [a, b]
    finally:
        for gateway in found:
            await gateway.stop()


VEEAM_SESSION = "X-RestSvcSessionId"
AZURE = {"x-ms-version": "2013-06-01"}


async def test_veeam_session_from_gateway_a_is_used_and_logged_off_on_b(
    gateways: list[httpx.AsyncClient],
) -> None:
    """R7: Veeam: a session logged on at gateway A (its server: replica 0) works on gateway B
    (replica 1); log off on B (204) ends it on A: 401 on both afterwards."""
    a, b = gateways
    credential = base64.b64encode(b"admin:adminpw").decode()
    logon = await a.post("/api/sessionMngr/?v=latest",
                         headers={"Authorization": f"Basic {credential}", **JSON})  # fmt: skip
    assert logon.status_code == 201, logon.text
    sid = {VEEAM_SESSION: logon.headers[VEEAM_SESSION], **JSON}
    assert (await b.get("/api/tasks", headers=sid)).status_code == 200
    off = await b.delete(f"/api/logonSessions/{logon.headers[VEEAM_SESSION]}", headers=sid)
    assert (off.status_code, off.content) == (204, b"")
    for http in (a, b):
        refused = await http.get("/api/tasks", headers=sid)
        assert refused.status_code == 401, refused.text


async def test_scheduler_operation_id_from_gateway_a_is_read_on_b(
    gateways: list[httpx.AsyncClient],
) -> None:
    """R7: Azure Scheduler: the request id gateway A answered a job-collection PUT with is
    Succeeded/202 in Get Operation Status on gateway B."""
    a, b = gateways
    put = await a.put("/sub/cloudServices/cs/resources/scheduler/jobCollections/jc",
                      headers=AZURE)  # fmt: skip
    assert put.status_code == 202, put.text
    rid = put.headers["x-ms-request-id"]
    status = await b.get(f"/sub/operations/{rid}", headers=AZURE)
    assert status.status_code == 200, status.text
    assert f"<ID>{rid}</ID><Status>Succeeded</Status><HttpStatusCode>202</HttpStatusCode>" in (
        status.text
    )


# --- scheduled jobs run once across replicas ----------------------------------------------


def _http(url: str) -> R.JobAction:
    act = R.JobAction(type=R.JobAction.HTTP, request=R.HttpRequest(uri=url, method="POST"))
    act.retry_policy.retry_type = R.RetryPolicy.NONE
    return act


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with serving_target() as recorded:
        yield recorded


async def test_three_replicas_fire_500_occurrences_each_once(
    tmp_path: Path, target: Target
) -> None:
    """E13: 100 jobs, each every second 5 times, created round-robin on three servers of one
    PostgreSQL: the target sees exactly 500 requests, 500 distinct occurrence ids, 5 per
    job, and every job ends COMPLETED with executionCount 5 on every server."""
    group = Replicas(_servers(tmp_path, 3, JOBCONTROL_SCHEDULER_MIN_INTERVAL="1"))
    await group.start()
    try:
        await _collection(group.jobs(0), "fire", R.Profile.SCHEDULED)
        spec = R.ScheduledSpec(
            action=_http(f"{target.url}/ok"),
            recurrence=R.Recurrence(frequency=R.Recurrence.SECOND, interval=1, count=5),
        )
        await asyncio.gather(*(
            group.jobs().CreateJob(J.CreateJobRequest(
                parent="collections/fire", job_id=f"j{i}", job=R.Job(scheduled=spec)))
            for i in range(100)
        ))  # fmt: skip
        await target.wait_for(500, within=60)
        await asyncio.sleep(2)  # a duplicate would arrive by now
        ids = [s.headers["x-ms-client-request-id"] for s in target.seen]
        assert len(ids) == 500 and len(set(ids)) == 500
        per_job: dict[str, int] = {}
        for seen in target.seen:
            job_id = seen.headers["x-ms-scheduler-jobid"]
            per_job[job_id] = per_job.get(job_id, 0) + 1
        assert per_job == {f"j{i}": 5 for i in range(100)}
        for index in range(3):
            listed = await group.jobs(index).ListJobs(
                J.ListJobsRequest(parent="collections/fire", page_size=1000)
            )
            assert {(j.state, j.status.execution_count) for j in listed.jobs} == {
                (R.State.COMPLETED, 5)
            }
    finally:
        await group.close()


async def test_attempt_of_a_killed_replica_runs_again_after_its_lease_expires(
    tmp_path: Path, target: Target
) -> None:
    """E14: At least once: both servers are killed (-9) while the target holds the one
    attempt of a one-shot job; a server started again runs it again once the lease (the
    action timeout + lease duration) has expired, with the same x-ms-client-request-id;
    the history holds the one attempt that finished."""
    target.slow = 2.0
    env = {"JOBCONTROL_ACTION_TIMEOUT": "3", "JOBCONTROL_LEASE_DURATION": "1"}
    group = Replicas(_servers(tmp_path, 2, **env))
    await group.start()
    try:
        await _collection(group.jobs(0), "crash", R.Profile.SCHEDULED)
        await group.jobs(1).CreateJob(J.CreateJobRequest(
            parent="collections/crash", job_id="once",
            job=R.Job(scheduled=R.ScheduledSpec(action=_http(f"{target.url}/slow")))))  # fmt: skip
        (first,) = await target.wait_for(1)
        for server in group.servers:
            assert server.proc is not None
            server.proc.kill()
            await server.proc.wait()
        target.slow = 0.0
        await group.restart(0)
        second = (await target.wait_for(2, within=20))[1]
        assert second.headers["x-ms-client-request-id"] == first.headers["x-ms-client-request-id"]
        assert second.at - first.at >= 4.0  # not before the lease expired
        name = "collections/crash/jobs/once"

        async def entries() -> list[R.HistoryEntry]:
            reply = await group.jobs(0).ListJobHistory(J.ListJobHistoryRequest(parent=name))
            return list(reply.entries)

        for _ in range(100):
            if await entries():
                break
            await asyncio.sleep(0.1)
        (entry,) = await entries()
        assert entry.status == R.HistoryEntry.COMPLETED
        job = await group.jobs(0).GetJob(J.GetJobRequest(name=name))
        assert (job.state, job.status.execution_count) == (R.State.COMPLETED, 1)
    finally:
        await group.close()
