"""The domain error taxonomy: one reason per refusal, each with its canonical code."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Code(enum.Enum):
    """Canonical codes (google.rpc.Code names) the edges translate."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    ABORTED = "ABORTED"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    UNAVAILABLE = "UNAVAILABLE"
    INTERNAL = "INTERNAL"


class Reason(enum.Enum):
    """Stable `ErrorInfo.reason` values; `CODE_OF` gives each its canonical code."""

    # bad input
    INVALID_FIELD = "INVALID_FIELD"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_FILTER = "INVALID_FILTER"
    INVALID_UPDATE_MASK = "INVALID_UPDATE_MASK"
    FORBIDDEN_FIELD = "FORBIDDEN_FIELD"
    FIELD_IMMUTABLE = "FIELD_IMMUTABLE"
    REQUIRED_FIELD_MISSING = "REQUIRED_FIELD_MISSING"
    SPEC_PROFILE_MISMATCH = "SPEC_PROFILE_MISMATCH"
    STATE_NOT_SETTABLE = "STATE_NOT_SETTABLE"
    FIELD_VALUE_NOT_ALLOWED = "FIELD_VALUE_NOT_ALLOWED"
    # existence
    COLLECTION_NOT_FOUND = "COLLECTION_NOT_FOUND"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"
    TASK_NOT_FOUND = "TASK_NOT_FOUND"
    OPERATION_NOT_FOUND = "OPERATION_NOT_FOUND"
    COLLECTION_ALREADY_EXISTS = "COLLECTION_ALREADY_EXISTS"
    JOB_ALREADY_EXISTS = "JOB_ALREADY_EXISTS"
    TASK_ALREADY_EXISTS = "TASK_ALREADY_EXISTS"
    # concurrency and conditions
    ETAG_MISMATCH = "ETAG_MISMATCH"
    CONDITION_NOT_MET = "CONDITION_NOT_MET"
    # lifecycle
    JOB_BEING_DELETED = "JOB_BEING_DELETED"
    JOB_BEING_TERMINATED = "JOB_BEING_TERMINATED"
    JOB_COMPLETED = "JOB_COMPLETED"
    JOB_FAULTED = "JOB_FAULTED"
    JOB_NOT_DELETABLE_IN_STATE = "JOB_NOT_DELETABLE_IN_STATE"
    JOB_TYPE_NOT_DELETABLE = "JOB_TYPE_NOT_DELETABLE"
    JOB_TYPE_MISMATCH = "JOB_TYPE_MISMATCH"
    INVALID_STATE_TRANSITION = "INVALID_STATE_TRANSITION"
    OPERATION_INVALID_FOR_STATE = "OPERATION_INVALID_FOR_STATE"
    OPERATION_NOT_SUPPORTED = "OPERATION_NOT_SUPPORTED"
    FIELD_NOT_MUTABLE_IN_STATE = "FIELD_NOT_MUTABLE_IN_STATE"
    SHIPPING_INFO_REQUIRED = "SHIPPING_INFO_REQUIRED"
    RETRY_NOT_ALLOWED = "RETRY_NOT_ALLOWED"
    OPERATION_NOT_CANCELLABLE = "OPERATION_NOT_CANCELLABLE"
    OPERATION_NOT_DONE = "OPERATION_NOT_DONE"
    # quotas
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    RECURRENCE_QUOTA_EXCEEDED = "RECURRENCE_QUOTA_EXCEEDED"
    # the service itself
    STORAGE_UNAVAILABLE = "STORAGE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


