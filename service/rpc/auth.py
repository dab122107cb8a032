"""The one interceptor that authenticates every call, decides its permission (before any
lookup, AIP-211) and hands the core the call's principal, resource and fingerprint; it also
answers undecodable requests with INVALID_ARGUMENT instead of gRPC's UNKNOWN."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from jobcontrol.service.core import access
from jobcontrol.service.core.access import Call, Principal
from jobcontrol.service.core.authorizer import Authorizer
from jobcontrol.service.core.errors import DomainError, Reason
from jobcontrol.service.rpc.authn import Authenticator
from jobcontrol.service.rpc.errors import abort
from jobcontrol.service.rpc.interceptors import MethodInterceptor

# the request field naming what a method addresses; missing: nothing (lists, the echo) or
# an Operation, whose collection is known only once it is read (the core decides then)
RESOURCE_FIELDS = {
    "CreateCollection": "collection_id",
    "GetCollection": "name",
    "UpdateCollection": "collection.name",
    "DeleteCollection": "name",
    "CreateJob": "parent",
    "GetJob": "name",
    "ListJobs": "parent",
    "UpdateJob": "job.name",
    "DeleteJob": "name",
    "DeleteJobs": "parent",
    "PauseJob": "name",
    "ResumeJob": "name",
    "ToggleJob": "name",
    "TerminateJob": "name",
    "StartJob": "name",
    "StopJob": "name",
    "RetryJob": "name",
    "ListJobHistory": "parent",
    "CreateTask": "parent",
    "GetTask": "name",
    "ListTasks": "parent",
    "CountTasks": "parent",
    "TransitionJob": "name",
    "TransitionTask": "name",
    "RecordRun": "parent",
}
_OPERATIONS = "/google.longrunning.Operations/"


class Undecodable:
    """What the lenient deserializer hands on for bytes that are no such message."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserialize(data) if deserialize is not None else data
        except (DecodeError, ValueError, RecursionError) as exc:
            return Undecodable(exc)

    return parse


def resource_of(method: str, request: Message) -> str:
    """The name the request addresses (`collections/c/...`), or ""."""
    path = RESOURCE_FIELDS.get(method.rsplit("/", 1)[-1])
    if path is None:
        return ""
    value: Any = request
    for part in path.split("."):
        value = getattr(value, part, "")
    text = str(value)
    return f"collections/{text}" if path == "collection_id" else text


def collection_of(resource: str) -> str:
    """The collection id of a resource name ("" for a name that is none)."""
    parts = resource.split("/")
    return parts[1] if len(parts) >= 2 and parts[0] == "collections" else ""


def fingerprint(request: Message) -> str:
    """A digest of the request without its request_id (only requests that carry one)."""
    if not getattr(request, "request_id", ""):
        return ""
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.blake2s(copy.SerializeToString(deterministic=True), digest_size=16).hexdigest()


class AuthInterceptor(MethodInterceptor):
    """Authentication and authorization of every RPC but health checks."""

    def __init__(self, authenticator: Authenticator, authorizer: Authorizer) -> None:
        super().__init__()
        self.authenticator = authenticator
        self.authorizer = authorizer

    def wrap(self, handler: Any, method: str) -> Any:
        if method in access.PUBLIC:
            return handler
        if handler.unary_unary is None:
            return self._streaming(handler)
        inner = handler.unary_unary
        permission = access.PERMISSIONS.get(method)

        async def wrapped(request: Any, context: Any) -> Any:
            try:
                principal = await self._authenticate(context)
                if isinstance(request, Undecodable):
                    raise DomainError(Reason.INVALID_MESSAGE, f"undecodable: {request.error}")
                resource = resource_of(method, request)
                if permission is None:
                    raise access.denied(method, "this method")
                # an Operation's collection is known once it is read: the core decides then
                if not method.startswith(_OPERATIONS) or permission == access.OPERATIONS_LIST:
                    collection = collection_of(resource) if resource else None
                    await self.authorizer.check(principal, permission, collection, resource)
            except DomainError as exc:
                await abort(context, exc)
                raise AssertionError("unreachable: abort raises") from None
            call = Call(principal, method, resource, fingerprint(request))
            token = access.current.set(call)
            try:
                return await inner(request, context)
            finally:
                access.current.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=_lenient(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )

    async def _authenticate(self, context: Any) -> Principal:
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        principal = await self.authenticator.principal(metadata, context.auth_context())
        if principal.anonymous and not self.authorizer.open:
            raise access.unauthenticated("credentials are required: `authorization: Bearer <JWT>`")
        return principal

    def _streaming(self, handler: Any) -> Any:
        """Streams (server reflection): any authenticated principal."""
        if handler.stream_stream is None:
            return handler
        inner = handler.stream_stream

        async def wrapped(requests: Any, context: Any) -> Any:
            try:
                await self._authenticate(context)
            except DomainError as exc:
                await abort(context, exc)
            async for reply in inner(requests, context):
                yield reply

        return grpc.stream_stream_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
