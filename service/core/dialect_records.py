"""What the gateway's dialects keep in the core: logon sessions, their tasks, outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LogonSession:
    """A dialect's logon session, known by the SHA-256 digest of its token (never the
    token). Times are microseconds since the epoch, on the server's clock."""

    dialect: str
    session_id: str
    user: str
    roles: list[str] = field(default_factory=list)
    idle_us: int = 0
    create_time: int = 0
    # when the expiry was last moved (a request refreshes it, see dialect_state.py)
    seen_time: int = 0

    @property
    def name(self) -> str:
        return f"dialects/{self.dialect}/logonSessions/{self.session_id}"

    @property
    def expire_time(self) -> int:
        return self.seen_time + self.idle_us


@dataclass
class SessionTask:
    """A task of a session, `task-<number>`; `result` (success, message) once finished."""

    dialect: str
    session_id: str
    number: int
    operation: str
    operation_name: str = ""
    result: tuple[bool, str] | None = None
    create_time: int = 0

    @property
    def name(self) -> str:
        return f"dialects/{self.dialect}/logonSessions/{self.session_id}/tasks/task-{self.number}"


@dataclass
class RequestOutcome:
    """How a request of a scope (an Azure subscription) ended, by its request id."""

    dialect: str
    scope: str
    request_id: str
    http_status: int
    error_code: str = ""
    error_message: str = ""
    create_time: int = 0

    @property
    def name(self) -> str:
        return f"dialects/{self.dialect}/scopes/{self.scope}/outcomes/{self.request_id}"
