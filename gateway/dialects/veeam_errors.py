"""The Veeam dialect's error table: Enterprise Manager's Error body has no code of its own,
so a row is its HTTP status and message."""

from __future__ import annotations

import grpc

from jobcontrol.gateway.dialects.error_table import ErrorRow, ErrorTable

JOB_NOT_FOUND = ErrorRow(404, message="Job {id} not found.")
TASK_FINISHED = ErrorRow(400, message="Task {tid} has already finished.")

ERRORS = ErrorTable(
    by_reason={
        "JOB_NOT_FOUND": JOB_NOT_FOUND,
        "COLLECTION_NOT_FOUND": JOB_NOT_FOUND,
        # a job of another family than the route's (preconditions.types)
        "JOB_TYPE_MISMATCH": JOB_NOT_FOUND,
        "TASK_NOT_FOUND": ErrorRow(404, message="Task {tid} not found."),
        "SESSION_NOT_FOUND": ErrorRow(404, message="Logon session {sid} not found."),
        "ROUTE_NOT_FOUND": ErrorRow(404),
        "METHOD_NOT_ALLOWED": ErrorRow(405),
        "BODY_TOO_LARGE": ErrorRow(413),
        "BAD_CREDENTIALS": ErrorRow(401),
        "SESSION_REQUIRED": ErrorRow(401),
        # too many failed logons of the user or from the address (Retry-After says when)
        "LOGON_THROTTLED": ErrorRow(429),
        # dialects.md §4 Decision: retry when the last run did not fail is 400
        "RETRY_NOT_ALLOWED": ErrorRow(400),
        "OPERATION_INVALID_FOR_STATE": ErrorRow(400),
        "JOB_BEING_DELETED": ErrorRow(400),
        "OPERATION_NOT_CANCELLABLE": ErrorRow(400),
        # a deletion whose Operation was deleted out of band (native API, gRPC)
        "OPERATION_NOT_FOUND": ErrorRow(404, message="Task {tid} not found."),
    },
    by_code={
        grpc.StatusCode.INVALID_ARGUMENT: ErrorRow(400),
        grpc.StatusCode.FAILED_PRECONDITION: ErrorRow(400),
        grpc.StatusCode.NOT_FOUND: ErrorRow(404),
        grpc.StatusCode.ALREADY_EXISTS: ErrorRow(409),
        grpc.StatusCode.ABORTED: ErrorRow(409),
        grpc.StatusCode.UNAUTHENTICATED: ErrorRow(401),
        # the core's refusal of the session user's role (or of an untrusted gateway)
        grpc.StatusCode.PERMISSION_DENIED: ErrorRow(403),
        grpc.StatusCode.UNAVAILABLE: ErrorRow(503),
        grpc.StatusCode.DEADLINE_EXCEEDED: ErrorRow(504),
    },
)
# dialects.md §4 Decision: deleting a NAS/agent job, or one being deleted, is 404
DELETE_ERRORS = {"JOB_TYPE_NOT_DELETABLE": JOB_NOT_FOUND, "JOB_BEING_DELETED": JOB_NOT_FOUND}
# the deletion finished (or was cancelled) since the gateway last looked
CANCEL_ERRORS = {"OPERATION_NOT_CANCELLABLE": TASK_FINISHED}
