"""The `transfer` profile (Azure Import/Export): rules T1..T9 of docs/rules.md."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest

from jobcontrol.v1 import job_service_pb2, resources_pb2
from tests.conftest import Clients, MakeCollection
from tests.helpers import (
    assert_deleted_ok,
    assert_gone,
    assert_unchanged,
    delete,
    expect_error,
    operator_to,
    update,
)
from tests.helpers import get_job as get
from tests.helpers import state_name as sname

pytestmark = pytest.mark.backends

R = resources_pb2
JS = job_service_pb2
Code = grpc.StatusCode
TS = R.TransferSpec

ADDRESS = R.ReturnAddress(
    name="Ops", address="1 Main St, Redmond", phone="555-0100", email="ops@example.com"
)
PACKAGE = R.DeliveryPackage(
    carrier_name="UPS", tracking_number="1Z999", drive_count=1, ship_date="2024-01-02"
)

LIVE = (R.CREATING, R.SHIPPING, R.RECEIVED, R.TRANSFERRING, R.PACKAGING)
FINAL_LIKE = (R.COMPLETED, R.CLOSED, R.FAULTED)
ALL_STATES = LIVE + FINAL_LIKE


# --- helpers -----------------------------------------------------------------------


def transfer(shipping_info: bool = True, **fields: object) -> R.TransferSpec:
    """An IMPORT to westus; with return address and delivery package unless told not to."""
    spec = TS(type=TS.IMPORT, location="westus", **fields)
    if shipping_info:
        if not spec.HasField("return_address"):
            spec.return_address.CopyFrom(ADDRESS)
        if not spec.HasField("delivery_package"):
            spec.delivery_package.CopyFrom(PACKAGE)
    return spec


async def create(
    clients: Clients,
    coll: R.Collection,
    job_id: str = "j1",
    spec: R.TransferSpec | None = None,
    **job_fields: object,
) -> R.Job:
    job = R.Job(transfer=spec if spec is not None else transfer(), **job_fields)
    return await clients.jobs.CreateJob(
        JS.CreateJobRequest(parent=coll.name, job_id=job_id, job=job)
    )


async def client_set_state(
    clients: Clients, name: str, state: int, paths: list[str] | None = None
) -> R.Job:
    return await update(clients, R.Job(name=name, state=state), paths)


async def walk_to(clients: Clients, name: str, target: int) -> R.Job:
    """Move a CREATING job (with shipping info) to `target` the legitimate way."""
    job = await get(clients, name)
    assert job.state == R.CREATING
    if target == R.CREATING:
        return job
    if target == R.FAULTED:
        job = await operator_to(clients, name, R.FAULTED)
        assert job.state == R.FAULTED
        return job
    job = await client_set_state(clients, name, R.SHIPPING)
    assert job.state == R.SHIPPING
    for step in (R.RECEIVED, R.TRANSFERRING, R.PACKAGING):
        if job.state == target:
            return job
        job = await operator_to(clients, name, step)
        assert job.state == step
    if target != R.PACKAGING:
        job = await operator_to(clients, name, target)
    assert job.state == target
    return job


async def assert_delete_refused(clients: Clients, name: str) -> None:
    before = await get(clients, name)
    err = await expect_error(
        delete(clients, name), Code.FAILED_PRECONDITION, "JOB_NOT_DELETABLE_IN_STATE"
    )
    assert err.precondition is not None
    await assert_unchanged(clients, before)


# --- T1 ----------------------------------------------------------------------------


async def test_transfer_initial_state_is_creating(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T1: a new transfer job starts CREATING with its spec as given."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll, spec=transfer(description="disks"))
    assert job.state == R.CREATING
    assert job.profile == R.TRANSFER
    assert job.transfer.type == TS.IMPORT
    assert job.transfer.location == "westus"
    assert job.transfer.description == "disks"
    got = await get(clients, job.name)
    assert got.state == R.CREATING
    assert got == job


async def test_transfer_initial_state_without_shipping_info(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T1: an EXPORT job with only the required fields also starts CREATING."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll, spec=TS(type=TS.EXPORT, location="eastus"))
    assert job.state == R.CREATING
    assert (await get(clients, job.name)).state == R.CREATING


# --- T2 ----------------------------------------------------------------------------


async def test_transfer_client_sets_shipping_from_creating(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T2: a client moves CREATING -> SHIPPING with a merge update of `state`."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    shipped = await client_set_state(clients, job.name, R.SHIPPING)
    assert shipped.state == R.SHIPPING
    assert shipped.etag != job.etag
    assert shipped.transfer == job.transfer
    assert (await get(clients, job.name)).state == R.SHIPPING


async def test_transfer_client_sets_shipping_with_state_mask(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T2: a client moves CREATING -> SHIPPING with mask ["state"]."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    shipped = await client_set_state(clients, job.name, R.SHIPPING, ["state"])
    assert shipped.state == R.SHIPPING
    assert shipped.transfer == job.transfer
    assert (await get(clients, job.name)).state == R.SHIPPING


@pytest.mark.parametrize("state", [R.RECEIVED, R.TRANSFERRING, R.PACKAGING], ids=sname)
async def test_transfer_shipping_only_from_creating(
    clients: Clients, make_collection: MakeCollection, state: int
) -> None:
    """T2: setting SHIPPING from a later live state is INVALID_STATE_TRANSITION."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, state)
    for paths in (None, ["state"]):
        before = await get(clients, job.name)
        err = await expect_error(
            client_set_state(clients, job.name, R.SHIPPING, paths),
            Code.FAILED_PRECONDITION,
            "INVALID_STATE_TRANSITION",
        )
        assert err.precondition is not None
        await assert_unchanged(clients, before)
        assert before.state == state