CODE_OF: dict[Reason, Code] = {
    # bad input
    Reason.INVALID_FIELD: Code.INVALID_ARGUMENT,
    Reason.INVALID_PAGE_TOKEN: Code.INVALID_ARGUMENT,
    Reason.INVALID_FILTER: Code.INVALID_ARGUMENT,
    Reason.INVALID_UPDATE_MASK: Code.INVALID_ARGUMENT,
    Reason.FORBIDDEN_FIELD: Code.INVALID_ARGUMENT,
    Reason.FIELD_IMMUTABLE: Code.INVALID_ARGUMENT,
    Reason.REQUIRED_FIELD_MISSING: Code.INVALID_ARGUMENT,
    Reason.SPEC_PROFILE_MISMATCH: Code.INVALID_ARGUMENT,
    Reason.STATE_NOT_SETTABLE: Code.INVALID_ARGUMENT,
    Reason.FIELD_VALUE_NOT_ALLOWED: Code.INVALID_ARGUMENT,
    # existence
    Reason.COLLECTION_NOT_FOUND: Code.NOT_FOUND,
    Reason.JOB_NOT_FOUND: Code.NOT_FOUND,
    Reason.TASK_NOT_FOUND: Code.NOT_FOUND,
    Reason.OPERATION_NOT_FOUND: Code.NOT_FOUND,
    Reason.COLLECTION_ALREADY_EXISTS: Code.ALREADY_EXISTS,
    Reason.JOB_ALREADY_EXISTS: Code.ALREADY_EXISTS,
    Reason.TASK_ALREADY_EXISTS: Code.ALREADY_EXISTS,
    # concurrency and conditions
    Reason.ETAG_MISMATCH: Code.ABORTED,
    Reason.CONDITION_NOT_MET: Code.ABORTED,
    # lifecycle
    Reason.JOB_BEING_DELETED: Code.FAILED_PRECONDITION,
    Reason.JOB_BEING_TERMINATED: Code.FAILED_PRECONDITION,
    Reason.JOB_COMPLETED: Code.FAILED_PRECONDITION,
    Reason.JOB_FAULTED: Code.FAILED_PRECONDITION,
    Reason.JOB_NOT_DELETABLE_IN_STATE: Code.FAILED_PRECONDITION,
    Reason.JOB_TYPE_NOT_DELETABLE: Code.FAILED_PRECONDITION,
    Reason.JOB_TYPE_MISMATCH: Code.FAILED_PRECONDITION,
    Reason.INVALID_STATE_TRANSITION: Code.FAILED_PRECONDITION,
    Reason.OPERATION_INVALID_FOR_STATE: Code.FAILED_PRECONDITION,
    Reason.OPERATION_NOT_SUPPORTED: Code.FAILED_PRECONDITION,
    Reason.FIELD_NOT_MUTABLE_IN_STATE: Code.FAILED_PRECONDITION,
    Reason.SHIPPING_INFO_REQUIRED: Code.FAILED_PRECONDITION,
    Reason.RETRY_NOT_ALLOWED: Code.FAILED_PRECONDITION,
    Reason.OPERATION_NOT_CANCELLABLE: Code.FAILED_PRECONDITION,
    Reason.OPERATION_NOT_DONE: Code.FAILED_PRECONDITION,
    # quotas
    Reason.QUOTA_EXCEEDED: Code.RESOURCE_EXHAUSTED,
    Reason.RECURRENCE_QUOTA_EXCEEDED: Code.RESOURCE_EXHAUSTED,
    # the service itself
    Reason.STORAGE_UNAVAILABLE: Code.UNAVAILABLE,
    Reason.INTERNAL_ERROR: Code.INTERNAL,
}


@dataclass
class FieldViolation:
    """One offending request field (google.rpc.BadRequest.FieldViolation)."""

    field: str
    description: str


@dataclass
class DomainError(Exception):
    """A refusal by the core: a reason, a message and structured detail."""

    reason: Reason
    message: str
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)
    resource: str = ""

    def __post_init__(self) -> None:
        super().__init__(self.message)

    @property
    def code(self) -> Code:
        """The canonical code of the reason."""
        return CODE_OF[self.reason]


def bad_field(path: str, description: str, reason: Reason = Reason.INVALID_FIELD) -> DomainError:
    """An INVALID_ARGUMENT-class error about one field."""
    return DomainError(
        reason,
        f"{path}: {description}",
        metadata={"field": path},
        violations=[FieldViolation(path, description)],
    )
