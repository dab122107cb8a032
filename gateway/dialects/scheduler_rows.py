"""The build and render functions of the Scheduler dialect's route rows: pure functions of
the request and of the one reply."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
import orjson
from google.protobuf import field_mask_pb2

from jobcontrol.gateway.dialects import scheduler_codec as codec
from jobcontrol.gateway.dialects import scheduler_filter as filters
from jobcontrol.gateway.dialects import scheduler_xml as xml
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.errors import bad_request, gateway_error
from jobcontrol.gateway.http import Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

JSON = "application/json; charset=utf-8"
XML = "application/xml; charset=utf-8"
CLOUD_SERVICE_PAGE = 1000


def collection_id(sub: str, cs: str, jc: str) -> str:
    """The jobcontrol collection of a job collection: deterministic, distinct per (sub, cs,
    jc), and a valid id whatever the client's ids hold (which keep their case)."""
    key = "\n".join((sub, cs, jc)).encode()
    return "sched-" + hashlib.sha1(key, usedforsecurity=False).hexdigest()


def addressed_collection(incoming: Incoming) -> str | None:
    """The collection id a request derives (a job collection's, or the one Check Name
    Availability asks about); None for the cloud-service listing."""
    p = incoming.params
    if "jc" in p:
        return collection_id(p["sub"], p["cs"], p["jc"])
    route = incoming.route
    if route is not None and route.build is build_check_name:
        name = incoming.query_map(lower=True).get("resourcename", "")
        return collection_id(p["sub"], p["cs"], name) if name else None
    return None


def _collection(incoming: Incoming) -> str:
    p = incoming.params
    return f"collections/{collection_id(p['sub'], p['cs'], p['jc'])}"


def _job(incoming: Incoming) -> str:
    return f"{_collection(incoming)}/jobs/{incoming.params['job']}"


def _labels(incoming: Incoming) -> dict[str, str]:
    """The labels that tie a collection to its cloud service (Get Cloud Service)."""
    p = incoming.params
    return {"dialect": "scheduler", "subscription": p["sub"], "cloud-service": p["cs"],
            "job-collection": p["jc"]}  # fmt: skip


def _json(status: int, value: Any) -> Response:
    return Response(status, orjson.dumps(value), JSON)


def render_empty(incoming: Incoming, reply: Any) -> Response:
    """The row's status with no body (deletes, collection PUT)."""
    return Response(incoming.status, b"", None)


# --- jobs -------------------------------------------------------------------------------


def build_put_job(incoming: Incoming) -> pb.UpdateJobRequest:
    """Create or replace in one call: an upsert that replaces every field (`*`)."""
    job = codec.decode_job(incoming.json(required=True))
    job.name = _job(incoming)
    mask = field_mask_pb2.FieldMask(paths=["*"])
    return pb.UpdateJobRequest(job=job, update_mask=mask, allow_missing=True)


def render_put_job(incoming: Incoming, job: r.Job) -> Response:
    """201 for a job the call created (never written before: its create and update times
    are one), 200 for one it replaced."""
    created = job.create_time == job.update_time
    return _json(201 if created else 200, codec.encode_job(job))


def build_post_job(incoming: Incoming) -> pb.CreateJobRequest:
    """Create with a server-chosen id."""
    body = incoming.json(required=True)
    if "id" in body:
        raise bad_request("ID_NOT_ALLOWED", "POST creates a job with a server-chosen id; "
                          "PUT the job to its address to choose one.")  # fmt: skip
    return pb.CreateJobRequest(parent=_collection(incoming), job=codec.decode_job(body))


def build_get_job(incoming: Incoming) -> pb.GetJobRequest:
    """Get Job."""
    return pb.GetJobRequest(name=_job(incoming))


def render_job(incoming: Incoming, job: r.Job) -> Response:
    """The job JSON with the row's status (200 GET, 201 POST, 202 PATCH)."""
    return _json(incoming.status, codec.encode_job(job))


def build_list_jobs(incoming: Incoming) -> pb.ListJobsRequest:
    """Get All Jobs: `$filter=state eq X` as a structured filter, `$top`, `$skip`."""
    query = filters.decode_list_query(incoming.query_map(), filters.JOBS)
    request = pb.ListJobsRequest(parent=_collection(incoming), page_size=query.top, skip=query.skip)
    if query.filter is not None:
        request.structured_filter.CopyFrom(query.filter)
    return request


def render_jobs(incoming: Incoming, reply: pb.ListJobsResponse) -> Response:
    """A JSON array of jobs, in id order."""
    return _json(200, [codec.encode_job(job) for job in reply.jobs])