async def test_transfer_client_other_states_not_settable(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T2: from CREATING, every client target but SHIPPING is STATE_NOT_SETTABLE."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    targets = (
        R.RECEIVED,
        R.TRANSFERRING,
        R.PACKAGING,
        R.COMPLETED,
        R.CLOSED,
        R.FAULTED,
        R.ENABLED,
        R.ACTIVE,
        R.IDLE,
    )
    for target in targets:
        for paths in (None, ["state"]):
            before = await get(clients, job.name)
            await expect_error(
                client_set_state(clients, job.name, target, paths),
                Code.INVALID_ARGUMENT,
                "STATE_NOT_SETTABLE",
            )
            await assert_unchanged(clients, before)
            assert before.state == R.CREATING


async def test_transfer_client_cannot_go_back_to_creating(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T2: a SHIPPING job cannot be set back to CREATING (STATE_NOT_SETTABLE)."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, R.SHIPPING)
    before = await get(clients, job.name)
    await expect_error(
        client_set_state(clients, job.name, R.CREATING),
        Code.INVALID_ARGUMENT,
        "STATE_NOT_SETTABLE",
    )
    await assert_unchanged(clients, before)


# --- T3 ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"return_address": ADDRESS},
        {"delivery_package": PACKAGE},
    ],
    ids=["neither", "address_only", "package_only"],
)
async def test_transfer_shipping_requires_address_and_package(
    clients: Clients, make_collection: MakeCollection, fields: dict[str, object]
) -> None:
    """T3: SHIPPING without return_address and delivery_package is SHIPPING_INFO_REQUIRED."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll, spec=transfer(shipping_info=False, **fields))
    for paths in (None, ["state"]):
        before = await get(clients, job.name)
        err = await expect_error(
            client_set_state(clients, job.name, R.SHIPPING, paths),
            Code.FAILED_PRECONDITION,
            "SHIPPING_INFO_REQUIRED",
        )
        assert err.precondition is not None
        await assert_unchanged(clients, before)
        assert before.state == R.CREATING


async def test_transfer_shipping_allowed_once_info_added(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T3: after adding return_address and delivery_package, SHIPPING is accepted."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll, spec=transfer(shipping_info=False))
    await update(
        clients,
        R.Job(name=job.name, transfer=TS(return_address=ADDRESS, delivery_package=PACKAGE)),
    )
    shipped = await client_set_state(clients, job.name, R.SHIPPING)
    assert shipped.state == R.SHIPPING
    assert shipped.transfer.return_address == ADDRESS
    assert shipped.transfer.delivery_package == PACKAGE


# --- T4 ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [R.CREATING, R.SHIPPING, R.TRANSFERRING], ids=sname)
async def test_transfer_cancel_requested_allowed_states(
    clients: Clients, make_collection: MakeCollection, state: int
) -> None:
    """T4: cancel_requested=true is accepted in CREATING, SHIPPING and TRANSFERRING."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, state)
    updated = await update(clients, R.Job(name=job.name, transfer=TS(cancel_requested=True)))
    assert updated.transfer.HasField("cancel_requested")
    assert updated.transfer.cancel_requested is True
    got = await get(clients, job.name)
    assert got.transfer.cancel_requested is True
    assert got.transfer.location == "westus"


