"""The `Tx` methods of the dialects' state (logon sessions, session tasks, request
outcomes), as a mixin of SqlTx; SQLAlchemy Core statements that run on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, select, tuple_, update

from jobcontrol.service.core.dialect_records import LogonSession, RequestOutcome, SessionTask
from jobcontrol.service.storage.schema import logon_sessions, request_outcomes, session_tasks

if TYPE_CHECKING:
    from jobcontrol.service.storage.repository import Connection

_S, _T, _O = logon_sessions.c, session_tasks.c, request_outcomes.c


def _session_of(row: Any) -> LogonSession:
    return LogonSession(
        dialect=row.dialect,
        session_id=row.session_id,
        user=row.user_name,
        roles=list(row.roles),
        idle_us=row.idle_us,
        create_time=row.create_time,
        seen_time=row.seen_time,
    )


def _task_of(row: Any) -> SessionTask:
    return SessionTask(
        dialect=row.dialect,
        session_id=row.session_id,
        number=row.number,
        operation=row.operation,
        operation_name=row.operation_name,
        result=(bool(row.success), row.message) if row.finished else None,
        create_time=row.create_time,
    )


def _one_session(dialect: str, session_id: str) -> Any:
    return and_(_S.dialect == dialect, _S.session_id == session_id)


def _tasks_of(dialect: str, session_id: str) -> Any:
    return and_(_T.dialect == dialect, _T.session_id == session_id)


class DialectStateTx:
    """Logon sessions, session tasks and request outcomes on SqlTx's connection."""

    conn: Connection

    async def insert_logon_session(self, session: LogonSession) -> bool:
        where = _one_session(session.dialect, session.session_id)
        if (await self.conn.execute(select(_S.session_id).where(where))).first() is not None:
            return False
        await self.conn.execute(
            insert(logon_sessions).values(
                dialect=session.dialect,
                session_id=session.session_id,
                user_name=session.user,
                roles=session.roles,
                idle_us=session.idle_us,
                create_time=session.create_time,
                seen_time=session.seen_time,
                expire_time=session.expire_time,
            )
        )
        return True

    async def get_logon_session(self, dialect: str, session_id: str) -> LogonSession | None:
        found = await self.conn.execute(
            select(logon_sessions).where(_one_session(dialect, session_id))
        )
        row = found.first()
        return None if row is None else _session_of(row)

    async def touch_logon_session(
        self, dialect: str, session_id: str, seen: int, expire: int
    ) -> bool:
        # only a session still live at `seen` is refreshed (an expired one stays expired)
        result = await self.conn.execute(
            update(logon_sessions)
            .where(_one_session(dialect, session_id), _S.expire_time >= seen)
            .values(seen_time=seen, expire_time=expire)
        )
        return bool(result.rowcount)

    async def delete_logon_session(self, dialect: str, session_id: str) -> bool:
        await self.conn.execute(delete(session_tasks).where(_tasks_of(dialect, session_id)))
        result = await self.conn.execute(
            delete(logon_sessions).where(_one_session(dialect, session_id))
        )
        return bool(result.rowcount)

    async def insert_session_task(self, task: SessionTask, keep: int) -> int:
        result = await self.conn.execute(
            insert(session_tasks)
            .values(
                dialect=task.dialect,
                session_id=task.session_id,
                operation=task.operation,
                operation_name=task.operation_name,
                finished=task.result is not None,
                success=bool(task.result and task.result[0]),
                message=task.result[1] if task.result else "",
                create_time=task.create_time,
            )
            .returning(_T.number)
        )
        number = int(result.scalar_one())
        # the session keeps its newest `keep` tasks
        oldest_kept = (
            select(_T.number)
            .where(_tasks_of(task.dialect, task.session_id))
            .order_by(_T.number.desc())
            .offset(keep - 1)
            .limit(1)
            .scalar_subquery()
        )
        await self.conn.execute(
            delete(session_tasks).where(
                _tasks_of(task.dialect, task.session_id), _T.number < oldest_kept
            )
        )
        return number

    async def get_session_task(
        self, dialect: str, session_id: str, number: int
    ) -> SessionTask | None:
        found = await self.conn.execute(
            select(session_tasks).where(_tasks_of(dialect, session_id), _T.number == number)
        )
        row = found.first()
        return None if row is None else _task_of(row)

    async def list_session_tasks(
        self, dialect: str, session_id: str, after: int, limit: int
    ) -> list[SessionTask]:
        found = await self.conn.execute(
            select(session_tasks)
            .where(_tasks_of(dialect, session_id), _T.number > after)
            .order_by(_T.number)
            .limit(limit)
        )
        return [_task_of(row) for row in found.all()]

    async def finish_session_task(
        self, dialect: str, session_id: str, number: int, result: tuple[bool, str]
    ) -> None:
        # the first result wins: a finished task is left as it is
        await self.conn.execute(
            update(session_tasks)
            .where(_tasks_of(dialect, session_id), _T.number == number, _T.finished.is_(False))
            .values(finished=True, success=result[0], message=result[1])
        )

    async def delete_session_task(self, dialect: str, session_id: str, number: int) -> bool:
        result = await self.conn.execute(
            delete(session_tasks).where(_tasks_of(dialect, session_id), _T.number == number)
        )
        return bool(result.rowcount)

    async def put_outcome(self, outcome: RequestOutcome) -> None:
        await self.conn.execute(
            delete(request_outcomes).where(
                _O.dialect == outcome.dialect,
                _O.scope == outcome.scope,
                _O.request_id == outcome.request_id,
            )
        )
        await self.conn.execute(
            insert(request_outcomes).values(
                dialect=outcome.dialect,
                scope=outcome.scope,
                request_id=outcome.request_id,
                http_status=outcome.http_status,
                error_code=outcome.error_code,
                error_message=outcome.error_message,
                create_time=outcome.create_time,
            )
        )

    async def get_outcome(
        self, dialect: str, scope: str, request_id: str, since: int
    ) -> RequestOutcome | None:
        found = await self.conn.execute(
            select(request_outcomes).where(
                _O.dialect == dialect,
                _O.scope == scope,
                _O.request_id == request_id,
                _O.create_time >= since,
            )
        )
        row = found.first()
        if row is None:
            return None
        return RequestOutcome(
            row.dialect,
            row.scope,
            row.request_id,
            row.http_status,
            row.error_code,
            row.error_message,
            row.create_time,
        )

    async def expire_dialect_state(self, now: int, outcomes_before: int) -> int:
        expired = select(_S.dialect, _S.session_id).where(_S.expire_time < now)
        tasks = await self.conn.execute(
            delete(session_tasks).where(tuple_(_T.dialect, _T.session_id).in_(expired))
        )
        sessions = await self.conn.execute(delete(logon_sessions).where(_S.expire_time < now))
        outcomes = await self.conn.execute(
            delete(request_outcomes).where(_O.create_time < outcomes_before)
        )
        return sum(r.rowcount or 0 for r in (tasks, sessions, outcomes))
