"""Veeam logon sessions and their tasks, held by the gateway process (dialects.md §4).

Users and roles come from configuration; a session token is the base64 text of a random
UUID (as Enterprise Manager issues them) and lives until log off or `idle` seconds without a
request. Tasks belong to the session that created them. Passwords are compared in constant
time and never logged or kept beyond the user table.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

# tasks a session keeps (the oldest go first)
MAX_TASKS = 1000


# Enterprise Manager's roles and the core role each one holds on the dialect's collection
# (service/core/access.py ROLES): viewers read; operators also start, stop, retry and
# toggle; administrators also delete jobs and cancel deletions. The core decides.
ROLES: dict[str, str] = {
    "viewer": "viewer",
    "operator": "operator",
    "administrator": "editor",
}


@dataclass(frozen=True)
class User:
    name: str
    password: str = field(repr=False)
    role: str = "administrator"

    @property
    def core_role(self) -> str:
        """The role the core grants this user on the dialect's collection."""
        return ROLES[self.role]


def parse_users(users: str, roles: str = "") -> dict[str, User]:
    """`user:password[,…]` (the password is everything after the first `:`) and
    `user=role[,…]`; SystemExit on a malformed entry (the secret is never echoed)."""
    role_of: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in roles.split(","))):
        name, sep, role = item.partition("=")
        if not sep or role.strip() not in ROLES:
            raise SystemExit(f"JOBCONTROL_VEEAM_ROLES: {item!r}: expected user=" + "|".join(ROLES))
        role_of[name.strip()] = role.strip()
    table: dict[str, User] = {}
    for index, item in enumerate(filter(None, (p.strip() for p in users.split(","))), 1):
        name, sep, password = item.partition(":")
        if not sep or not name or not password:
            raise SystemExit(f"JOBCONTROL_VEEAM_USERS: entry {index} is not user:password")
        table[name] = User(name, password, role_of.get(name, "administrator"))
    unknown = set(role_of) - set(table)
    if unknown:
        raise SystemExit(f"JOBCONTROL_VEEAM_ROLES: unknown users {sorted(unknown)}")
    return table


def decode_basic(authorization: str) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic …` value (the password is everything
    after the first `:`), or None if it is not one."""
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


@dataclass
class TaskRecord:
    """A task: a finished action (`result` set at once) or a deletion's Operation."""

    task_id: str
    operation: str
    operation_name: str = ""
    # (success, message) once finished
    result: tuple[bool, str] | None = None

    @property
    def unresolved(self) -> bool:
        """A deletion whose outcome the gateway has not seen yet (it asks the server)."""
        return self.result is None and bool(self.operation_name)

    def finish(self, result: tuple[bool, str] | None) -> None:
        """Record the outcome once: the first one seen stays (concurrent readers of the same
        Operation agree anyway; a cancellation seen first is not overwritten)."""
        if self.result is None and result is not None:
            self.result = result


@dataclass
class Session:
    id: str
    user: User
    last_seen: float
    tasks: OrderedDict[str, TaskRecord] = field(default_factory=OrderedDict)

    def unresolved(self, limit: int) -> list[TaskRecord]:
        """The newest `limit` unresolved deletion tasks, oldest first."""
        found = [task for task in reversed(self.tasks.values()) if task.unresolved][:limit]
        return found[::-1]


class Sessions:
    """Live sessions by token, expiring after `idle` seconds without a request."""

    def __init__(
        self, users: dict[str, User], idle: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.users = users
        self.idle = idle
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._task_ids = itertools.count(1)

    def verify(self, name: str, password: str) -> User | None:
        """The user whose name and password these are, or None."""
        user = self.users.get(name)
        # compare even for an unknown user, so timing does not tell names apart
        expected = user.password if user is not None else "\0" * len(password)
        same = hmac.compare_digest(expected.encode(), password.encode())
        return user if user is not None and same else None

    def logon(self, user: User) -> Session:
        """A new session for `user` (expired ones are dropped first)."""
        now = self.clock()
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > self.idle]:
            del self._sessions[token]
        token = base64.b64encode(str(uuid.uuid4()).encode()).decode()
        session = self._sessions[token] = Session(token, user, now)
        return session

    def find(self, token: str) -> Session | None:
        """The live session of `token`, refreshed; None if unknown or expired."""
        session = self._sessions.get(token)
        if session is None:
            return None
        now = self.clock()
        if now - session.last_seen > self.idle:
            del self._sessions[token]
            return None
        session.last_seen = now
        return session

    def logoff(self, token: str) -> None:
        """End the session (its tasks go with it)."""
        self._sessions.pop(token, None)

    def add_task(
        self,
        session: Session,
        operation: str,
        operation_name: str = "",
        result: tuple[bool, str] | None = None,
    ) -> TaskRecord:
        """A new task of `session` (`task-N`, numbered across the gateway)."""
        task = TaskRecord(f"task-{next(self._task_ids)}", operation, operation_name, result)
        session.tasks[task.task_id] = task
        while len(session.tasks) > MAX_TASKS:
            session.tasks.popitem(last=False)
        return task
