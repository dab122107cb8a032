"""Route rows: each names the one RPC it runs, a pure `build` (request -> proto message) and
a pure `render` (reply -> response), and its success status."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from google.longrunning import operations_pb2
from google.protobuf import descriptor, message_factory
from google.protobuf.message import Message

from jobcontrol.gateway import templates
from jobcontrol.gateway.dialects.error_table import ErrorRow
from jobcontrol.v1 import job_service_pb2

if TYPE_CHECKING:
    from jobcontrol.gateway.dialect_state import DialectState
    from jobcontrol.gateway.dialects.incoming import Incoming
    from jobcontrol.gateway.http import Response

# the services whose methods dialect rows may name, by short method name
_SERVICES = (
    job_service_pb2.DESCRIPTOR.services_by_name["JobService"],
    operations_pb2.DESCRIPTOR.services_by_name["Operations"],
)


@dataclass(frozen=True)
class Rpc:
    """A unary method of the jobcontrol server: its full path and reply type."""

    path: str
    reply: type[Message]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def method_rpc(method: descriptor.MethodDescriptor) -> Rpc:
    """The Rpc of a method descriptor."""
    return Rpc(
        f"/{method.containing_service.full_name}/{method.name}",
        message_factory.GetMessageClass(method.output_type),
    )


@functools.cache
def rpc(name: str) -> Rpc:
    """A JobService or google.longrunning.Operations method by name ("GetJob",
    "GetOperation"); an unknown name fails when the route table is built."""
    for service in _SERVICES:
        method = service.methods_by_name.get(name)
        if method is not None:
            return method_rpc(method)
    raise KeyError(f"no JobService or Operations method named {name!r}")


Build = Callable[["Incoming"], Message | None]
Render = Callable[["Incoming", Any], "Response"]
# what a row keeps in the core beside its call (dialect_state.py): `load` runs before
# `build`, `save` after the call (with its reply), before `render`
Load = Callable[["Incoming", "DialectState"], Awaitable[None]]
Save = Callable[["Incoming", Any, "DialectState"], Awaitable[None]]
NO_ERRORS: Mapping[str, ErrorRow] = MappingProxyType({})


@dataclass(frozen=True)
class Route:
    """A row of a dialect's route table. `handle` runs `build` -> the call of `rpc` ->
    `render` with the call's own reply. `build` may return None (nothing to ask the server,
    e.g. a task already known to be finished): `render` then gets None. A row without an
    `rpc` answers without a call of its own (`render(incoming, None)`). The pure steps
    stay pure: what a row reads from or keeps in the dialects' state in the core (a
    session's tasks, a request's outcome) is its `load` and `save`, into
    `incoming.state`."""

    method: str
    template: templates.Template
    rpc: Rpc | None
    build: Build | None
    render: Render
    # the status of success (render reads it as `incoming.status`)
    status: int = 200
    name: str = ""
    # error rows that differ on this route from the dialect's table, by reason
    errors: Mapping[str, ErrorRow] = field(default_factory=lambda: NO_ERRORS)
    # what the dialect attaches (e.g. the right a route needs)
    data: Any = None
    load: Load | None = None
    save: Save | None = None
