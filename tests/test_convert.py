"""The domain -> proto conversion of a job: what each field of the reply carries."""

from __future__ import annotations

from google.protobuf import json_format

from jobcontrol.service.core import model
from jobcontrol.service.rpc import convert
from jobcontrol.v1 import resources_pb2 as res


def test_job_to_proto_marks_set_times_present_even_at_the_epoch_and_leaves_unset_ones_absent() -> (
    None
):
    job = model.Job(
        collection_id="c",
        job_id="j",
        profile=model.Profile.BATCH,
        state=model.State.ACTIVE,
        uid="u-1",
        display_name="d",
        state_time=0,
        create_time=1_000_001,
        update_time=2_500_000,
        etag="e1",
        spec={"pool_info": {"pool_id": "p"}},
    )
    msg = convert.job_to_proto(job)
    assert json_format.MessageToDict(msg, preserving_proto_field_name=True) == {
        "name": "collections/c/jobs/j",
        "uid": "u-1",
        "display_name": "d",
        "state": "ACTIVE",
        "state_transition_time": "1970-01-01T00:00:00Z",
        "create_time": "1970-01-01T00:00:01.000001Z",
        "update_time": "1970-01-01T00:00:02.500Z",
        "etag": "e1",
        "profile": "BATCH",
        "batch": {"pool_info": {"pool_id": "p"}},
    }
    for absent in ("previous_state_transition_time", "delete_time", "status"):
        assert not msg.HasField(absent), absent
    assert msg.previous_state == res.STATE_UNSPECIFIED and not msg.labels


def test_job_to_proto_carries_labels_previous_state_deletion_and_status() -> None:
    job = model.Job(
        collection_id="c",
        job_id="j",
        profile=model.Profile.SCHEDULED,
        state=model.State.DELETING,
        previous_state=model.State.DISABLED,
        previous_state_time=0,
        delete_time=7_000_000,
        labels={"team": "a", "tier": "b"},
        delete_operation="operations/x",
        status={"execution_count": "3"},
    )
    msg = convert.job_to_proto(job)
    assert msg.previous_state == res.DISABLED and msg.state == res.DELETING
    assert msg.HasField("previous_state_transition_time")
    assert msg.previous_state_transition_time.ToMicroseconds() == 0
    assert msg.delete_time.ToMicroseconds() == 7_000_000
    assert dict(msg.labels) == {"team": "a", "tier": "b"}
    assert msg.delete_operation == "operations/x"
    assert msg.status.execution_count == 3
    assert msg.HasField("scheduled")
