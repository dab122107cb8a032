"""What the gateway's dialects keep between requests, in the database so that every
gateway answers alike: logon sessions (by the digest of their token), the tasks of a
session (numbered by the database), and the outcomes of requests."""

from __future__ import annotations

import re

from jobcontrol.service.core import pages
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.dialect_records import LogonSession, RequestOutcome, SessionTask
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
from jobcontrol.service.core.model import now_us
from jobcontrol.service.core.ports import Tx

# the tasks a session keeps (the oldest go first)
MAX_TASKS_PER_SESSION = 1000
# A read refreshes a session's expiry only once it was set more than this share of the
# idle timeout ago: at most one write per session every idle/10 (every 90 s at the default
# 15 minutes), at the price of a session ending up to idle/10 before a request-exact clock
# would end it.
REFRESH_FRACTION = 0.1
MAX_IDLE_US = 7 * 24 * 3600 * 1_000_000
_DIALECT = r"[a-z][a-z0-9-]{0,31}"
_DIGEST = r"[0-9a-f]{64}"
_PARENT = re.compile(rf"dialects/({_DIALECT})")
_SESSION = re.compile(rf"dialects/({_DIALECT})/logonSessions/({_DIGEST})")
_TASK = re.compile(rf"dialects/({_DIALECT})/logonSessions/({_DIGEST})/tasks/task-([1-9]\d{{0,17}})")
_OUTCOME = re.compile(rf"dialects/({_DIALECT})/scopes/([^/]{{1,512}})/outcomes/([^/]{{1,512}})")
_LIMITS = {"user": 256, "role": 64, "operation": 64, "operation_name": 1024, "text": 8192}


def _parse(pattern: re.Pattern[str], value: str, path: str, shape: str) -> tuple[str, ...]:
    found = pattern.fullmatch(value)
    if found is None:
        raise bad_field(path, f"must look like {shape}, got {value[:200]!r}")
    return found.groups()


def _session_name(value: str, path: str = "name") -> tuple[str, str]:
    dialect, digest = _parse(_SESSION, value, path, "dialects/{dialect}/logonSessions/{sha256}")
    return dialect, digest


def _task_name(value: str) -> tuple[str, str, int]:
    shape = "dialects/{dialect}/logonSessions/{sha256}/tasks/task-{n}"
    dialect, digest, number = _parse(_TASK, value, "name", shape)
    return dialect, digest, int(number)


def _not_found(reason: Reason, name: str) -> DomainError:
    return DomainError(reason, f"{name} not found", {"name": name}, resource=name)


def _check_text(path: str, value: str, limit: str, required: bool = True) -> None:
    if required and not value:
        raise bad_field(path, "is required", Reason.REQUIRED_FIELD_MISSING)
    if len(value) > _LIMITS[limit]:
        raise bad_field(path, f"longer than {_LIMITS[limit]} characters")


def _check_session(session: LogonSession) -> None:
    _check_text("logon_session.user", session.user, "user")
    if len(session.roles) > 16:
        raise bad_field("logon_session.roles", "more than 16 roles")
    for role in session.roles:
        _check_text("logon_session.roles", role, "role")
    if not 0 < session.idle_us <= MAX_IDLE_US:
        raise bad_field("logon_session.idle_timeout", "must be positive and at most 7 days")


