"""The seeded job population: the collection, then jobs j00000000.. through gRPC CreateJob
(concurrently) or by bulk-copying the first one straight into the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc

from jobcontrol.service.loadgen.config import BenchConfig
from jobcontrol.service.loadgen.targets import JOB_PREFIX, job_id, job_template
from jobcontrol.v1 import job_service_pb2, job_service_pb2_grpc, resources_pb2

SEED_IN_FLIGHT = 64
_PROFILES = {
    "scheduled": resources_pb2.SCHEDULED,
    "batch": resources_pb2.BATCH,
    "transfer": resources_pb2.TRANSFER,
    "backup": resources_pb2.BACKUP,
}


class SeedError(Exception):
    """Seeding failed (the run does not start)."""


async def seed(config: BenchConfig, database_url: str | None) -> int:
    """Create the collection if missing and jobs j00000000..j{N-1}; returns the jobs
    created (existing ones are kept). With `database_url`, only the first job goes
    through gRPC and the rest are copied by service.storage.seed."""
    async with grpc.aio.insecure_channel(config.grpc_target) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), 10)
        except TimeoutError:
            raise SeedError(f"cannot reach the gRPC server at {config.grpc_target}") from None
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        await _ensure_collection(jobs, config)
        if config.jobs == 0:
            return 0
        parent = f"collections/{config.collection}"
        template = job_template(config.profile)
        created = await _create(jobs, parent, template, [0], config)
        if database_url is not None:
            return created + await _bulk(database_url, config)
        pending = iter(range(1, config.jobs))
        counts = await asyncio.gather(
            *(
                _create(jobs, parent, template, pending, config)
                for _ in range(min(SEED_IN_FLIGHT, config.jobs))
            )
        )
        return created + sum(counts)


async def _ensure_collection(
    jobs: job_service_pb2_grpc.JobServiceAsyncStub, config: BenchConfig
) -> None:
    request = job_service_pb2.CreateCollectionRequest(
        collection_id=config.collection,
        collection=resources_pb2.Collection(profile=_PROFILES[config.profile]),
    )
    try:
        await jobs.CreateCollection(request, timeout=config.timeout, metadata=config.metadata)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
            raise SeedError(f"CreateCollection {config.collection}: {exc.code().name}") from None


async def _create(
    jobs: job_service_pb2_grpc.JobServiceAsyncStub,
    parent: str,
    template: resources_pb2.Job,
    indexes: Iterable[int],
    config: BenchConfig,
) -> int:
    """CreateJob for each index (shared iterator between concurrent callers)."""
    created = 0
    for index in indexes:
        request = job_service_pb2.CreateJobRequest(
            parent=parent, job_id=job_id(index), job=template
        )
        try:
            await jobs.CreateJob(request, timeout=config.timeout, metadata=config.metadata)
            created += 1
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.ALREADY_EXISTS:
                message = f"CreateJob {job_id(index)}: {exc.code().name}: {exc.details()}"
                raise SeedError(message) from None
    return created


async def _bulk(database_url: str, config: BenchConfig) -> int:
    try:
        from jobcontrol.service.storage.seed import seed_jobs
    except ImportError as exc:
        raise SeedError(f"bulk seeding is not available: {exc}") from None
    try:
        return await asyncio.to_thread(
            seed_jobs,
            database_url,
            config.collection,
            job_id(0),
            config.jobs - 1,
            prefix=JOB_PREFIX,
            start=1,
        )
    except (ValueError, LookupError) as exc:
        raise SeedError(f"bulk seeding: {exc}") from None
