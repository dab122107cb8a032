"""Veeam users (from configuration), logon tokens and tasks as the dialect sees them
(dialects.md §4). The sessions and their tasks are kept by the core
(gateway/dialect_state.py), so that a token works on every gateway: the core knows a
session by the SHA-256 digest of its token, never the token itself.

A session token is the base64 text of a random UUID (as Enterprise Manager issues them)
and lives until log off or `idle` seconds without a request. Tasks belong to the session
that created them. Passwords are compared in constant time and never logged or kept beyond
the user table.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import uuid
from dataclasses import dataclass, field

from jobcontrol.v1 import session_service_pb2 as pb

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


@dataclass
class Session:
    """A live session: its token (the LogonSession's id) and its user; `expires` is when
    the core would end it (seconds since the epoch)."""

    id: str
    user: User
    expires: float = 0.0


def verify(users: dict[str, User], name: str, password: str) -> User | None:
    """The user whose name and password these are, or None."""
    user = users.get(name)
    # compare even for an unknown user, so timing does not tell names apart
    expected = user.password if user is not None else "\0" * len(password)
    same = hmac.compare_digest(expected.encode(), password.encode())
    return user if user is not None and same else None


def new_token() -> str:
    """A session token as Enterprise Manager issues them: base64 of a random UUID."""
    return base64.b64encode(str(uuid.uuid4()).encode()).decode()


def session_of(token: str, message: pb.LogonSession) -> Session | None:
    """The session the core returned (None if its stored role is none of ROLES)."""
    role = message.roles[0] if message.roles else ""
    if role not in ROLES:
        return None
    expires = message.expire_time.ToMicroseconds() / 1_000_000
    return Session(token, User(message.user, "", role), expires)


def task_of(message: pb.SessionTask) -> TaskRecord:
    """The task the core returned (its id is the last segment of its name)."""
    result = (message.result.success, message.result.message)
    return TaskRecord(
        message.name.rsplit("/", 1)[-1],
        message.operation,
        message.operation_name,
        result if message.HasField("result") else None,
    )


def unresolved(tasks: list[TaskRecord], limit: int) -> list[TaskRecord]:
    """The newest `limit` unresolved deletion tasks, oldest first."""
    found = [task for task in reversed(tasks) if task.unresolved][:limit]
    return found[::-1]
