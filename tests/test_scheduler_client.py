"""The real Azure Service Management client (azure-servicemanagement-legacy,
`SchedulerManagementService`) end to end against the gateway and a real gRPC server
(shared/spec/dialects.md section 1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import requests
from azure.common import AzureHttpError, AzureMissingResourceHttpError
from azure.servicemanagement import SchedulerManagementService

from jobcontrol.gateway.dialects.scheduler import SchedulerDialect
from jobcontrol.v1 import job_service_pb2, resources_pb2
from tests.conftest import Clients, RunningGateway, record_rpcs

NS = "http://schemas.microsoft.com/windowsazure"
SUB, CS = "clientsub", "clientcs"
JOB: dict[str, Any] = {
    "startTime": "2013-01-30T20:08:00Z",
    "action": {
        "type": "http",
        "request": {"uri": "http://example.org/", "method": "GET",
                    "headers": {"content-Type": "text/plain"}},
    },
    "recurrence": {"frequency": "minute", "count": 10, "interval": 30},
    "state": "enabled",
}  # fmt: skip
ZERO = {"executionCount": 0, "failureCount": 0, "faultedCount": 0}


def error_body(code: str, message: str) -> str:
    """The whole Service Management error body."""
    return f'<Error xmlns="{NS}"><Code>{code}</Code><Message>{message}</Message></Error>'


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[SchedulerManagementService]:
    """The library's client pointed at the gateway, over its own requests session."""
    session = requests.Session()
    service = SchedulerManagementService(
        subscription_id=SUB,
        request_session=session,
        host=gateway.base_url.removeprefix("http://"),
    )
    # The library builds `protocol://host`; plain HTTP on loopback is the only thing
    # changed from how it talks to management.core.windows.net.
    service._httpclient.protocol = "http"
    try:
        yield service
    finally:
        session.close()