def build_patch_job(incoming: Incoming) -> pb.UpdateJobRequest:
    """Merge (seed 003). A body that changes nothing is still an update, so that the core
    refuses it on a completed or faulted job and answers the job as it is otherwise."""
    body = incoming.json(required=True)
    job = codec.decode_job(body)
    paths = codec.decode_update_mask(body, incoming.params["job"])
    if not paths:
        return pb.UpdateJobRequest(job=r.Job(name=_job(incoming)))
    job.name = _job(incoming)
    return pb.UpdateJobRequest(job=job, update_mask=field_mask_pb2.FieldMask(paths=paths))


def build_delete_job(incoming: Incoming) -> pb.DeleteJobRequest:
    """Delete Job (seed 000): immediate in the core."""
    return pb.DeleteJobRequest(name=_job(incoming))


def build_delete_jobs(incoming: Incoming) -> pb.DeleteJobsRequest:
    """Delete all jobs of the collection (seed 000)."""
    return pb.DeleteJobsRequest(parent=_collection(incoming))


def build_history(incoming: Incoming) -> pb.ListJobHistoryRequest:
    """Get Job History: `$filter` on status or state, `$top`, `$skip`."""
    query = filters.decode_list_query(incoming.query_map(), filters.HISTORY)
    request = pb.ListJobHistoryRequest(parent=_job(incoming), page_size=query.top, skip=query.skip)
    if query.filter is not None:
        request.structured_filter.CopyFrom(query.filter)
    return request


def render_history(incoming: Incoming, reply: pb.ListJobHistoryResponse) -> Response:
    """A JSON array of history entries, newest first."""
    job_id = incoming.params["job"]
    return _json(200, [codec.encode_history(entry, job_id) for entry in reply.entries])


# --- job collections and cloud services -------------------------------------------------


def build_put_collection(incoming: Incoming) -> pb.UpdateCollectionRequest:
    """Create or update (plan, quota) in one call: an upsert of a `scheduled` collection."""
    collection = xml.decode_collection(incoming.body)
    collection.name = _collection(incoming)
    collection.labels.update(_labels(incoming))
    mask = field_mask_pb2.FieldMask(paths=["plan", "quota", "labels"])
    return pb.UpdateCollectionRequest(collection=collection, update_mask=mask, allow_missing=True)


def build_get_collection(incoming: Incoming) -> pb.GetCollectionRequest:
    """Get Job Collection."""
    return pb.GetCollectionRequest(name=_collection(incoming))


def render_collection(incoming: Incoming, collection: r.Collection) -> Response:
    """The collection as its `<Resource>`."""
    return Response(200, xml.encode_resource(collection), XML)


def build_delete_collection(incoming: Incoming) -> pb.DeleteCollectionRequest:
    """Delete Job Collection, with its jobs."""
    return pb.DeleteCollectionRequest(name=_collection(incoming))


def _label_filter(labels: dict[str, str]) -> r.Filter:
    equal = r.Comparison.EQUAL
    return r.Filter(all=r.FilterList(filters=[
        r.Filter(comparison=r.Comparison(field=f"labels.{k}", operator=equal, text=v))
        for k, v in labels.items()
    ]))  # fmt: skip


def build_cloud_service(incoming: Incoming) -> pb.ListCollectionsRequest:
    """The service's job collections, found by their labels in one page."""
    p = incoming.params
    wanted = {"dialect": "scheduler", "subscription": p["sub"], "cloud-service": p["cs"]}
    return pb.ListCollectionsRequest(
        page_size=CLOUD_SERVICE_PAGE, structured_filter=_label_filter(wanted)
    )


def render_cloud_service(incoming: Incoming, reply: pb.ListCollectionsResponse) -> Response:
    """404 for a cloud service with no job collection (it exists only through them)."""
    if not reply.collections:
        cs = incoming.params["cs"]
        raise gateway_error(grpc.StatusCode.NOT_FOUND, "CLOUD_SERVICE_NOT_FOUND",
                            f"cloud service {cs} has no job collections")  # fmt: skip
    return Response(200, xml.encode_cloud_service(incoming.params["cs"], reply.collections), XML)


def build_check_name(incoming: Incoming) -> pb.ListCollectionsRequest:
    """Check Name Availability (`?op=checknameavailability&resourceName=jc`): whether the
    collection the name maps to exists, asked as a one-item list by id."""
    query = incoming.query_map(lower=True)
    name = query.get("resourcename", "")
    if query.get("op", "").lower() != "checknameavailability" or not name:
        raise bad_request("INVALID_QUERY", "op=checknameavailability and resourceName are "
                          "required.", parameter="op")  # fmt: skip
    p = incoming.params
    target = collection_id(p["sub"], p["cs"], name)
    comparison = r.Comparison(field="id", operator=r.Comparison.EQUAL, text=target)
    return pb.ListCollectionsRequest(page_size=1, structured_filter=r.Filter(comparison=comparison))


def render_check_name(incoming: Incoming, reply: pb.ListCollectionsResponse) -> Response:
    """Available when no collection has the id the name maps to."""
    return Response(200, xml.encode_availability(not reply.collections), XML)
