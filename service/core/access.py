"""Who may do what: the principal of a call, the permission every RPC needs, the roles a
policy binds principals to on collections, and the one decision. The rpc layer
authenticates (tokens, certificates, a gateway's assertion); everything here decides."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field

from jobcontrol.service.core.errors import DomainError, Reason

ANONYMOUS = "anonymous"
GLOBAL = "*"

# --- permissions -----------------------------------------------------------------------

COLLECTIONS_CREATE = "jobcontrol.collections.create"
COLLECTIONS_GET = "jobcontrol.collections.get"
COLLECTIONS_LIST = "jobcontrol.collections.list"
COLLECTIONS_UPDATE = "jobcontrol.collections.update"
COLLECTIONS_DELETE = "jobcontrol.collections.delete"
JOBS_CREATE = "jobcontrol.jobs.create"
JOBS_GET = "jobcontrol.jobs.get"
JOBS_LIST = "jobcontrol.jobs.list"
JOBS_UPDATE = "jobcontrol.jobs.update"
JOBS_DELETE = "jobcontrol.jobs.delete"
JOBS_PAUSE = "jobcontrol.jobs.pause"
JOBS_RUN = "jobcontrol.jobs.run"
JOBS_TERMINATE = "jobcontrol.jobs.terminate"
JOBS_TRANSITION = "jobcontrol.jobs.transition"
HISTORY_LIST = "jobcontrol.history.list"
HISTORY_RECORD = "jobcontrol.history.record"
TASKS_CREATE = "jobcontrol.tasks.create"
TASKS_GET = "jobcontrol.tasks.get"
TASKS_LIST = "jobcontrol.tasks.list"
TASKS_TRANSITION = "jobcontrol.tasks.transition"
OPERATIONS_GET = "jobcontrol.operations.get"
OPERATIONS_LIST = "jobcontrol.operations.list"
OPERATIONS_CANCEL = "jobcontrol.operations.cancel"
OPERATIONS_DELETE = "jobcontrol.operations.delete"
DIAGNOSTICS_ECHO = "jobcontrol.diagnostics.echo"
IMPERSONATE = "jobcontrol.principals.impersonate"
# what a gateway keeps for its dialects' clients (logon sessions, their tasks, outcomes)
DIALECT_SESSIONS = "jobcontrol.dialects.sessions"
DIALECT_TASKS = "jobcontrol.dialects.tasks"
DIALECT_OUTCOMES = "jobcontrol.dialects.outcomes"
# work done outside the service (WorkerService): global permissions, held by workers
WORK_LEASE = "jobcontrol.work.lease"
WORK_REPORT = "jobcontrol.work.report"

_JOBS = "/jobcontrol.v1.JobService/"
_OPERATOR = "/jobcontrol.v1.OperatorService/"
_OPERATIONS = "/google.longrunning.Operations/"
_STATE = "/jobcontrol.v1.DialectStateService/"
_WORKER = "/jobcontrol.v1.WorkerService/"
# The permission of every RPC, by full method. A method missing here is refused.
PERMISSIONS: Mapping[str, str] = {
    _JOBS + "CreateCollection": COLLECTIONS_CREATE,
    _JOBS + "GetCollection": COLLECTIONS_GET,
    _JOBS + "ListCollections": COLLECTIONS_LIST,
    _JOBS + "UpdateCollection": COLLECTIONS_UPDATE,
    _JOBS + "DeleteCollection": COLLECTIONS_DELETE,
    _JOBS + "CreateJob": JOBS_CREATE,
    _JOBS + "GetJob": JOBS_GET,
    _JOBS + "ListJobs": JOBS_LIST,
    _JOBS + "UpdateJob": JOBS_UPDATE,
    _JOBS + "DeleteJob": JOBS_DELETE,
    _JOBS + "DeleteJobs": JOBS_DELETE,
    _JOBS + "PauseJob": JOBS_PAUSE,
    _JOBS + "ResumeJob": JOBS_PAUSE,
    _JOBS + "ToggleJob": JOBS_PAUSE,
    _JOBS + "TerminateJob": JOBS_TERMINATE,
    _JOBS + "StartJob": JOBS_RUN,
    _JOBS + "StopJob": JOBS_RUN,
    _JOBS + "RetryJob": JOBS_RUN,
    _JOBS + "ListJobHistory": HISTORY_LIST,
    _JOBS + "CreateTask": TASKS_CREATE,
    _JOBS + "GetTask": TASKS_GET,
    _JOBS + "ListTasks": TASKS_LIST,
    _JOBS + "CountTasks": TASKS_LIST,
    _OPERATOR + "TransitionJob": JOBS_TRANSITION,
    _OPERATOR + "TransitionTask": TASKS_TRANSITION,
    _OPERATOR + "RecordRun": HISTORY_RECORD,
    _OPERATIONS + "GetOperation": OPERATIONS_GET,
    _OPERATIONS + "WaitOperation": OPERATIONS_GET,
    _OPERATIONS + "ListOperations": OPERATIONS_LIST,
    _OPERATIONS + "CancelOperation": OPERATIONS_CANCEL,
    _OPERATIONS + "DeleteOperation": OPERATIONS_DELETE,
    "/jobcontrol.v1.DiagnosticsService/Echo": DIAGNOSTICS_ECHO,
    _STATE + "CreateLogonSession": DIALECT_SESSIONS,
    _STATE + "GetLogonSession": DIALECT_SESSIONS,
    _STATE + "DeleteLogonSession": DIALECT_SESSIONS,
    _STATE + "CreateSessionTask": DIALECT_TASKS,
    _STATE + "GetSessionTask": DIALECT_TASKS,
    _STATE + "ListSessionTasks": DIALECT_TASKS,
    _STATE + "FinishSessionTask": DIALECT_TASKS,
    _STATE + "DeleteSessionTask": DIALECT_TASKS,
    _STATE + "RecordRequestOutcome": DIALECT_OUTCOMES,
    _STATE + "GetRequestOutcome": DIALECT_OUTCOMES,
    _WORKER + "LeaseWork": WORK_LEASE,
    _WORKER + "Heartbeat": WORK_REPORT,
    _WORKER + "CompleteWork": WORK_REPORT,
    _WORKER + "FailWork": WORK_REPORT,
    _WORKER + "ReleaseWork": WORK_REPORT,
}
# answered for anyone (load balancers' health checks)
PUBLIC = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
# answered for any authenticated principal: lists (filtered to what it may see), the
# echo, and server reflection
ANY_PRINCIPAL = frozenset({COLLECTIONS_LIST, OPERATIONS_LIST, DIAGNOSTICS_ECHO})

# --- roles -----------------------------------------------------------------------------

_READ = frozenset(
    {
        COLLECTIONS_GET, COLLECTIONS_LIST, JOBS_GET, JOBS_LIST, HISTORY_LIST, TASKS_GET,
        TASKS_LIST, OPERATIONS_GET, OPERATIONS_LIST, DIAGNOSTICS_ECHO,
    }
)  # fmt: skip
_RUN = frozenset({JOBS_PAUSE, JOBS_RUN, JOBS_TERMINATE})
_OPERATE = frozenset({JOBS_TRANSITION, TASKS_TRANSITION, HISTORY_RECORD})
_WRITE = frozenset(
    {JOBS_CREATE, JOBS_UPDATE, JOBS_DELETE, TASKS_CREATE, OPERATIONS_CANCEL, OPERATIONS_DELETE,
     COLLECTIONS_CREATE}
)  # fmt: skip
_MANAGE = frozenset({COLLECTIONS_UPDATE, COLLECTIONS_DELETE})
# a gateway's dialect state: global permissions (no collection), for gateways and admins
_DIALECT_STATE = frozenset({DIALECT_SESSIONS, DIALECT_TASKS, DIALECT_OUTCOMES})
# a worker's: lease work of any collection and report on it (bound on "*")
_WORK = frozenset({WORK_LEASE, WORK_REPORT})
# what each role may do on the collections it is bound to
ROLES: Mapping[str, frozenset[str]] = {
    "viewer": _READ,
    "operator": _READ | _RUN | _OPERATE,
    "editor": _READ | _RUN | _WRITE,
    "owner": _READ | _RUN | _WRITE | _MANAGE,
    "admin": _READ | _RUN | _OPERATE | _WRITE | _MANAGE | _DIALECT_STATE | _WORK,
    # a gateway: asserts the principals it authenticated itself and keeps its dialects'
    # state (bound on "*")
    "impersonator": frozenset({IMPERSONATE}) | _DIALECT_STATE,
    # runs work outside the service (WorkerService), bound on "*"
    "worker": _WORK,
}
# the role a collection's owner (the principal that created it) has on it
OWNER_ROLE = "owner"


@dataclass(frozen=True)
class Grant:
    """A role on the collections whose id matches `collections` (a name or a glob)."""

    role: str
    collections: str = GLOBAL

    def covers(self, collection_id: str) -> bool:
        return fnmatch.fnmatchcase(collection_id, self.collections)


@dataclass(frozen=True)
class Principal:
    """Who makes a call. `grants` are asserted for this one call by a gateway that holds
    the credentials of the dialect's users (accounts, sessions, certificates)."""

    id: str
    grants: tuple[Grant, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.id == ANONYMOUS


@dataclass(frozen=True)
class Call:
    """What the core knows of the call it serves: set per call by the rpc layer."""

    principal: Principal = field(default_factory=lambda: Principal(ANONYMOUS))
    method: str = ""
    # the name the request addresses (its scope for request ids)
    resource: str = ""
    # a digest of the request without its request_id (a reused id must repeat it)
    fingerprint: str = ""


current: ContextVar[Call] = ContextVar("jobcontrol_call")
_OUTSIDE = Call()


def call() -> Call:
    """The call being served (an anonymous one outside the rpc layer)."""
    return current.get(_OUTSIDE)


@dataclass(frozen=True)
class Binding:
    """Principals bound to a role on collections (names or globs)."""

    principals: frozenset[str]
    role: str
    collections: tuple[str, ...] = (GLOBAL,)


@dataclass(frozen=True)
class Policy:
    """The bindings of a policy file. `open`: no authentication is configured, and every
    caller is an anonymous administrator (the loopback-only development mode)."""

    bindings: tuple[Binding, ...] = ()
    open: bool = False

    def grants_of(self, principal: Principal) -> Iterable[Grant]:
        """Every grant the principal holds: the policy's, then those asserted for it."""
        if self.open and principal.anonymous:
            yield Grant("admin")
        for binding in self.bindings:
            if principal.id in binding.principals or GLOBAL in binding.principals:
                for pattern in binding.collections:
                    yield Grant(binding.role, pattern)
        yield from principal.grants

    def allows(self, principal: Principal, permission: str, collection_id: str | None) -> bool:
        """Whether a grant gives `permission` on the collection (None: a global permission,
        which only a grant on every collection, "*", gives)."""
        for grant in self.grants_of(principal):
            if permission not in ROLES.get(grant.role, ()):
                continue
            if collection_id is None:
                if grant.collections == GLOBAL:
                    return True
            elif grant.covers(collection_id):
                return True
        return False


def denied(permission: str, resource: str) -> DomainError:
    """PERMISSION_DENIED, worded so that it does not tell whether the resource exists."""
    where = resource or "this service"
    return DomainError(
        Reason.PERMISSION_DENIED,
        f"permission {permission} denied on {where} (or it does not exist)",
        metadata={"permission": permission, "resource": where},
        resource=where,
    )


def unauthenticated(message: str) -> DomainError:
    """UNAUTHENTICATED: no credentials, or credentials that do not verify."""
    return DomainError(Reason.UNAUTHENTICATED, message)
