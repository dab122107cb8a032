"""The server as a process: durability across kill -9, graceful SIGTERM, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2, field_mask_pb2

from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.service.cli import build_parser
from jobcontrol.service.config import Settings
from jobcontrol.service.loadgen.served import free_port
from jobcontrol.settings import load_settings
from jobcontrol.v1 import (
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2,
    operator_service_pb2_grpc,
    resources_pb2,
)
from tests.helpers import expect_error, wait_done

pytestmark = pytest.mark.slow
READY = re.compile(r"listening on (127\.0\.0\.1:\d+)")


class ServerProcess:
    """`jobctl serve` in a child process on a port chosen by the OS."""

    def __init__(
        self, db: Path, with_gateway: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.db = db
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""
        self.http_address = f"127.0.0.1:{free_port()}" if with_gateway else ""

    @property
    def base_url(self) -> str:
        return f"http://{self.http_address}"

    async def wait_http(self) -> None:
        """Until the gateway answers /readyz with 200 (bounded)."""
        async with httpx.AsyncClient(base_url=self.base_url) as http:
            for _ in range(200):
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("gateway not ready")

    async def start(self) -> str:
        env = {
            **os.environ,
            "JOBCONTROL_DATABASE_URL": f"sqlite+aiosqlite:///{self.db}",
            **self.env,
        }
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobcontrol.service.cli",
            "serve",
            "--grpc-address",
            "127.0.0.1:0",
            "--reaper-interval",
            "0.05",
            "--log-level",
            "WARNING",
            "--http-address",
            self.http_address,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 20)
        match = READY.search(line.decode())
        assert match, f"no ready line: {line!r}"
        self.address = match.group(1)
        return self.address

    async def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 20)


@pytest.fixture
async def process(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "jobs.db")
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.returncode is None:
            server.proc.kill()
            await server.proc.wait()


async def _batch_job_with_running_task(
    jobs: job_service_pb2_grpc.JobServiceAsyncStub,
    operator: operator_service_pb2_grpc.OperatorServiceAsyncStub,
) -> tuple[resources_pb2.Job, resources_pb2.Task]:
    coll = await jobs.CreateCollection(
        job_service_pb2.CreateCollectionRequest(
            collection_id="b", collection=resources_pb2.Collection(profile=resources_pb2.BATCH)
        )
    )
    job = await jobs.CreateJob(
        job_service_pb2.CreateJobRequest(
            parent=coll.name,
            job_id="j1",
            job=resources_pb2.Job(
                batch=resources_pb2.BatchSpec(pool_info=resources_pb2.PoolInfo(pool_id="p"))
            ),
        )
    )
    task = await jobs.CreateTask(
        job_service_pb2.CreateTaskRequest(parent=job.name, task_id="t1", task=resources_pb2.Task())
    )
    await operator.TransitionTask(
        operator_service_pb2.TransitionTaskRequest(name=task.name, state=resources_pb2.Task.RUNNING)
    )
    return job, task


# the deletion lease of test C20 (--lease-duration; the default is 30 s)
C20_LEASE = 2.0


async def _reaper_lease_claimed(db: Path, operation: str) -> None:
    """Until the server's reaper holds the lease `reap:<operation>` (bounded)."""
    for _ in range(200):
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            found = conn.execute(
                "SELECT 1 FROM leases WHERE name = ? AND expire_time > 0", (f"reap:{operation}",)
            ).fetchone()
        if found:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the reaper never claimed the lease of {operation}")


async def test_c20_acknowledged_deletion_finishes_after_kill9(process: ServerProcess) -> None:
    """C20: an acknowledged asynchronous deletion survives kill -9 and completes after
    restart; acknowledged creates survive too. The killed server's reaper held the
    deletion's lease: the restarted one (another replica id) takes it over once it
    expired."""
    process.env["JOBCONTROL_LEASE_DURATION"] = str(C20_LEASE)
    address = await process.start()
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        operator = operator_service_pb2_grpc.OperatorServiceStub(channel)
        job, task = await _batch_job_with_running_task(jobs, operator)
        for i in range(20):
            await jobs.CreateJob(
                job_service_pb2.CreateJobRequest(
                    parent="collections/b",
                    job_id=f"keep{i}",
                    job=resources_pb2.Job(
                        batch=resources_pb2.BatchSpec(pool_info=resources_pb2.PoolInfo(pool_id="p"))
                    ),
                )
            )
        op = await jobs.DeleteJob(job_service_pb2.DeleteJobRequest(name=job.name))
        assert not op.done
        # whether the kill lands before or after the reaper's first pass over the new
        # Operation was a race; it always lands after: the lease is the dead owner's
        await _reaper_lease_claimed(process.db, op.name)
    await process.kill9()

    address = await process.start()
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        operator = operator_service_pb2_grpc.OperatorServiceStub(channel)
        operations = operations_pb2_grpc.OperationsStub(channel)
        listed = await jobs.ListJobs(
            job_service_pb2.ListJobsRequest(parent="collections/b", page_size=100)
        )
        assert len(listed.jobs) == 21
        held = await jobs.GetJob(job_service_pb2.GetJobRequest(name=job.name))
        assert held.state == resources_pb2.DELETING
        assert held.delete_operation == op.name
        pending = await operations.GetOperation(operations_pb2.GetOperationRequest(name=op.name))
        assert not pending.done
        await operator.TransitionTask(
            operator_service_pb2.TransitionTaskRequest(
                name=task.name, state=resources_pb2.Task.COMPLETED
            )
        )
        # The restarted server is another replica (host-pid-random): it may take the
        # deletion over only once the dead one's lease has expired, C20_LEASE after its
        # last renewal (at the latest the kill), then purges the job and completes the
        # Operation in two reaper passes (--reaper-interval 0.05, and woken by the
        # TransitionTask). The worst case is C20_LEASE plus two writes; 10 s more is the
        # margin for a loaded machine. (With the default 30 s lease, wait_done's 10 s
        # failed whenever the old reaper had claimed the lease before the kill.)
        finished = await wait_done(operations, op.name, within=C20_LEASE + 10.0)
        assert finished.HasField("response") and not finished.HasField("error")
        await expect_error(
            jobs.GetJob(job_service_pb2.GetJobRequest(name=job.name)),
            grpc.StatusCode.NOT_FOUND,
            "JOB_NOT_FOUND",
        )
    assert await process.terminate() == 0