async def test_transfer_cancel_requested_with_mask(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T4: cancel_requested=true through mask ["transfer.cancel_requested"] is accepted."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    updated = await update(
        clients,
        R.Job(name=job.name, transfer=TS(cancel_requested=True)),
        ["transfer.cancel_requested"],
    )
    assert updated.transfer.cancel_requested is True
    assert (await get(clients, job.name)).transfer.cancel_requested is True


@pytest.mark.parametrize(
    "state", [R.RECEIVED, R.PACKAGING, R.COMPLETED, R.CLOSED, R.FAULTED], ids=sname
)
async def test_transfer_cancel_requested_refused_in_other_states(
    clients: Clients, make_collection: MakeCollection, state: int
) -> None:
    """T4: cancel_requested outside CREATING/SHIPPING/TRANSFERRING: FIELD_NOT_MUTABLE_IN_STATE."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, state)
    for paths in (None, ["transfer.cancel_requested"]):
        before = await get(clients, job.name)
        err = await expect_error(
            update(clients, R.Job(name=job.name, transfer=TS(cancel_requested=True)), paths),
            Code.FAILED_PRECONDITION,
            "FIELD_NOT_MUTABLE_IN_STATE",
        )
        assert err.precondition is not None
        await assert_unchanged(clients, before)
        assert not before.transfer.cancel_requested


async def test_transfer_cancel_requested_false_not_allowed(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T4: cancel_requested=false is FIELD_VALUE_NOT_ALLOWED, also after a true."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    before = await get(clients, job.name)
    err = await expect_error(
        update(clients, R.Job(name=job.name, transfer=TS(cancel_requested=False))),
        Code.INVALID_ARGUMENT,
        "FIELD_VALUE_NOT_ALLOWED",
    )
    assert err.bad_request is not None
    await assert_unchanged(clients, before)

    await update(clients, R.Job(name=job.name, transfer=TS(cancel_requested=True)))
    before = await get(clients, job.name)
    await expect_error(
        update(
            clients,
            R.Job(name=job.name, transfer=TS(cancel_requested=False)),
            ["transfer.cancel_requested"],
        ),
        Code.INVALID_ARGUMENT,
        "FIELD_VALUE_NOT_ALLOWED",
    )
    await assert_unchanged(clients, before)
    assert before.transfer.cancel_requested is True


# --- T5 ----------------------------------------------------------------------------

_TO_PACKAGING = {R.CREATING, R.SHIPPING, R.RECEIVED, R.TRANSFERRING}
NEW_ADDRESS = R.ReturnAddress(name="New", address="2 Side St", phone="555-0199", email="n@x.io")
NEW_SHIPPING = R.ReturnShipping(carrier_name="FedEx", carrier_account_number="987654")
NEW_PACKAGE = R.DeliveryPackage(
    carrier_name="DHL", tracking_number="JD01", drive_count=2, ship_date="2024-02-03"
)
NEW_DRIVES = [R.Drive(drive_id="WD-2", bit_locker_key="key-2", manifest_file="\\m2.xml")]

# path -> (states in which it may change, body, check on the returned job)
FIELD_CASES: dict[str, tuple[set[int], Callable[[str], R.Job], Callable[[R.Job], bool]]] = {
    "transfer.return_address": (
        _TO_PACKAGING,
        lambda n: R.Job(name=n, transfer=TS(return_address=NEW_ADDRESS)),
        lambda j: j.transfer.return_address == NEW_ADDRESS,
    ),
    "transfer.return_shipping": (
        _TO_PACKAGING,
        lambda n: R.Job(name=n, transfer=TS(return_shipping=NEW_SHIPPING)),
        lambda j: j.transfer.return_shipping == NEW_SHIPPING,
    ),
    "transfer.delivery_package": (
        {R.CREATING, R.SHIPPING},
        lambda n: R.Job(name=n, transfer=TS(delivery_package=NEW_PACKAGE)),
        lambda j: j.transfer.delivery_package == NEW_PACKAGE,
    ),
    "transfer.drives": (
        {R.CREATING},
        lambda n: R.Job(name=n, transfer=TS(drives=NEW_DRIVES)),
        lambda j: [d.drive_id for d in j.transfer.drives] == ["WD-2"],
    ),
    "transfer.description": (
        set(LIVE),
        lambda n: R.Job(name=n, transfer=TS(description="changed")),
        lambda j: j.transfer.description == "changed",
    ),
    "display_name": (
        set(LIVE),
        lambda n: R.Job(name=n, display_name="renamed"),
        lambda j: j.display_name == "renamed",
    ),
    "labels": (
        set(LIVE),
        lambda n: R.Job(name=n, labels={"k": "v"}),
        lambda j: dict(j.labels) == {"k": "v"},
    ),
}


@pytest.mark.parametrize("use_mask", [True, False], ids=["mask", "merge"])
@pytest.mark.parametrize("state", ALL_STATES, ids=sname)
async def test_transfer_field_mutability_per_state(
    clients: Clients, make_collection: MakeCollection, state: int, use_mask: bool
) -> None:
    """T5: each field changes only in its states; elsewhere FIELD_NOT_MUTABLE_IN_STATE."""
    coll = await make_collection(R.TRANSFER)
    job = await create(
        clients,
        coll,
        spec=transfer(
            description="orig",
            return_shipping=R.ReturnShipping(carrier_name="UPS", carrier_account_number="1"),
            drives=[R.Drive(drive_id="WD-1", manifest_file="\\m1.xml")],
        ),
        display_name="orig",
    )
    await walk_to(clients, job.name, state)
    for path, (allowed, body, check) in FIELD_CASES.items():
        paths = [path] if use_mask else None
        before = await get(clients, job.name)
        if state in allowed:
            updated = await update(clients, body(job.name), paths)
            assert check(updated), f"{path} in {sname(state)}: {updated}"
            assert updated.state == state
            assert updated.etag != before.etag
            got = await get(clients, job.name)
            assert check(got)
            assert got == updated
        else:
            err = await expect_error(
                update(clients, body(job.name), paths),
                Code.FAILED_PRECONDITION,
                "FIELD_NOT_MUTABLE_IN_STATE",
            )
            assert err.precondition is not None
            await assert_unchanged(clients, before)
            assert not check(before)


async def test_transfer_mixed_update_refused_atomically(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T5: in RECEIVED, a merge of description (ok) and delivery_package (not) changes nothing."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll, spec=transfer(description="orig"))
    await walk_to(clients, job.name, R.RECEIVED)
    before = await get(clients, job.name)
    await expect_error(
        update(
            clients,
            R.Job(name=job.name, transfer=TS(description="new", delivery_package=NEW_PACKAGE)),
        ),
        Code.FAILED_PRECONDITION,
        "FIELD_NOT_MUTABLE_IN_STATE",
    )
    await assert_unchanged(clients, before)
    assert before.transfer.description == "orig"


# --- T6 ----------------------------------------------------------------------------


@pytest.mark.parametrize("end", [R.COMPLETED, R.CLOSED], ids=sname)
async def test_transfer_operator_walk_and_clients_never(
    clients: Clients, make_collection: MakeCollection, end: int
) -> None:
    """T6: operators walk SHIPPING->...->PACKAGING->end; clients setting each is refused."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    job = await client_set_state(clients, job.name, R.SHIPPING)
    assert job.state == R.SHIPPING
    for step in (R.RECEIVED, R.TRANSFERRING, R.PACKAGING, end):
        before = await get(clients, job.name)
        await expect_error(
            client_set_state(clients, job.name, step),
            Code.INVALID_ARGUMENT,
            "STATE_NOT_SETTABLE",
        )
        await assert_unchanged(clients, before)
        moved = await operator_to(clients, job.name, step)
        assert moved.state == step
        assert moved.etag != before.etag
        assert (await get(clients, job.name)).state == step


