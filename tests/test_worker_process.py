"""WorkerService from real worker processes (tests/worker_client.py, generated stubs):
leasing, heartbeating, completing, failing, and dying mid-lease (`kill -9`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest

from jobcontrol.service.server import RunningServer
from jobcontrol.v1 import job_service_pb2 as jobs_pb
from jobcontrol.v1 import resources_pb2 as res
from jobcontrol.v1 import worker_service_pb2 as pb
from jobcontrol.v1 import worker_service_pb2_grpc
from tests.helpers import expect_error

pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "tests" / "worker_client.py"


async def spawn(server: RunningServer, *args: str) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), server.address, *args,
        stdout=asyncio.subprocess.PIPE, env=env, cwd=str(ROOT),
    )  # fmt: skip


async def make_job(clients: Any, make_collection: Any, commands: list[str]) -> list[str]:
    collection = await make_collection(res.BATCH)
    spec = res.BatchSpec(pool_info=res.PoolInfo(pool_id="p1"))
    spec.constraints.max_task_retry_count = 1
    job = await clients.jobs.CreateJob(
        jobs_pb.CreateJobRequest(parent=collection.name, job_id="j", job=res.Job(batch=spec))
    )
    names = []
    for i, command in enumerate(commands):
        task = await clients.jobs.CreateTask(
            jobs_pb.CreateTaskRequest(
                parent=job.name, task_id=f"t{i}", task=res.Task(command_line=command)
            )
        )
        names.append(task.name)
    return names


async def test_worker_killed_mid_lease_loses_its_item_to_the_next_worker(
    server: RunningServer, clients: Any, make_collection: Any
) -> None:
    """W10: a worker process that leased an item and heartbeats is `kill -9`ed; a second
    worker process leases the item after the lease expires with attempt + 1 and works
    every item (completes, fails with exit codes and retries, fails); the dead worker's
    late CompleteWork is ABORTED LEASE_LOST."""
    names = await make_job(clients, make_collection, ["exit 0", "exit 0", "exit 2", "fail"])
    holder = await spawn(server, "hold", "--worker-id", "doomed", "--limit", "60")
    assert holder.stdout is not None
    held = json.loads(await asyncio.wait_for(holder.stdout.readline(), 30))
    assert held["target"] == names[0] and held["attempt"] == 1
    await asyncio.sleep(0.5)  # it heartbeats meanwhile
    holder.send_signal(signal.SIGKILL)
    assert await asyncio.wait_for(holder.wait(), 10) == -signal.SIGKILL

    runner = await spawn(server, "run", "--worker-id", "survivor", "--idle", "3")
    out, _ = await asyncio.wait_for(runner.communicate(), 90)
    assert runner.returncode == 0
    ended = [json.loads(line) for line in out.decode().splitlines()]
    by_target: dict[str, list[dict[str, Any]]] = {}
    for record in ended:
        by_target.setdefault(record["target"], []).append(record)
    assert [r["attempt"] for r in by_target[names[0]]] == [2]
    assert [r["done"] for r in by_target[names[2]]] == [False, True]
    assert by_target[names[3]] == [
        {"target": names[3], "attempt": 1, "cancel": False, "will_retry": False}
    ]

    results = []
    for name in names:
        task = await clients.jobs.GetTask(jobs_pb.GetTaskRequest(name=name))
        assert task.state == res.Task.COMPLETED
        results.append((res.Task.Result.Name(task.result), task.retry_count))
    assert results == [("SUCCESS", 0), ("SUCCESS", 0), ("FAILURE", 1), ("FAILURE", 0)]

    worker = worker_service_pb2_grpc.WorkerServiceStub(clients.channel)
    await expect_error(
        worker.CompleteWork(pb.CompleteWorkRequest(lease_token=held["token"])),
        grpc.StatusCode.ABORTED,
        "LEASE_LOST",
    )
