"""The operations, over gRPC (grpc.aio, pre-serialised requests, raw replies) and over HTTP
(aiohttp, keep-alive): each call returns None on success or the failure's status."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import grpc
import orjson
from google.longrunning import operations_pb2
from google.protobuf import json_format

from jobcontrol.service.loadgen.config import BenchConfig, Route
from jobcontrol.v1 import resources_pb2

JOB_PREFIX = "j"
# gRPC status codes by number (for Operation.error.code and REST operation errors)
CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
POLL_INTERVAL = 0.01
_JOBS = "/jobcontrol.v1.JobService/"
_ECHO = "/jobcontrol.v1.DiagnosticsService/Echo"
_GET_OPERATION = "/google.longrunning.Operations/GetOperation"


def job_id(index: int) -> str:
    """The id of seeded job number `index`."""
    return f"{JOB_PREFIX}{index:08d}"


def job_template(profile: str) -> resources_pb2.Job:
    """A valid new job of `profile` (the seeded jobs and `create` use it)."""
    r = resources_pb2
    if profile == "batch":
        return r.Job(batch=r.BatchSpec(pool_info=r.PoolInfo(pool_id="bench")))
    if profile == "transfer":
        return r.Job(transfer=r.TransferSpec(type=r.TransferSpec.IMPORT, location="westus"))
    if profile == "backup":
        return r.Job(
            backup=r.BackupSpec(job_type=r.BackupSpec.BACKUP, platform=r.BackupSpec.VMWARE)
        )
    return r.Job(
        scheduled=r.ScheduledSpec(
            action=r.JobAction(
                type=r.JobAction.HTTP,
                request=r.HttpRequest(uri="http://example.invalid/", method="GET"),
            ),
            recurrence=r.Recurrence(frequency=r.Recurrence.HOUR, interval=1),
        )
    )


# --- hand-written protobuf encoding of the small requests (fast; checked by the tests) --


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def name_request(name: str) -> bytes:
    """GetJobRequest / DeleteJobRequest / GetOperationRequest: field 1 `name`."""
    return _field(1, name.encode())


def list_request(parent: str, page_size: int) -> bytes:
    """ListJobsRequest(parent, page_size)."""
    return _field(1, parent.encode()) + _varint(2 << 3) + _varint(page_size)


def update_request(name: str, display_name: str) -> bytes:
    """UpdateJobRequest(job{name, display_name}, update_mask{paths: display_name})."""
    job = _field(1, name.encode()) + _field(3, display_name.encode())
    return _field(1, job) + _field(2, _field(1, b"display_name"))


def create_request(parent: str, new_id: str, job: bytes) -> bytes:
    """CreateJobRequest(parent, job_id, job) with the job already serialised."""
    return _field(1, parent.encode()) + _field(2, new_id.encode()) + _field(3, job)


def echo_request(message: str) -> bytes:
    """EchoRequest(message)."""
    return _field(1, message.encode())


# --- per-caller state ---------------------------------------------------------------------


@dataclass
class IdPool:
    """Seeded ids never deleted before, taken in order; empty once exhausted."""

    next: int
    stop: int

    def take(self) -> int | None:
        if self.next >= self.stop:
            return None
        self.next += 1
        return self.next - 1

    def split(self, parts: int) -> list[IdPool]:
        """The remaining ids in `parts` consecutive slices (this pool is emptied)."""
        total = self.stop - self.next
        bounds = [self.next + total * i // parts for i in range(parts + 1)]
        self.next = self.stop
        return [IdPool(bounds[i], bounds[i + 1]) for i in range(parts)]


@dataclass
class Caller:
    """One closed-loop worker (or a whole open-loop process): its random source, its
    slice of ids to delete and its counter of created ids."""

    rng: random.Random
    deletes: IdPool
    jobs: int
    prefix: str
    created: list[int] = field(default_factory=lambda: [0])

    def any_job(self) -> str:
        return job_id(self.rng.randrange(self.jobs))

    def fresh_job(self) -> str | None:
        index = self.deletes.take()
        return None if index is None else job_id(index)

    def new_id(self) -> str:
        self.created[0] += 1
        return f"{self.prefix}{self.created[0]:x}"


Op = Callable[[Caller], Awaitable[str | None]]


class Target(Protocol):
    """Where the operations go."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def op(self, name: str) -> Op: ...


# --- gRPC -------------------------------------------------------------------------------


def _identity(value: bytes) -> bytes:
    return value


