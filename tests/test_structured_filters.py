"""Filters as data (docs/rules.md C32) and the filters of collections, operations, history
and tasks (C34), over real gRPC."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import timestamp_pb2

from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import operator_service_pb2 as ops
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import Clients, MakeCollection
from tests.helpers import expect_error, wait_done

pytestmark = pytest.mark.backends

INVALID = grpc.StatusCode.INVALID_ARGUMENT
C = res.Comparison


def cmp(field: str, op: Any, text: str | None = None, time: int | None = None) -> res.Filter:
    if time is not None:
        return res.Filter(
            comparison=C(field=field, operator=op, time=timestamp_pb2.Timestamp(seconds=time))
        )
    return res.Filter(comparison=C(field=field, operator=op, text=text or ""))


def all_of(*items: res.Filter) -> res.Filter:
    return res.Filter(all=res.FilterList(filters=list(items)))


def any_of(*items: res.Filter) -> res.Filter:
    return res.Filter(any=res.FilterList(filters=list(items)))


async def ids(clients: Clients, parent: str, **request: Any) -> list[str]:
    page = await clients.jobs.ListJobs(js.ListJobsRequest(parent=parent, page_size=100, **request))
    return [j.name.rsplit("/", 1)[1] for j in page.jobs]


@pytest.fixture
async def jobs(clients: Clients, make_collection: MakeCollection) -> res.Collection:
    """A batch collection: a1 (pool p1), a2 (pool p2), b1 (pool p1, disabled), `q"x`."""
    col = await make_collection(res.BATCH)
    for job_id, pool, labels in (
        ("a1", "p1", {"env": "prod"}),
        ("a2", "p2", {"env": 'say "hi"'}),
        ("b1", "p1", {}),
        ("q-x", 'p" OR id = "a1', {}),
    ):
        spec = res.BatchSpec(pool_info=res.PoolInfo(pool_id=pool))
        await clients.jobs.CreateJob(
            js.CreateJobRequest(
                parent=col.name, job_id=job_id, job=res.Job(batch=spec, labels=labels)
            )
        )
    await clients.jobs.PauseJob(js.PauseJobRequest(name=f"{col.name}/jobs/b1"))
    return col


@pytest.mark.parametrize(
    ("structured", "text", "expected"),
    [
        (cmp("state", C.EQUAL, "DISABLED"), "state = DISABLED", ["b1"]),
        (cmp("id", C.STARTS_WITH, "a"), "", ["a1", "a2"]),
        (cmp("id", C.GREATER_OR_EQUAL, "a2"), 'id >= "a2"', ["a2", "b1", "q-x"]),
        (
            all_of(cmp("id", C.STARTS_WITH, "a"), cmp("batch.pool_info.pool_id", C.EQUAL, "p1")),
            'batch.pool_info.pool_id = "p1" AND id < "b"',
            ["a1"],
        ),
        (
            any_of(cmp("labels.env", C.EQUAL, "prod"), res.Filter(negation=cmp("id", C.LESS, "b"))),
            'labels.env = "prod" OR NOT id < "b"',
            ["a1", "b1", "q-x"],
        ),
        (cmp("labels.env", C.EQUAL, 'say "hi"'), 'labels.env = "say \\"hi\\""', ["a2"]),
    ],
)
async def test_c32_structured_filters_select_like_their_text(
    clients: Clients, jobs: res.Collection, structured: res.Filter, text: str, expected: list[str]
) -> None:
    """C32: a structured filter selects what the same filter as text selects (STARTS_WITH
    has no text form); both given, both must hold."""
    assert await ids(clients, jobs.name, structured_filter=structured) == expected
    if text:
        assert await ids(clients, jobs.name, filter=text) == expected
    both = await ids(clients, jobs.name, structured_filter=structured, filter='id != "a1"')
    assert both == [i for i in expected if i != "a1"]


async def test_c32_values_are_data_never_filter_syntax(
    clients: Clients, jobs: res.Collection
) -> None:
    """C32: a value holding quotes and filter words compares as a value (it selects the one
    job whose pool id is exactly that text); a prefix with % or _ matches literally."""
    tricky = 'p" OR id = "a1'
    assert await ids(
        clients, jobs.name, structured_filter=cmp("batch.pool_info.pool_id", C.EQUAL, tricky)
    ) == ["q-x"]
    assert await ids(clients, jobs.name, structured_filter=cmp("id", C.STARTS_WITH, "%")) == []
    assert await ids(clients, jobs.name, structured_filter=cmp("id", C.STARTS_WITH, "q_")) == []


@pytest.mark.parametrize(
    ("structured", "field"),
    [
        (cmp("nope", C.EQUAL, "x"), "filter"),
        (cmp("state", C.STARTS_WITH, "A"), "filter"),
        (cmp("state", C.EQUAL, "SLEEPING"), "filter"),
        (cmp("create_time", C.EQUAL, "yesterday"), "filter"),
        (cmp("display_name", C.GREATER, "a"), "filter"),
        (cmp("state", C.OPERATOR_UNSPECIFIED, "ACTIVE"), "structured_filter.comparison.operator"),
        (res.Filter(comparison=C(field="state", operator=C.EQUAL)), "structured_filter.comparison"),
        (res.Filter(all=res.FilterList()), "structured_filter.all"),
        (res.Filter(), "structured_filter"),
    ],
)
async def test_c32_bad_structured_filters_are_invalid_filter(
    clients: Clients, jobs: res.Collection, structured: res.Filter, field: str
) -> None:
    """C32: unknown fields, operators a field does not support, unknown values, empty
    nodes: INVALID_ARGUMENT / INVALID_FILTER with the offending field named."""
    err = await expect_error(
        clients.jobs.ListJobs(js.ListJobsRequest(parent=jobs.name, structured_filter=structured)),
        INVALID,
        "INVALID_FILTER",
    )
    assert err.bad_request is not None
    assert err.bad_request.field_violations[0].field == field


async def test_c32_page_tokens_are_bound_to_the_structured_filter(
    clients: Clients, jobs: res.Collection
) -> None:
    """C32: a page token of one structured filter is INVALID_PAGE_TOKEN under another."""
    first = await clients.jobs.ListJobs(
        js.ListJobsRequest(
            parent=jobs.name, page_size=1, structured_filter=cmp("id", C.STARTS_WITH, "a")
        )
    )
    assert first.next_page_token
    second = await clients.jobs.ListJobs(
        js.ListJobsRequest(
            parent=jobs.name,
            page_size=1,
            page_token=first.next_page_token,
            structured_filter=cmp("id", C.STARTS_WITH, "a"),
        )
    )
    assert [j.name.rsplit("/", 1)[1] for j in second.jobs] == ["a2"]
    await expect_error(
        clients.jobs.ListJobs(
            js.ListJobsRequest(
                parent=jobs.name,
                page_size=1,
                page_token=first.next_page_token,
                structured_filter=cmp("id", C.STARTS_WITH, "b"),
            )
        ),
        INVALID,
        "INVALID_PAGE_TOKEN",
    )


async def test_c32_delete_jobs_takes_a_structured_filter(
    clients: Clients, jobs: res.Collection
) -> None:
    """C32: DeleteJobs deletes exactly what its structured filter selects."""
    op = await clients.jobs.DeleteJobs(
        js.DeleteJobsRequest(parent=jobs.name, structured_filter=cmp("id", C.STARTS_WITH, "a"))
    )
    assert op.name
    # The fast test reaper may purge a1 and a2 at any moment: whatever is still listed
    # as DELETING is one of them, and once the operation is done only b1 and q-x remain.
    deleting = await ids(clients, jobs.name, filter="state = DELETING")
    assert set(deleting) <= {"a1", "a2"}
    await wait_done(clients.operations, op.name)
    assert await ids(clients, jobs.name) == ["b1", "q-x"]


async def test_c34_collections_filter_by_labels_id_and_profile(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C34: ListCollections filters over labels.KEY, id and profile (text and data)."""
    for cid, labels, profile in (
        ("s1", {"sub": "a"}, res.SCHEDULED),
        ("s2", {"sub": "b"}, res.SCHEDULED),
        ("s3", {"sub": "a"}, res.BATCH),
    ):
        await clients.jobs.CreateCollection(
            js.CreateCollectionRequest(
                collection_id=cid, collection=res.Collection(profile=profile, labels=labels)
            )
        )
    page = await clients.jobs.ListCollections(
        js.ListCollectionsRequest(
            filter="profile = SCHEDULED", structured_filter=cmp("labels.sub", C.EQUAL, "a")
        )
    )
    assert [c.name for c in page.collections] == ["collections/s1"]
    await expect_error(
        clients.jobs.ListCollections(js.ListCollectionsRequest(filter="state = ENABLED")),
        INVALID,
        "INVALID_FILTER",
    )