@pytest.mark.parametrize("state", LIVE, ids=sname)
async def test_transfer_operator_faults_from_any_live_state(
    clients: Clients, make_collection: MakeCollection, state: int
) -> None:
    """T6: operators may move any live state to FAULTED; clients may not."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, state)
    before = await get(clients, job.name)
    await expect_error(
        client_set_state(clients, job.name, R.FAULTED),
        Code.INVALID_ARGUMENT,
        "STATE_NOT_SETTABLE",
    )
    await assert_unchanged(clients, before)
    faulted = await operator_to(clients, job.name, R.FAULTED)
    assert faulted.state == R.FAULTED
    assert (await get(clients, job.name)).state == R.FAULTED


@pytest.mark.parametrize(
    ("start", "target"),
    [
        (R.CREATING, R.RECEIVED),
        (R.SHIPPING, R.TRANSFERRING),
        (R.SHIPPING, R.COMPLETED),
        (R.RECEIVED, R.PACKAGING),
        (R.TRANSFERRING, R.COMPLETED),
        (R.COMPLETED, R.RECEIVED),
        (R.CLOSED, R.PACKAGING),
    ],
    ids=lambda s: sname(s),
)
async def test_transfer_operator_cannot_skip_states(
    clients: Clients, make_collection: MakeCollection, start: int, target: int
) -> None:
    """T6: operator moves outside the journey are INVALID_STATE_TRANSITION (C23)."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, start)
    before = await get(clients, job.name)
    err = await expect_error(
        operator_to(clients, job.name, target),
        Code.FAILED_PRECONDITION,
        "INVALID_STATE_TRANSITION",
    )
    assert err.precondition is not None
    await assert_unchanged(clients, before)