class GrpcTarget:
    """All operations on one channel, with unary callables made once; requests are bytes
    and replies stay bytes unless the op needs to read them."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.parent = f"collections/{config.collection}"
        self.job_bytes = job_template(config.profile).SerializeToString()
        self.channel: grpc.aio.Channel | None = None
        self.calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}
        self.list_bytes = list_request(self.parent, 50)
        self.delete_all_bytes = _field(1, self.parent.encode())
        self.echo_bytes = echo_request("bench")

    async def open(self) -> None:
        self.channel = grpc.aio.insecure_channel(
            self.config.grpc_target,
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        try:
            await asyncio.wait_for(self.channel.channel_ready(), 10)
        except TimeoutError:
            raise RuntimeError(
                f"cannot reach the gRPC server at {self.config.grpc_target}"
            ) from None
        for name, method in (
            ("echo", _ECHO),
            ("create", _JOBS + "CreateJob"),
            ("get", _JOBS + "GetJob"),
            ("list", _JOBS + "ListJobs"),
            ("update", _JOBS + "UpdateJob"),
            ("delete", _JOBS + "DeleteJob"),
            ("delete-all", _JOBS + "DeleteJobs"),
            ("get-operation", _GET_OPERATION),
        ):
            self.calls[name] = self.channel.unary_unary(
                method, request_serializer=_identity, response_deserializer=_identity
            )

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def _call(self, name: str, request: bytes) -> str | None:
        try:
            await self.calls[name](
                request, timeout=self.config.timeout, metadata=self.config.metadata
            )
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        return None

    def op(self, name: str) -> Op:
        timeout = self.config.timeout
        parent = self.parent

        async def echo(c: Caller) -> str | None:
            return await self._call("echo", self.echo_bytes)

        async def create(c: Caller) -> str | None:
            return await self._call("create", create_request(parent, c.new_id(), self.job_bytes))

        async def get(c: Caller) -> str | None:
            return await self._call("get", name_request(f"{parent}/jobs/{c.any_job()}"))

        async def list_jobs(c: Caller) -> str | None:
            return await self._call("list", self.list_bytes)

        async def update(c: Caller) -> str | None:
            display = f"bench {c.rng.randrange(1 << 30)}"
            return await self._call(
                "update", update_request(f"{parent}/jobs/{c.any_job()}", display)
            )

        async def delete(c: Caller) -> str | None:
            fresh = c.fresh_job()
            if fresh is None:
                return "EXHAUSTED"
            return await self._call("delete", name_request(f"{parent}/jobs/{fresh}"))

        async def delete_all(c: Caller) -> str | None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                metadata = self.config.metadata
                raw = await self.calls["delete-all"](
                    self.delete_all_bytes, timeout=timeout, metadata=metadata
                )
                op = operations_pb2.Operation.FromString(raw)
                while not op.done:
                    if loop.time() >= deadline:
                        return "DEADLINE_EXCEEDED"
                    await asyncio.sleep(POLL_INTERVAL)
                    raw = await self.calls["get-operation"](
                        name_request(op.name),
                        timeout=max(0.001, deadline - loop.time()),
                        metadata=metadata,
                    )
                    op = operations_pb2.Operation.FromString(raw)
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
            if op.HasField("error"):
                return CODE_NAMES.get(op.error.code, str(op.error.code))
            return None

        ops: dict[str, Op] = {
            "echo": echo,
            "create": create,
            "get": get,
            "list": list_jobs,
            "update": update,
            "delete": delete,
            "delete-all": delete_all,
        }
        return ops[name]


# --- HTTP -------------------------------------------------------------------------------


class HttpTarget:
    """The native JSON mapping and --route ops on one keep-alive aiohttp session."""

    def __init__(self, config: BenchConfig, connections: int) -> None:
        self.config = config
        self.connections = connections
        self.base = config.http_url
        self.collection = config.collection
        self.jobs_url = f"{self.base}/v1/collections/{config.collection}/jobs"
        job_json = json_format.MessageToDict(job_template(config.profile))
        self.job_body = orjson.dumps(job_json)
        self.session: aiohttp.ClientSession | None = None
        bearer = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.headers = {**bearer, **dict(config.headers)}
        self.json_headers = {"Content-Type": "application/json", **self.headers}

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.connections, limit_per_host=self.connections, keepalive_timeout=60
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.config.timeout),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def request(
        self, method: str, url: str, body: bytes | None = None
    ) -> tuple[str | None, bytes]:
        """Send one request; (None, body) for 2xx, else (status, body)."""
        assert self.session is not None
        headers = self.json_headers if body is not None else self.headers
        try:
            async with self.session.request(method, url, data=body, headers=headers) as reply:
                content = await reply.read()
                if 200 <= reply.status < 300:
                    return None, content
                return str(reply.status), content
        except TimeoutError:
            return "TIMEOUT", b""
        except aiohttp.ClientError:
            return "CONNECTION_ERROR", b""

    def op(self, name: str) -> Op:
        route = self.config.route(name)
        if route is not None:
            return self._route_op(route)
        jobs_url = self.jobs_url

        async def echo(c: Caller) -> str | None:
            return (await self.request("POST", f"{self.base}/v1:echo", b'{"message":"bench"}'))[0]

        async def create(c: Caller) -> str | None:
            return (await self.request("POST", f"{jobs_url}?jobId={c.new_id()}", self.job_body))[0]

        async def get(c: Caller) -> str | None:
            return (await self.request("GET", f"{jobs_url}/{c.any_job()}"))[0]

        async def list_jobs(c: Caller) -> str | None:
            return (await self.request("GET", f"{jobs_url}?pageSize=50"))[0]

        async def update(c: Caller) -> str | None:
            body = b'{"displayName":"bench %d"}' % c.rng.randrange(1 << 30)
            url = f"{jobs_url}/{c.any_job()}?updateMask=displayName"
            return (await self.request("PATCH", url, body))[0]

        async def delete(c: Caller) -> str | None:
            fresh = c.fresh_job()
            if fresh is None:
                return "EXHAUSTED"
            return (await self.request("DELETE", f"{jobs_url}/{fresh}"))[0]

        async def delete_all(c: Caller) -> str | None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.config.timeout
            status, content = await self.request("POST", f"{jobs_url}:batchDelete", b"{}")
            while status is None:
                op: dict[str, Any] = orjson.loads(content)
                if op.get("done"):
                    error = op.get("error")
                    if error:
                        code = int(error.get("code", 2))
                        return CODE_NAMES.get(code, str(code))
                    return None
                if loop.time() >= deadline:
                    return "DEADLINE_EXCEEDED"
                await asyncio.sleep(POLL_INTERVAL)
                status, content = await self.request("GET", f"{self.base}/v1/{op['name']}")
            return status

        ops: dict[str, Op] = {
            "echo": echo,
            "create": create,
            "get": get,
            "list": list_jobs,
            "update": update,
            "delete": delete,
            "delete-all": delete_all,
        }
        return ops[name]

    def _route_op(self, route: Route) -> Op:
        path = route.path.replace("{collection}", self.collection)
        body_text = self.config.body
        if body_text is not None:
            body_text = body_text.replace("{collection}", self.collection)
        uses_job = "{job}" in path or (body_text is not None and "{job}" in body_text)
        method = route.method
        fresh_ids = method == "DELETE"
        url = self.base + path

        async def call(c: Caller) -> str | None:
            target, body = url, body_text
            if uses_job:
                job = c.fresh_job() if fresh_ids else c.any_job()
                if job is None:
                    return "EXHAUSTED"
                target = url.replace("{job}", job)
                body = body.replace("{job}", job) if body is not None else None
            return (
                await self.request(method, target, body.encode() if body is not None else None)
            )[0]

        return call


def make_target(config: BenchConfig, connections: int) -> MultiTarget:
    """The target of a process: gRPC and/or HTTP as the mix needs."""
    return MultiTarget(config, connections)


class MultiTarget:
    """Routes each op to gRPC or HTTP: --protocol decides for built-in ops; --route ops
    are always HTTP."""

    def __init__(self, config: BenchConfig, connections: int) -> None:
        self.config = config
        route_names = {r.name for r in config.routes}
        self.http = HttpTarget(config, connections) if config.needs_http else None
        builtin = any(op not in route_names for op in config.ops) or config.baseline
        self.grpc = GrpcTarget(config) if config.protocol == "grpc" and builtin else None

    async def open(self) -> None:
        if self.grpc is not None:
            await self.grpc.open()
        if self.http is not None:
            await self.http.open()

    async def close(self) -> None:
        if self.grpc is not None:
            await self.grpc.close()
        if self.http is not None:
            await self.http.close()

    def op(self, name: str) -> Op:
        if self.config.route(name) is not None or self.config.protocol == "rest":
            assert self.http is not None
            return self.http.op(name)
        assert self.grpc is not None
        return self.grpc.op(name)
