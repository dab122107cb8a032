"""Bad input that is well-formed on the wire but must still be refused cleanly."""

from __future__ import annotations

import grpc
import pytest

from jobcontrol.service.core import pages
from jobcontrol.v1 import job_service_pb2, resources_pb2
from tests.conftest import Clients, MakeCollection
from tests.helpers import expect_error

pytestmark = pytest.mark.backends


@pytest.mark.parametrize("after", [[1, 2, 3], [5], ["a", "b"], "x", None])
async def test_c16_forged_page_token_with_our_fingerprint_is_invalid(
    clients: Clients, make_collection: MakeCollection, after: object
) -> None:
    """C16: a token that carries this query's fingerprint but not our sort key is
    INVALID_PAGE_TOKEN, never a storage error."""
    coll = await make_collection(resources_pb2.SCHEDULED)
    collection_id = coll.name.split("/")[1]
    token = pages.encode(("jobs", collection_id, "", "job_key", False), after)
    err = await expect_error(
        clients.jobs.ListJobs(job_service_pb2.ListJobsRequest(parent=coll.name, page_token=token)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_PAGE_TOKEN",
    )
    assert err.bad_request is not None
    assert err.bad_request.field_violations[0].field == "page_token"


@pytest.mark.parametrize("key", ['a\\"b', "a b", "x" * 64, ""])
async def test_c17_filter_on_unusable_label_key_is_invalid(
    clients: Clients, make_collection: MakeCollection, key: str
) -> None:
    """C17: label keys in filters are 1-63 of [A-Za-z0-9_./-]; others are INVALID_FILTER."""
    coll = await make_collection(resources_pb2.SCHEDULED)
    await expect_error(
        clients.jobs.ListJobs(
            job_service_pb2.ListJobsRequest(parent=coll.name, filter=f'labels.{key} = "v"')
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FILTER",
    )


async def test_c16_order_by_create_time_pages_with_its_own_tokens(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C16: paging by `create_time desc` visits every job once, newest first."""
    coll = await make_collection(resources_pb2.SCHEDULED)
    created = []
    for i in range(5):
        job = await clients.jobs.CreateJob(
            job_service_pb2.CreateJobRequest(
                parent=coll.name, job_id=f"j{i}", job=resources_pb2.Job()
            )
        )
        created.append(job.name)
    seen: list[str] = []
    token = ""
    while True:
        page = await clients.jobs.ListJobs(
            job_service_pb2.ListJobsRequest(
                parent=coll.name, page_size=2, page_token=token, order_by="create_time desc"
            )
        )
        seen += [j.name for j in page.jobs]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(created))


async def test_c16_skip_skips_results_and_must_not_be_negative(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C16: `skip` (AIP-158) skips results after the token's position; negative is
    INVALID_ARGUMENT on jobs and history."""
    coll = await make_collection(resources_pb2.SCHEDULED)
    for i in range(5):
        await clients.jobs.CreateJob(
            job_service_pb2.CreateJobRequest(
                parent=coll.name, job_id=f"j{i}", job=resources_pb2.Job()
            )
        )
    page = await clients.jobs.ListJobs(
        job_service_pb2.ListJobsRequest(parent=coll.name, page_size=2, skip=2)
    )
    assert [j.name.rsplit("/", 1)[1] for j in page.jobs] == ["j2", "j3"]
    await expect_error(
        clients.jobs.ListJobs(job_service_pb2.ListJobsRequest(parent=coll.name, skip=-1)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
    )
    await expect_error(
        clients.jobs.ListJobHistory(
            job_service_pb2.ListJobHistoryRequest(parent=f"{coll.name}/jobs/j0", skip=-1)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
    )