# --- T7 ----------------------------------------------------------------------------


async def test_transfer_delete_walk_through_every_state(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T7: walking the journey, delete succeeds only in CREATING and COMPLETED."""
    coll = await make_collection(R.TRANSFER)

    # CREATING: deletable, immediately
    first = await create(clients, coll, "j0")
    assert first.state == R.CREATING
    await assert_deleted_ok(clients, first.name)

    job = await create(clients, coll, "j1")
    assert job.state == R.CREATING
    job = await client_set_state(clients, job.name, R.SHIPPING)
    assert job.state == R.SHIPPING
    await assert_delete_refused(clients, job.name)
    for step in (R.RECEIVED, R.TRANSFERRING, R.PACKAGING):
        job = await operator_to(clients, job.name, step)
        assert job.state == step
        await assert_delete_refused(clients, job.name)
    job = await operator_to(clients, job.name, R.COMPLETED)
    assert job.state == R.COMPLETED
    await assert_deleted_ok(clients, job.name)
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert list(listed.jobs) == []


@pytest.mark.parametrize("state", ALL_STATES, ids=sname)
async def test_transfer_delete_allowed_only_in_creating_or_completed(
    clients: Clients, make_collection: MakeCollection, state: int
) -> None:
    """T7: delete in each state: done at once in CREATING/COMPLETED, else refused."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll)
    await walk_to(clients, job.name, state)
    if state in (R.CREATING, R.COMPLETED):
        await assert_deleted_ok(clients, job.name)
        await expect_error(delete(clients, job.name), Code.NOT_FOUND, "JOB_NOT_FOUND")
    else:
        await assert_delete_refused(clients, job.name)


@pytest.mark.settings(purge_chunk=2)
async def test_transfer_delete_jobs_purges_only_creating_or_completed_jobs(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T7 in bulk: DeleteJobs purges the jobs in CREATING or COMPLETED at once and leaves
    the rest as they were, across purge chunks (two jobs a chunk here)."""
    coll = await make_collection(R.TRANSFER)
    kept = {}
    for i, state in enumerate((R.CREATING, R.SHIPPING, R.COMPLETED, R.CREATING, R.FAULTED)):
        job = await create(clients, coll, f"j{i}")
        job = await walk_to(clients, job.name, state)
        if state not in (R.CREATING, R.COMPLETED):
            kept[job.name] = job
    op = await clients.jobs.DeleteJobs(JS.DeleteJobsRequest(parent=coll.name))
    assert op.done and not op.HasField("error")
    reply = JS.DeleteJobsResponse()
    assert op.response.Unpack(reply)
    assert reply.deleted_count == 3
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert {job.name: job for job in listed.jobs} == kept


# --- T8 ----------------------------------------------------------------------------


async def test_transfer_create_over_creating_job_replaces_it(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T8: creating over a CREATING job replaces it with the new definition."""
    coll = await make_collection(R.TRANSFER)
    old = await create(clients, coll, spec=transfer(description="first"), display_name="old")
    new = await create(
        clients,
        coll,
        spec=TS(type=TS.EXPORT, location="eastus", description="second"),
        display_name="new",
    )
    assert new.name == old.name
    assert new.state == R.CREATING
    assert new.etag != old.etag
    assert new.display_name == "new"
    assert new.transfer.type == TS.EXPORT
    assert new.transfer.location == "eastus"
    assert new.transfer.description == "second"
    assert not new.transfer.HasField("return_address")
    assert not new.transfer.HasField("delivery_package")
    assert (await get(clients, old.name)) == new
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert [j.name for j in listed.jobs] == [old.name]


@pytest.mark.parametrize("state", ALL_STATES[1:], ids=sname)
async def test_transfer_create_over_non_creating_job_already_exists(
    clients: Clients, make_collection: MakeCollection, state: int
) -> None:
    """T8: creating over a job that left CREATING is JOB_ALREADY_EXISTS; nothing changes."""
    coll = await make_collection(R.TRANSFER)
    job = await create(clients, coll, spec=transfer(description="first"))
    await walk_to(clients, job.name, state)
    before = await get(clients, job.name)
    await expect_error(
        create(clients, coll, spec=transfer(description="second")),
        Code.ALREADY_EXISTS,
        "JOB_ALREADY_EXISTS",
    )
    await assert_unchanged(clients, before)
    assert before.transfer.description == "first"
    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name))
    assert [j.name for j in listed.jobs] == [job.name]