async def test_c34_operations_filter_by_name_and_done(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C34: ListOperations filters over name, done, verb and target (AIP-160)."""
    col = await make_collection(res.SCHEDULED)
    names = []
    for job_id in ("x", "y"):
        await clients.jobs.CreateJob(
            js.CreateJobRequest(parent=col.name, job_id=job_id, job=res.Job())
        )
        op = await clients.jobs.DeleteJob(js.DeleteJobRequest(name=f"{col.name}/jobs/{job_id}"))
        names.append(op.name)
    listed = await clients.operations.ListOperations(
        operations_pb2.ListOperationsRequest(
            filter=f'name = "{names[0]}" OR name = "{names[1]}" AND done = true', page_size=10
        )
    )
    assert sorted(o.name for o in listed.operations) == sorted(names)
    pending = await clients.operations.ListOperations(
        operations_pb2.ListOperationsRequest(filter="done = false")
    )
    assert [o.name for o in pending.operations if o.name in names] == []
    await expect_error(
        clients.operations.ListOperations(operations_pb2.ListOperationsRequest(filter="done = 1")),
        INVALID,
        "INVALID_FILTER",
    )


async def test_c34_history_filters_by_state_and_tasks_by_state(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """C34: ListJobHistory filters on the job's state when the entry was recorded;
    ListTasks filters over id, state, result and times."""
    col = await make_collection(res.SCHEDULED)
    job = await clients.jobs.CreateJob(
        js.CreateJobRequest(parent=col.name, job_id="h", job=res.Job())
    )
    run = res.HistoryEntry(status=res.HistoryEntry.COMPLETED, message="one")
    await clients.operator.RecordRun(ops.RecordRunRequest(parent=job.name, entry=run))
    await clients.jobs.PauseJob(js.PauseJobRequest(name=job.name))
    run.message = "two"
    await clients.operator.RecordRun(ops.RecordRunRequest(parent=job.name, entry=run))
    history = await clients.jobs.ListJobHistory(
        js.ListJobHistoryRequest(parent=job.name, filter="state = DISABLED")
    )
    assert [e.message for e in history.entries] == ["two"]
    history = await clients.jobs.ListJobHistory(
        js.ListJobHistoryRequest(
            parent=job.name, structured_filter=cmp("state", C.EQUAL, "ENABLED")
        )
    )
    assert [e.message for e in history.entries] == ["one"]

    batch = await make_collection(res.BATCH)
    bjob = await clients.jobs.CreateJob(
        js.CreateJobRequest(
            parent=batch.name,
            job_id="b",
            job=res.Job(batch=res.BatchSpec(pool_info=res.PoolInfo(pool_id="p"))),
        )
    )
    for tid in ("t1", "t2", "u1"):
        await clients.jobs.CreateTask(
            js.CreateTaskRequest(parent=bjob.name, task_id=tid, task=res.Task())
        )
    await clients.operator.TransitionTask(
        ops.TransitionTaskRequest(name=f"{bjob.name}/tasks/t2", state=res.Task.RUNNING)
    )
    tasks = await clients.jobs.ListTasks(
        js.ListTasksRequest(
            parent=bjob.name,
            filter="state = ACTIVE",
            structured_filter=cmp("id", C.STARTS_WITH, "t"),
        )
    )
    assert [t.name.rsplit("/", 1)[1] for t in tasks.tasks] == ["t1"]
