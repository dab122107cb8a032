"""The one domain-error -> google.rpc.Status table, entry by entry."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from jobcontrol.service.core.errors import CODE_OF, Code, DomainError, FieldViolation, Reason
from jobcontrol.service.rpc.errors import DOMAIN, STATUS_OF, to_status


def test_every_reason_has_a_code_and_every_code_a_grpc_status() -> None:
    """Error table: no reason without a canonical code, no code without a gRPC status."""
    assert set(CODE_OF) == set(Reason)
    assert set(STATUS_OF) == set(Code)
    for code, status in STATUS_OF.items():
        assert status.name == code.value


@pytest.mark.parametrize("reason", list(Reason), ids=lambda r: r.value)
def test_reason_maps_to_status_with_error_info(reason: Reason) -> None:
    """Error table: each reason becomes its gRPC code with an ErrorInfo of that reason,
    plus the detail its kind calls for."""
    error = DomainError(
        reason,
        "why",
        metadata={"k": "v"},
        violations=[FieldViolation("job.x", "bad")],
        resource="collections/c/jobs/j",
    )
    code, status = to_status(error)
    assert code is STATUS_OF[CODE_OF[reason]]
    assert status.code == code.value[0] and status.message == "why"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (reason.value, DOMAIN, {"k": "v"})
    kinds = {d.type_url.rsplit(".", 1)[-1] for d in status.details}
    assert "BadRequest" in kinds
    expected = {
        grpc.StatusCode.NOT_FOUND: "ResourceInfo",
        grpc.StatusCode.ALREADY_EXISTS: "ResourceInfo",
        grpc.StatusCode.FAILED_PRECONDITION: "PreconditionFailure",
        grpc.StatusCode.ABORTED: "PreconditionFailure",
        grpc.StatusCode.RESOURCE_EXHAUSTED: "QuotaFailure",
    }.get(code)
    if expected:
        assert expected in kinds