async def test_acknowledged_writes_survive_kill9_under_concurrent_load(
    process: ServerProcess,
) -> None:
    """Group commit: with 32 writers updating their own jobs as fast as they can, kill -9
    lands mid-batch; after restart every job holds its last acknowledged update or a
    later one that was in flight, never an older one."""
    address = await process.start()
    acked: dict[str, int] = {}
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        batch = resources_pb2.Collection(profile=resources_pb2.BATCH)
        await jobs.CreateCollection(
            job_service_pb2.CreateCollectionRequest(collection_id="k", collection=batch)
        )
        spec = resources_pb2.BatchSpec(pool_info=resources_pb2.PoolInfo(pool_id="p"))
        for w in range(32):
            job = resources_pb2.Job(batch=spec)
            await jobs.CreateJob(
                job_service_pb2.CreateJobRequest(parent="collections/k", job_id=f"w{w}", job=job)
            )

        async def writer(w: int) -> None:
            name = f"collections/k/jobs/w{w}"
            for n in range(1, 100_000):
                job = resources_pb2.Job(name=name, display_name=f"v{n}")
                try:
                    await jobs.UpdateJob(
                        job_service_pb2.UpdateJobRequest(job=job, update_mask=mask)
                    )
                except grpc.aio.AioRpcError:
                    return
                acked[name] = n

        writers = [asyncio.create_task(writer(w)) for w in range(32)]
        for _ in range(200):  # until a few hundred writes are acknowledged (bounded)
            await asyncio.sleep(0.05)
            if sum(acked.values()) > 500:
                break
        await process.kill9()
        await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 30)
    assert sum(acked.values()) > 0
    address = await process.start()
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        for name, n in acked.items():
            stored = await jobs.GetJob(job_service_pb2.GetJobRequest(name=name))
            assert int(stored.display_name[1:]) >= n, (name, stored.display_name, n)
    assert await process.terminate() == 0


async def test_sigterm_drains_in_flight_calls_then_exits(process: ServerProcess) -> None:
    """Graceful shutdown: a call in flight when SIGTERM arrives still gets its reply,
    new calls are refused, and the process exits 0."""
    address = await process.start()
    async with grpc.aio.insecure_channel(address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        operator = operator_service_pb2_grpc.OperatorServiceStub(channel)
        operations = operations_pb2_grpc.OperationsStub(channel)
        job, _ = await _batch_job_with_running_task(jobs, operator)
        op = await jobs.DeleteJob(job_service_pb2.DeleteJobRequest(name=job.name))
        waiting = operations.WaitOperation(
            operations_pb2.WaitOperationRequest(
                name=op.name, timeout=duration_pb2.Duration(seconds=2)
            )
        )
        await asyncio.sleep(0.3)
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        reply = await waiting
        assert reply.name == op.name and not reply.done
    assert await asyncio.wait_for(process.proc.wait(), 20) == 0


def test_cli_help_names_every_flag_and_its_environment_variable() -> None:
    """`jobctl serve --help` documents each setting with its JOBCONTROL_* variable."""
    out = subprocess.run(
        [sys.executable, "-m", "jobcontrol.service.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for flag, env in (
        ("--grpc-address", "JOBCONTROL_GRPC_ADDRESS"),
        ("--database-url", "JOBCONTROL_DATABASE_URL"),
        ("--idempotency-window", "JOBCONTROL_IDEMPOTENCY_WINDOW"),
    ):
        assert flag in out and env in out


def test_settings_from_environment_with_flags_winning() -> None:
    """Settings: JOBCONTROL_* variables apply, explicit flags override them; the server's
    and the gateway's settings come from the one loader."""
    env = {"JOBCONTROL_GRPC_ADDRESS": "127.0.0.1:6000", "JOBCONTROL_PURGE_CHUNK": "7"}
    settings = load_settings(Settings, env)
    assert settings.grpc_address == "127.0.0.1:6000" and settings.purge_chunk == 7
    args = build_parser().parse_args(["serve", "--grpc-address", "127.0.0.1:7000"])
    options = {k: v for k, v in vars(args).items() if k != "command"}
    assert load_settings(Settings, env, **options).grpc_address == "127.0.0.1:7000"
    with pytest.raises(SystemExit):
        load_settings(Settings, {"JOBCONTROL_PURGE_CHUNK": "many"})
    gateway = load_settings(GatewaySettings, {"JOBCONTROL_MAX_BODY": "2048"}, grpc_target="x:1")
    assert (gateway.max_body, gateway.grpc_target) == (2048, "x:1")
    with pytest.raises(SystemExit):
        load_settings(GatewaySettings, {"JOBCONTROL_VEEAM_SESSION_IDLE": "soon"})
