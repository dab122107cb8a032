"""The Veeam dialect's pure row helpers: representations by Accept, `format`, job renders,
and the session and task of a request."""

from __future__ import annotations

import re

import grpc

from jobcontrol.gateway.dialect_state import session_name
from jobcontrol.gateway.dialects import veeam_codec as codec
from jobcontrol.gateway.dialects import veeam_tree as tree
from jobcontrol.gateway.dialects.incoming import Incoming
from jobcontrol.gateway.dialects.veeam_codec import Kind
from jobcontrol.gateway.dialects.veeam_sessions import Session, TaskRecord
from jobcontrol.gateway.errors import GatewayError, bad_request, gateway_error
from jobcontrol.gateway.http import Request, Response
from jobcontrol.v1 import job_service_pb2 as pb
from jobcontrol.v1 import resources_pb2 as r

TOKEN = "X-RestSvcSessionId"
# the dialect's name in the core's resource names (`dialects/veeam/…`)
DIALECT = "veeam"
# the longest piece of user input an error message echoes
ECHOED = 64


def not_found(reason: str, message: str) -> GatewayError:
    """A 404-class error raised by the dialect itself."""
    return gateway_error(grpc.StatusCode.NOT_FOUND, reason, message)


def send(incoming: Incoming, node: tree.Node, status: int = 200) -> Response:
    """`node` in the representation the request's Accept header asks for."""
    body, content_type = tree.encode(node, codec.decode_accept(incoming.headers.get("accept", "")))
    return Response(status, body, content_type)


def entity_wanted(incoming: Incoming) -> bool:
    """`?format=Entity` (True) or Ref (False); anything else is 400."""
    entity = codec.decode_format(incoming.query_map())
    if entity is None:
        value = incoming.query_map().get("format", "")[:ECHOED]
        raise bad_request("INVALID_QUERY", f"format must be Entity or Ref, not {value}.")
    return entity


def render_jobs(kind: Kind, incoming: Incoming, reply: pb.ListJobsResponse) -> Response:
    """References (EntityReferences of Refs), or entities with ?format=Entity."""
    node = codec.encode_jobs(kind, reply.jobs, incoming.base_url(), entity_wanted(incoming))
    return send(incoming, node)


def render_job(kind: Kind, incoming: Incoming, job: r.Job) -> Response:
    """The job's EntityRef, or its entity; a job of another family is not there."""
    if job.backup.job_type not in kind.types:
        raise not_found("JOB_NOT_FOUND", f"Job {incoming.params['id']} not found.")
    base = incoming.base_url()
    if entity_wanted(incoming):
        return send(incoming, codec.encode_job(kind, job, base))
    return send(incoming, codec.encode_reference(kind, job, base, tag="EntityRef"))


def refuse_action(incoming: Incoming, _: None) -> Response:
    """`?action=` missing or not one of the four: 400 (no call)."""
    names = ", ".join(action.spelling for action in codec.ACTIONS)
    raise bad_request("INVALID_ACTION", f"action must be one of {names}.")


def session_of(incoming: Incoming) -> Session:
    session: Session = incoming.state["session"]
    return session


def own_session(incoming: Incoming) -> Session:
    """The caller's session if the path names it; any other id is not found."""
    session = session_of(incoming)
    if incoming.params["sid"] != session.id:
        raise not_found("SESSION_NOT_FOUND", f"Logon session {incoming.params['sid']} not found.")
    return session


def task_of(incoming: Incoming) -> TaskRecord:
    """The caller's task of the path, as the row's `load` read it."""
    task: TaskRecord = incoming.state["task"]
    return task


def core_session_name(token: str) -> str:
    """The core's name of the session of `token` (by the token's digest)."""
    return session_name(DIALECT, token)


def core_task_name(incoming: Incoming, task_id: str) -> str:
    """The core's name of a task of the caller's session."""
    return f"{core_session_name(session_of(incoming).id)}/tasks/{task_id}"


def session_cookie(request: Request) -> str:
    """The session token of the Cookie header ("" without one). Parsed leniently, as
    RFC 6265 servers do: a malformed or foreign cookie beside it (a quote, a JSON value)
    does not hide it; the first one wins. Commas separate too: cookie values have none
    (RFC 6265 cookie-octet), and repeated Cookie headers arrive joined by them."""
    for item in re.split("[;,]", request.headers.get("cookie", "")):
        name, sep, value = item.partition("=")
        if sep and name.strip() == TOKEN:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return ""