async def call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The client is synchronous: run it off the event loop that serves the gateway."""
    return await asyncio.to_thread(method, *args, **kwargs)


async def test_client_create_job_collection_is_one_upsert_and_reads_back_as_resource(
    gateway: RunningGateway, client: SchedulerManagementService
) -> None:
    """Client: create_job_collection (PUT, no `~`) is one UpdateCollection and returns the
    request id; get_job_collection (GET, the `~` form with api-version) is one
    GetCollection and parses the Resource: name, type, state, plan Standard, no quota."""
    calls = record_rpcs(gateway.app)
    result = await call(client.create_job_collection, CS, "jc1")
    assert len(result.request_id) == 32
    resource = await call(client.get_job_collection, CS, "jc1")
    assert calls == ["UpdateCollection", "GetCollection"]
    assert (resource.name, resource.type, resource.state) == ("jc1", "jobcollections", "Started")
    assert (resource.resource_provider_namespace, resource.schema_version) == ("scheduler", "1.0")
    assert resource.e_tag
    assert resource.intrinsic_settings.plan == "Standard"
    assert resource.intrinsic_settings.quota.max_job_count == 0
    assert resource.intrinsic_settings.quota.max_recurrence is None


async def test_client_plan_free_is_stored_as_free(
    clients: Clients, client: SchedulerManagementService
) -> None:
    """Client: the library sends `<plan>Free</plan>` in lower case; element names match in
    any case, so the collection is Free (it was Standard), here and over gRPC."""
    await call(client.create_job_collection, CS, "free", plan="Free")
    resource = await call(client.get_job_collection, CS, "free")
    assert resource.intrinsic_settings.plan == "Free"
    stored = await clients.jobs.GetCollection(
        job_service_pb2.GetCollectionRequest(
            name=f"collections/{SchedulerDialect.collection_id(SUB, CS, 'free')}"
        )
    )
    assert (stored.plan, stored.profile) == ("Free", resources_pb2.SCHEDULED)


async def test_client_parses_the_quota_of_a_job_collection(
    http: httpx.AsyncClient, client: SchedulerManagementService
) -> None:
    """Client: a collection PUT with the documented sample's quota (MaxJobCount 10,
    MaxRecurrence Second / 1) reads back through get_job_collection with that quota."""
    body = (
        f'<Resource xmlns="{NS}"><IntrinsicSettings><Plan>Standard</Plan><Quota>'
        "<MaxJobCount>10</MaxJobCount><MaxRecurrence><Frequency>Second</Frequency>"
        "<Interval>1</Interval></MaxRecurrence></Quota></IntrinsicSettings></Resource>"
    )
    path = f"/{SUB}/cloudServices/{CS}/resources/scheduler/~/jobCollections/quota"
    r = await http.put(path, content=body, headers={"x-ms-version": "2013-06-01"})
    assert (r.status_code, r.content) == (202, b"")
    quota = (await call(client.get_job_collection, CS, "quota")).intrinsic_settings.quota
    assert quota.max_job_count == 10
    assert (quota.max_recurrence.frequency, quota.max_recurrence.interval) == ("Second", 1)


async def test_client_get_cloud_service_lists_its_job_collections(
    gateway: RunningGateway, client: SchedulerManagementService
) -> None:
    """Client: get_cloud_service parses the CloudService and its Resources: the service's
    own job collections, with their plans, in one ListCollections."""
    await call(client.create_job_collection, CS, "a")
    await call(client.create_job_collection, CS, "b", plan="Free")
    await call(client.create_job_collection, "othercs", "c")
    calls = record_rpcs(gateway.app)
    service = await call(client.get_cloud_service, CS)
    assert calls == ["ListCollections"]
    assert service.name == CS
    found = sorted((res.name, res.intrinsic_settings.plan) for res in service.resources)
    assert found == [("a", "Standard"), ("b", "Free")]
    with pytest.raises(AzureMissingResourceHttpError) as caught:
        await call(client.get_cloud_service, "nocs")
    assert caught.value.status_code == 404
    assert str(caught.value).endswith(
        error_body("ResourceNotFound", "The cloud service 'nocs' was not found.")
    )


async def test_client_job_lifecycle_create_get_list_delete(
    gateway: RunningGateway, client: SchedulerManagementService
) -> None:
    """Client: create_job (PUT with api-version) is one UpdateJob; get_job and
    get_all_jobs (`…/jobs/`, trailing slash) return the job JSON; delete_job is one
    DeleteJob, after which get_job is 404 and the list is empty."""
    await call(client.create_job_collection, CS, "jobs")
    calls = record_rpcs(gateway.app)
    created = await call(client.create_job, CS, "jobs", "job1", JOB)
    assert len(created.request_id) == 32
    job = await call(client.get_job, CS, "jobs", "job1")
    assert {k: v for k, v in job.items() if k != "status"} == {"id": "job1", **JOB}
    assert {k: job["status"][k] for k in ZERO} == ZERO
    assert set(job["status"]) <= {*ZERO, "nextExecutionTime"}
    assert await call(client.get_all_jobs, CS, "jobs") == [job]
    await call(client.delete_job, CS, "jobs", "job1")
    assert calls == ["UpdateJob", "GetJob", "ListJobs", "DeleteJob"]
    with pytest.raises(AzureMissingResourceHttpError) as caught:
        await call(client.get_job, CS, "jobs", "job1")
    assert str(caught.value).endswith(
        error_body("ResourceNotFound", "The job 'job1' was not found.")
    )
    assert await call(client.get_all_jobs, CS, "jobs") == []


async def test_client_operation_status_of_succeeded_and_failed_requests(
    client: SchedulerManagementService,
) -> None:
    """Client: get_operation_status of an async result's request id is Succeeded with its
    HTTP status; a failed request's id (read from the response through the library's own
    filter hook) is Failed with its HttpStatusCode and Error."""
    created = await call(client.create_job_collection, CS, "ops")
    op = await call(client.get_operation_status, created.request_id)
    assert (op.status, op.http_status_code, op.error) == ("Succeeded", "202", None)
    # the library reads `<Id>`, the documented element is `<ID>`: its id stays empty
    assert op.id == ""
    failed: list[str] = []

    def keep_request_id(request: Any, send: Callable[[Any], Any]) -> Any:
        try:
            return send(request)
        except Exception as exc:  # the library's HTTPError carries the response headers
            failed.extend(v for k, v in exc.respheader if k == "x-ms-request-id")  # type: ignore[attr-defined]
            raise

    watched = client.with_filter(keep_request_id)
    watched._httpclient.protocol = "http"
    with pytest.raises(AzureMissingResourceHttpError):
        await call(watched.delete_job, CS, "ops", "nope")
    assert len(failed) == 1
    op = await call(client.get_operation_status, failed[0])
    assert (op.status, op.http_status_code) == ("Failed", "404")
    assert (op.error.code, op.error.message) == (
        "ResourceNotFound",
        "The job 'nope' was not found.",
    )


async def test_client_delete_job_collection_removes_it(client: SchedulerManagementService) -> None:
    """Client: delete_job_collection returns a request id that is Succeeded (200); the
    collection is then 404 for get_job_collection."""
    await call(client.create_job_collection, CS, "gone")
    result = await call(client.delete_job_collection, CS, "gone")
    op = await call(client.get_operation_status, result.request_id)
    assert (op.status, op.http_status_code) == ("Succeeded", "200")
    with pytest.raises(AzureMissingResourceHttpError) as caught:
        await call(client.get_job_collection, CS, "gone")
    assert str(caught.value).endswith(
        error_body("ResourceNotFound", "The job collection 'gone' was not found.")
    )


async def test_client_check_job_collection_name_is_one_list_by_id(
    gateway: RunningGateway, client: SchedulerManagementService
) -> None:
    """Client: check_job_collection_name is available for a new name and not for an
    existing one, each in one ListCollections."""
    await call(client.create_job_collection, CS, "taken")
    calls = record_rpcs(gateway.app)
    assert (await call(client.check_job_collection_name, CS, "taken")).result is False
    assert (await call(client.check_job_collection_name, CS, "free-name")).result is True
    assert calls == ["ListCollections", "ListCollections"]


async def test_client_create_job_in_a_missing_collection_is_404(
    client: SchedulerManagementService,
) -> None:
    """Client: create_job before its job collection exists raises the library's 404 with
    the whole Service Management error body."""
    with pytest.raises(AzureHttpError) as caught:
        await call(client.create_job, CS, "missing", "job1", JOB)
    assert caught.value.status_code == 404
    assert str(caught.value).endswith(
        error_body("ResourceNotFound", "The job collection 'missing' was not found.")
    )
