"""Bulk seeding for benchmarks (service/storage/seed.py): copies of a real job that the
running server serves like any other."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import field_mask_pb2

from jobcontrol.service.server import RunningServer
from jobcontrol.service.storage.seed import seed_jobs, sqlite_path
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as res


async def test_seeded_jobs_are_served_like_created_ones(
    server: RunningServer, clients: Any, make_collection: Any
) -> None:
    """Seed: 2,000 copies of a template are visible, distinct and writable through the API."""
    coll = await make_collection(res.BATCH)
    template = res.Job(display_name="t", batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p")))
    await clients.jobs.CreateJob(pb.CreateJobRequest(parent=coll.name, job_id="tpl", job=template))
    url = server.store.url.render_as_string()
    inserted = seed_jobs(url, coll.name.split("/")[1], "tpl", 2000, prefix="j", start=1)
    assert inserted == 2000
    got = await clients.jobs.GetJob(pb.GetJobRequest(name=f"{coll.name}/jobs/j00001500"))
    other = await clients.jobs.GetJob(pb.GetJobRequest(name=f"{coll.name}/jobs/j00000001"))
    assert got.batch.pool_info.pool_id == "p" and got.uid != other.uid and got.etag != other.etag
    got.display_name = "renamed"
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    updated = await clients.jobs.UpdateJob(pb.UpdateJobRequest(job=got, update_mask=mask))
    assert updated.display_name == "renamed"
    page = await clients.jobs.ListJobs(pb.ListJobsRequest(parent=coll.name, page_size=1000))
    assert len(page.jobs) == 1000 and page.next_page_token
    # seeding again skips the ids that exist
    assert seed_jobs(url, coll.name.split("/")[1], "tpl", 10, start=1995) == 4


def test_seed_needs_a_sqlite_file() -> None:
    """Seed: other databases are refused with a clear error."""
    with pytest.raises(ValueError, match="SQLite database file"):
        sqlite_path("postgresql+asyncpg://u@h/db")
    with pytest.raises(ValueError, match="SQLite database file"):
        sqlite_path("sqlite+aiosqlite:///:memory:")
