"""What the dialects keep between requests, kept by the core (DialectStateService) so that
every gateway in front of one server answers alike: logon sessions, session tasks and
request outcomes. The gateway calls it as itself (its own token or certificate, never a
client's identity); it never opens the database."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import grpc
from google.protobuf import duration_pb2, empty_pb2
from google.protobuf.message import Message

from jobcontrol.gateway.errors import GatewayError
from jobcontrol.gateway.upstream import Upstream
from jobcontrol.v1 import session_service_pb2 as pb

if TYPE_CHECKING:
    from jobcontrol.gateway.dialects.incoming import Incoming

_SERVICE = "/jobcontrol.v1.DialectStateService/"
# the longest scope or request id segment the core keeps (service/core/dialect_state.py)
MAX_SEGMENT = 512
M = TypeVar("M", bound=Message)


def token_digest(token: str) -> str:
    """The SHA-256 digest (hex) by which the core knows a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def session_name(dialect: str, token: str) -> str:
    """`dialects/{dialect}/logonSessions/{digest of the token}`."""
    return f"dialects/{dialect}/logonSessions/{token_digest(token)}"


def outcome_name(dialect: str, scope: str, request_id: str) -> str | None:
    """`dialects/{dialect}/scopes/{scope}/outcomes/{request id}` (both percent-encoded);
    None when either is empty or too long to have been kept."""
    parts = [quote(scope, safe=""), quote(request_id, safe="")]
    if not all(0 < len(part) <= MAX_SEGMENT for part in parts):
        return None
    return f"dialects/{dialect}/scopes/{parts[0]}/outcomes/{parts[1]}"


class DialectState:
    """The calls of one request to the core's DialectStateService."""

    def __init__(self, upstream: Upstream, incoming: Incoming) -> None:
        self.upstream = upstream
        self.incoming = incoming

    async def _call(self, method: str, request: Message, reply: type[M]) -> M:
        """One call with the request id and the gateway's own credential, within the
        request's deadline. A refusal of that credential is PERMISSION_DENIED (as when
        the server refuses the gateway's assertions): it is the gateway the server does
        not trust, not the client."""
        metadata = [("x-request-id", self.incoming.request_id)]
        if self.upstream.authorization:
            metadata.append(("authorization", self.upstream.authorization))
        deadline = self.incoming.remaining(self.incoming.dialect.timeout(self.incoming))
        try:
            found: M = await self.upstream.unary(
                _SERVICE + method, request, reply, metadata, deadline
            )
            return found
        except GatewayError as error:
            if error.code == grpc.StatusCode.UNAUTHENTICATED:
                error.code = grpc.StatusCode.PERMISSION_DENIED
            raise

    # --- logon sessions ---------------------------------------------------------------

    async def create_session(
        self, dialect: str, token: str, user: str, roles: list[str], idle: float
    ) -> pb.LogonSession:
        """A new session known by the digest of `token`, live for `idle` seconds."""
        timeout = duration_pb2.Duration()
        timeout.FromMicroseconds(int(idle * 1_000_000))
        request = pb.CreateLogonSessionRequest(
            parent=f"dialects/{dialect}",
            logon_session_id=token_digest(token),
            logon_session=pb.LogonSession(user=user, roles=roles, idle_timeout=timeout),
        )
        return await self._call("CreateLogonSession", request, pb.LogonSession)

    async def get_session(self, name: str) -> pb.LogonSession:
        """The live session (its idle window moved); NOT_FOUND if unknown or expired."""
        request = pb.GetLogonSessionRequest(name=name)
        return await self._call("GetLogonSession", request, pb.LogonSession)

    async def delete_session(self, name: str) -> None:
        """Log off (a session already gone is no error)."""
        request = pb.DeleteLogonSessionRequest(name=name, allow_missing=True)
        await self._call("DeleteLogonSession", request, empty_pb2.Empty)

    # --- session tasks ----------------------------------------------------------------

    async def create_task(self, session: str, task: pb.SessionTask) -> pb.SessionTask:
        """A task of the session, numbered by the core."""
        request = pb.CreateSessionTaskRequest(parent=session, session_task=task)
        return await self._call("CreateSessionTask", request, pb.SessionTask)

    async def get_task(self, name: str) -> pb.SessionTask:
        """The task; NOT_FOUND if the session has no such task."""
        return await self._call("GetSessionTask", pb.GetSessionTaskRequest(name=name),
                                pb.SessionTask)  # fmt: skip

    async def list_tasks(self, session: str) -> list[pb.SessionTask]:
        """Every task of the session, oldest first."""
        found: list[pb.SessionTask] = []
        token = ""
        while True:
            request = pb.ListSessionTasksRequest(parent=session, page_token=token)
            page = await self._call("ListSessionTasks", request, pb.ListSessionTasksResponse)
            found += page.session_tasks
            token = page.next_page_token
            if not token:
                return found

    async def finish_task(self, name: str, success: bool, message: str) -> pb.SessionTask:
        """Set the task's result (the first one wins); the task as it then is."""
        result = pb.SessionTask.Result(success=success, message=message)
        request = pb.FinishSessionTaskRequest(name=name, result=result)
        return await self._call("FinishSessionTask", request, pb.SessionTask)

    async def delete_task(self, name: str) -> None:
        """Remove the task (one already gone is no error)."""
        request = pb.DeleteSessionTaskRequest(name=name, allow_missing=True)
        await self._call("DeleteSessionTask", request, empty_pb2.Empty)

    # --- request outcomes -------------------------------------------------------------

    async def record_outcome(self, name: str, status: int, code: str, message: str) -> None:
        """Keep how the request named `name` ended."""
        outcome = pb.RequestOutcome(
            name=name, http_status=status, error_code=code, error_message=message
        )
        request = pb.RecordRequestOutcomeRequest(request_outcome=outcome)
        await self._call("RecordRequestOutcome", request, pb.RequestOutcome)

    async def get_outcome(self, name: str) -> pb.RequestOutcome:
        """How the request ended; NOT_FOUND if it is not (or no longer) known."""
        request = pb.GetRequestOutcomeRequest(name=name)
        return await self._call("GetRequestOutcome", request, pb.RequestOutcome)