class DialectState:
    """Logon sessions, session tasks and request outcomes."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- logon sessions ---------------------------------------------------------------

    async def create_session(
        self, parent: str, session_id: str, session: LogonSession
    ) -> LogonSession:
        """CreateLogonSession: live from now for its idle timeout."""
        (dialect,) = _parse(_PARENT, parent, "parent", "dialects/{dialect}")
        _parse(re.compile(_DIGEST), session_id, "logon_session_id", "a SHA-256 digest (hex)")
        _check_session(session)
        now = now_us()
        session.dialect, session.session_id = dialect, session_id
        session.create_time = session.seen_time = now
        if not await self.ctx.store.write(lambda tx: tx.insert_logon_session(session)):
            raise DomainError(
                Reason.LOGON_SESSION_ALREADY_EXISTS,
                f"{session.name} already exists",
                {"name": session.name},
                resource=session.name,
            )
        return session

    async def get_session(self, name: str) -> LogonSession:
        """GetLogonSession: a live session, its expiry moved (see REFRESH_FRACTION); an
        expired one is removed and not found."""
        dialect, digest = _session_name(name)
        now = now_us()
        found = await self.ctx.store.read(lambda tx: tx.get_logon_session(dialect, digest))
        if found is not None and found.expire_time < now:
            await self.ctx.store.write(lambda tx: tx.delete_logon_session(dialect, digest))
            found = None
        if found is None:
            raise _not_found(Reason.LOGON_SESSION_NOT_FOUND, name)
        if now - found.seen_time > found.idle_us * REFRESH_FRACTION:
            expire = now + found.idle_us
            touched = await self.ctx.store.write(
                lambda tx: tx.touch_logon_session(dialect, digest, now, expire)
            )
            if not touched:  # logged off (or expired) meanwhile
                raise _not_found(Reason.LOGON_SESSION_NOT_FOUND, name)
            found.seen_time = now
        return found

    async def delete_session(self, name: str, allow_missing: bool) -> None:
        """DeleteLogonSession: the session and its tasks."""
        dialect, digest = _session_name(name)
        deleted = await self.ctx.store.write(lambda tx: tx.delete_logon_session(dialect, digest))
        if not deleted and not allow_missing:
            raise _not_found(Reason.LOGON_SESSION_NOT_FOUND, name)

    # --- session tasks ----------------------------------------------------------------

    async def create_task(self, parent: str, task: SessionTask) -> SessionTask:
        """CreateSessionTask: numbered by the database; the session keeps its newest
        MAX_TASKS_PER_SESSION tasks."""
        dialect, digest = _session_name(parent, "parent")
        _check_text("session_task.operation", task.operation, "operation")
        _check_text("session_task.operation_name", task.operation_name, "operation_name", False)
        if task.result is not None:
            _check_text("session_task.result.message", task.result[1], "text", False)
        task.dialect, task.session_id, task.create_time = dialect, digest, now_us()

        async def run(tx: Tx) -> SessionTask:
            session = await tx.get_logon_session(dialect, digest)
            if session is None or session.expire_time < task.create_time:
                raise _not_found(Reason.LOGON_SESSION_NOT_FOUND, parent)
            task.number = await tx.insert_session_task(task, MAX_TASKS_PER_SESSION)
            return task

        return await self.ctx.store.write(run)

    async def get_task(self, name: str) -> SessionTask:
        """GetSessionTask."""
        dialect, digest, number = _task_name(name)
        found = await self.ctx.store.read(lambda tx: tx.get_session_task(dialect, digest, number))
        if found is None:
            raise _not_found(Reason.SESSION_TASK_NOT_FOUND, name)
        return found

    async def list_tasks(
        self, parent: str, page_size: int, page_token: str
    ) -> tuple[list[SessionTask], str]:
        """ListSessionTasks: oldest first, at most MAX_TASKS_PER_SESSION a page (the
        default: a session's every task)."""
        dialect, digest = _session_name(parent, "parent")
        if page_size < 0:
            raise bad_field("page_size", "must not be negative")
        size = min(page_size or MAX_TASKS_PER_SESSION, MAX_TASKS_PER_SESSION)
        query = ("session-tasks", parent)
        after = pages.decode(query, page_token, (int,))
        start = after[0] if after else 0
        found = await self.ctx.store.read(
            lambda tx: tx.list_session_tasks(dialect, digest, start, size + 1)
        )
        return pages.cut(found, size, query, lambda task: [task.number])

    async def finish_task(self, name: str, result: tuple[bool, str]) -> SessionTask:
        """FinishSessionTask: the first result wins; the task as it then is."""
        dialect, digest, number = _task_name(name)
        _check_text("result.message", result[1], "text", False)

        async def run(tx: Tx) -> SessionTask | None:
            await tx.finish_session_task(dialect, digest, number, result)
            return await tx.get_session_task(dialect, digest, number)

        found = await self.ctx.store.write(run)
        if found is None:
            raise _not_found(Reason.SESSION_TASK_NOT_FOUND, name)
        return found

    async def delete_task(self, name: str, allow_missing: bool) -> None:
        """DeleteSessionTask."""
        dialect, digest, number = _task_name(name)
        deleted = await self.ctx.store.write(
            lambda tx: tx.delete_session_task(dialect, digest, number)
        )
        if not deleted and not allow_missing:
            raise _not_found(Reason.SESSION_TASK_NOT_FOUND, name)

    # --- request outcomes -------------------------------------------------------------

    async def record_outcome(self, name: str, outcome: RequestOutcome) -> RequestOutcome:
        """RecordRequestOutcome of the request `name` names (a record of the same request
        id replaces the older)."""
        shape = "dialects/{dialect}/scopes/{scope}/outcomes/{request_id}"
        outcome.dialect, outcome.scope, outcome.request_id = _parse(
            _OUTCOME, name, "request_outcome.name", shape
        )
        if not 100 <= outcome.http_status <= 599:
            raise bad_field("request_outcome.http_status", "must be an HTTP status (100-599)")
        _check_text("request_outcome.error_code", outcome.error_code, "text", False)
        _check_text("request_outcome.error_message", outcome.error_message, "text", False)
        outcome.create_time = now_us()
        await self.ctx.store.write(lambda tx: tx.put_outcome(outcome))
        return outcome

    async def get_outcome(self, name: str) -> RequestOutcome:
        """GetRequestOutcome: recorded within the idempotency window."""
        shape = "dialects/{dialect}/scopes/{scope}/outcomes/{request_id}"
        dialect, scope, request_id = _parse(_OUTCOME, name, "name", shape)
        since = now_us() - int(self.ctx.idempotency_window * 1_000_000)
        found = await self.ctx.store.read(
            lambda tx: tx.get_outcome(dialect, scope, request_id, since)
        )
        if found is None:
            raise _not_found(Reason.REQUEST_OUTCOME_NOT_FOUND, name)
        return found