# --- T9 ----------------------------------------------------------------------------


async def test_transfer_default_active_job_quota(
    clients: Clients, make_collection: MakeCollection
) -> None:
    """T9: by default 20 active jobs; COMPLETED/CLOSED free a slot, FAULTED does not."""
    coll = await make_collection(R.TRANSFER)
    jobs = [await create(clients, coll, f"j{i}") for i in range(20)]

    async def refused(job_id: str) -> None:
        err = await expect_error(
            create(clients, coll, job_id), Code.RESOURCE_EXHAUSTED, "QUOTA_EXCEEDED"
        )
        assert err.quota is not None
        await assert_gone(clients, f"{coll.name}/jobs/{job_id}")

    await refused("extra0")

    # FAULTED is not COMPLETED/CLOSED: still active, still full
    await walk_to(clients, jobs[0].name, R.FAULTED)
    await refused("extra0")

    await walk_to(clients, jobs[1].name, R.COMPLETED)
    created = await create(clients, coll, "extra1")
    assert created.state == R.CREATING
    await refused("extra2")

    await walk_to(clients, jobs[2].name, R.CLOSED)
    await create(clients, coll, "extra2")
    await refused("extra3")

    listed = await clients.jobs.ListJobs(JS.ListJobsRequest(parent=coll.name, page_size=100))
    assert len(listed.jobs) == 22
    active = [j for j in listed.jobs if j.state not in (R.COMPLETED, R.CLOSED)]
    assert len(active) == 20
