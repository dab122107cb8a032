"""Fuzzing every surface (docs/security.md A19), bounded and derandomized: every method of
every gRPC service with random bytes and random field values (extremes included) never
answers UNKNOWN or INTERNAL (undecodable bytes are INVALID_ARGUMENT); every route of every
legacy dialect with random path ids, query values, headers and bodies never answers 5xx.
(The native mapping is fuzzed from its OpenAPI document by tests/test_gateway_fuzz.py.)

Hypothesis drives synchronous clients; the server and the gateway run in their own event
loop on a thread, as they would in their own process."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

import grpc
import httpx
import orjson
import pytest
from google.longrunning import operations_pb2
from google.protobuf import descriptor, message, message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcontrol.gateway.dialects.base import Dialect
from jobcontrol.gateway.dialects.batch_auth import strings_to_sign
from jobcontrol.gateway.http import Request
from jobcontrol.service.server import start_server
from jobcontrol.v1 import (
    diagnostics_service_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    operator_service_pb2,
)
from tests.conftest import make_settings, start_gateway
from tests.test_batch_auth import _mac
from tests.test_dialect_batch import API as BATCH_API
from tests.test_dialect_batch import FULL_JOB, http_date
from tests.test_dialect_importexport import SUB as IE_SUB
from tests.test_dialect_importexport import body as ie_body
from tests.test_dialect_importexport import job_url as ie_job_url
from tests.test_dialect_scheduler import CS, JC, SIMPLE
from tests.test_dialect_scheduler import SUB as SCHED_SUB
from tests.test_dialect_veeam import COLLECTION, PASSWORDS, ROLES, SID, USERS, basic

T = TypeVar("T")
FUZZ = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DATA_LOSS}
ACCOUNT, KEY = "acct1", base64.b64encode(b"k" * 32).decode()
SCHED_PREFIX = f"/{SCHED_SUB}/cloudServices/{CS}/resources/scheduler/~/jobCollections/{JC}"


# --- the surfaces, served from a thread ------------------------------------------------------


@dataclass
class Surface:
    grpc_address: str
    base_url: str
    dialects: dict[str, Dialect]
    names: list[str]  # resource names that exist (collections, jobs, tasks)
    veeam_session: str


class _Loop:
    """An event loop on a thread, running what the tests hand it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def surface(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Surface]:
    loop = _Loop()
    server = loop.run(start_server(make_settings(tmp_path_factory.mktemp("fuzz"))))
    gateway, stop = loop.run(
        start_gateway(
            server.address,
            batch_accounts=f"{ACCOUNT}={KEY}",
            veeam_users=USERS,
            veeam_roles=ROLES,
            veeam_collection=COLLECTION,
        )
    )
    try:
        with httpx.Client(base_url=gateway.base_url, timeout=30) as http:
            session = _seed(http)
        dialects = {type(d).__name__: d for d in gateway.app.dialects}
        yield Surface(server.address, gateway.base_url, dialects, _names(server.address), session)
    finally:
        loop.run(stop())
        loop.run(server.stop(grace=1.0))
        loop.close()


def _seed(http: httpx.Client) -> str:
    """A job in each dialect (so fuzzed ids hit real resources); a Veeam session."""
    r = _batch(http, "POST", "/jobs", {"api-version": BATCH_API}, orjson.dumps(FULL_JOB))
    assert r.status_code == 201, r.text
    headers = {"x-ms-version": "2013-06-01"}
    r = http.put(SCHED_PREFIX.replace("/~", ""), headers=headers)
    assert r.status_code == 202, r.text
    r = http.put(f"{SCHED_PREFIX}/jobs/j1", json=SIMPLE, headers=headers)
    assert r.status_code == 201, r.text
    r = http.put(ie_job_url("j1"), json=ie_body(), headers={"x-ms-version": "2014-05-01"})
    assert r.status_code in (200, 201), r.text
    r = http.post(
        "/api/sessionMngr/?v=latest", headers={"Authorization": basic("admin", PASSWORDS["admin"])}
    )
    assert r.status_code == 201, r.text
    return r.headers[SID]


def _names(address: str) -> list[str]:
    names = ["", "collections/-", "collections/-/jobs/-", "collections/nope/jobs/nope", "*"]
    with grpc.insecure_channel(address) as channel:
        jobs = job_service_pb2_grpc.JobServiceStub(channel)
        for collection in jobs.ListCollections(
            job_service_pb2.ListCollectionsRequest()
        ).collections:
            names.append(collection.name)
            listed = jobs.ListJobs(job_service_pb2.ListJobsRequest(parent=collection.name))
            for job in listed.jobs:
                names += [job.name, f"{job.name}/tasks/t1", f"{job.name}/history"]
    return names


# --- gRPC: every method, random bytes and random messages ------------------------------------


def _methods() -> list[tuple[str, descriptor.MethodDescriptor]]:
    files = (job_service_pb2, operator_service_pb2, diagnostics_service_pb2, operations_pb2)
    return [
        (f"/{service.full_name}/{method.name}", method)
        for module in files
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


METHODS = _methods()
_T = descriptor.FieldDescriptor
_INT_RANGES = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1), _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1), _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1), _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1), _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1), _T.TYPE_FIXED64: (0, 2**64 - 1),
}  # fmt: skip


def _scalar(field: descriptor.FieldDescriptor, names: list[str]) -> st.SearchStrategy[Any]:
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        edges = st.sampled_from([low, high, 0, -1 if low else 1, 253402300800, 10**9])
        return st.one_of(edges.filter(lambda v: low <= v <= high), st.integers(low, high))
    if field.type == _T.TYPE_BOOL:
        return st.booleans()
    if field.type == _T.TYPE_DOUBLE:
        return st.floats()
    if field.type == _T.TYPE_FLOAT:
        return st.floats(width=32)
    if field.type == _T.TYPE_BYTES:
        return st.binary(max_size=40)
    if field.type == _T.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 2**31 - 1))
    return st.one_of(st.sampled_from(names), st.text(max_size=40), st.just("(" * 40))


@st.composite
def _message(
    draw: st.DrawFn, desc: descriptor.Descriptor, names: list[str], depth: int = 0
) -> message.Message:
    """A message of type `desc` with random fields set (nested up to depth 4)."""
    msg = message_factory.GetMessageClass(desc)()
    if depth > 4 or not desc.fields:
        return msg
    chosen = draw(
        st.lists(st.sampled_from(list(desc.fields)), unique_by=lambda f: f.name, max_size=6)
    )
    for field in chosen:
        target = getattr(msg, field.name)
        kind = field.message_type
        if kind is not None and kind.GetOptions().map_entry:
            key, value = kind.fields_by_name["key"], kind.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 2))):
                k = draw(_scalar(key, names))
                if value.message_type is not None:
                    target[k].CopyFrom(draw(_message(value.message_type, names, depth + 1)))
                else:
                    target[k] = draw(_scalar(value, names))
        elif field.is_repeated:
            for _ in range(draw(st.integers(0, 3))):
                if kind is not None:
                    target.add().CopyFrom(draw(_message(kind, names, depth + 1)))
                else:
                    target.append(draw(_scalar(field, names)))
        elif kind is not None:
            target.CopyFrom(draw(_message(kind, names, depth + 1)))
        else:
            setattr(msg, field.name, draw(_scalar(field, names)))
    return msg


def _decodes(desc: descriptor.Descriptor, payload: bytes) -> bool:
    try:
        message_factory.GetMessageClass(desc).FromString(payload)
    except message.DecodeError:
        return False
    return True


@pytest.mark.parametrize("path,method", METHODS, ids=[p for p, _ in METHODS])
@FUZZ
@given(data=st.data())
def test_a19_grpc_fuzz_never_unknown_or_internal(
    surface: Surface, path: str, method: descriptor.MethodDescriptor, data: st.DataObject
) -> None:
    """A19: random bytes or random field values (int extremes, times beyond year 9999,
    unknown enum values, deep messages, odd names) sent to any method are answered with a
    status the caller can act on, never UNKNOWN/INTERNAL; bytes that do not decode as the
    request are INVALID_ARGUMENT."""
    request = method.input_type
    payload = data.draw(
        st.one_of(
            st.binary(max_size=200),
            _message(request, surface.names).map(lambda m: m.SerializeToString()),
        )
    )
    with grpc.insecure_channel(surface.grpc_address) as channel:
        call: Any = channel.unary_unary(path)  # bytes in, bytes out (no serializers)
        try:
            call(payload, timeout=10)
        except grpc.RpcError as exc:
            code = exc.code()
            assert code not in BAD_CODES, (path, payload, exc.details())
            assert code != grpc.StatusCode.UNAVAILABLE, (path, payload, exc.details())
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:  # only a wait may take that long
                assert method.name == "WaitOperation", (path, payload)
            if not _decodes(request, payload):
                assert code == grpc.StatusCode.INVALID_ARGUMENT, (path, payload)
        else:
            assert _decodes(request, payload), (path, payload)


# --- HTTP: every route of every legacy dialect -----------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
_EDGE_TEXT = st.sampled_from(
    ["", "0", "-1", "2147483648", "9" * 30, "true", "null", "*", "%", "(" * 40,
     "Fri, 31 Dec 9999 23:59:59 -2359", "0001-01-01T00:00:00Z", "PT99999999999H", "\x00"]
)  # fmt: skip
_TEXT = st.one_of(_EDGE_TEXT, st.text(alphabet=st.characters(codec="latin-1"), max_size=24))
_HEADER_TEXT = _TEXT.map(lambda t: "".join(c for c in t if c.isprintable()).strip())


def _mutated(sample: Any) -> st.SearchStrategy[Any]:
    """`sample` with one member (at any depth) replaced by a random JSON value."""

    def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        inner: list[tuple[Any, ...]] = [prefix]
        if isinstance(value, dict):
            for key, item in value.items():
                inner += paths(item, (*prefix, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                inner += paths(item, (*prefix, index))
        return inner

    def replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
        if not path:
            return new
        copy = dict(value) if isinstance(value, dict) else list(value)
        copy[path[0]] = replace(value[path[0]], path[1:], new)
        return copy

    return st.tuples(st.sampled_from(paths(sample)[1:]), _JSON).map(
        lambda pair: replace(sample, pair[0], pair[1])
    )


@dataclass(frozen=True)
class Profile:
    """What a dialect's requests look like: ids, query names, headers, sample bodies."""

    dialect: str
    ids: tuple[str, ...]
    query: tuple[str, ...]
    headers: dict[str, str]
    samples: tuple[Any, ...]
    content_type: str = "application/json"


PROFILES = {
    "batch": Profile(
        "BatchDialect", ("full", "j1", "t1", "nope", "full:x"),
        ("api-version", "timeout", "maxresults", "$filter", "$select", "$expand", "force",
         "$skiptoken", "mode", "disableTasks"),
        {}, (FULL_JOB, {"id": "t1", "commandLine": "echo"}, {"disableTasks": "requeue"}),
        "application/json; odata=minimalmetadata",
    ),
    "scheduler": Profile(
        "SchedulerDialect", (SCHED_SUB, CS, JC, "j1", "nope"),
        ("api-version", "$top", "$skip", "$filter", "op", "resourcename", "comp"),
        {"x-ms-version": "2013-06-01"},
        (SIMPLE, {"state": "disabled"}, {"recurrence": {"frequency": "week", "schedule":
         {"weekDays": ["monday"], "monthlyOccurrences": [{"day": "monday", "occurrence": 1}]}}}),
    ),
    "importexport": Profile(
        "ImportExportDialect", (IE_SUB, "myacct", "j1", "nope"),
        ("api-version", "$top", "$skiptoken", "$format", "states", "type"),
        {"x-ms-version": "2014-05-01"}, (ie_body(), {"Properties": {"State": "Shipping"}}),
    ),
    "veeam": Profile(
        "VeeamDialect", ("j1", "nope", "task-1", "latest"),
        ("action", "format", "type", "v", "filter"),
        {}, ({"Name": "j", "Description": "d"},),
    ),
}  # fmt: skip
_METHODS = ("GET", "PUT", "POST", "PATCH", "DELETE", "HEAD", "MERGE", "OPTIONS")
_CONDITIONS = ("If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since")
_TYPES = (
    "application/json",
    "application/xml",
    "text/plain",
    "application/json;odata=minimalmetadata",
)
_DATES = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # integers beyond 64 bits too (orjson refuses them)


@dataclass
class Sent:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


@st.composite
def _request(draw: st.DrawFn, surface: Surface, profile: Profile) -> Sent:
    dialect = surface.dialects[profile.dialect]
    route = draw(st.sampled_from(dialect.routes))
    segment = st.one_of(st.sampled_from(profile.ids), _TEXT.filter(bool)).map(
        lambda s: quote(s, safe="")
    )
    parts: list[str] = []
    for literal in route.template.segments:
        if literal == "*":
            parts.append(draw(segment))
        elif literal == "**":
            parts += draw(st.lists(segment, min_size=1, max_size=2))
        else:
            parts.append(literal)
    path = "/" + "/".join(parts) + (f":{route.template.verb}" if route.template.verb else "")
    usual = st.just(route.method)  # mostly the route's own method, at times another
    method = draw(st.one_of(usual, usual, usual, st.sampled_from(_METHODS)))
    names = st.one_of(st.sampled_from(profile.query), _TEXT.filter(bool))
    pairs = draw(st.lists(st.tuples(names, _TEXT), max_size=4))
    if profile.dialect == "BatchDialect" and draw(st.integers(0, 4)):
        pairs.insert(0, ("api-version", BATCH_API))
    headers = dict(profile.headers)
    for name in draw(st.lists(st.sampled_from(_CONDITIONS), unique=True, max_size=2)):
        dated = name.endswith("Since") and draw(st.booleans())
        headers[name] = http_date(draw(_DATES)) if dated else draw(_HEADER_TEXT)
    body = draw(
        st.one_of(
            st.just(b""),
            st.one_of(_JSON, *(_mutated(s) for s in profile.samples)).map(_dumps),
            st.binary(max_size=64),
            st.sampled_from([b"<Job><Name>x</Name></Job>", b"<a" * 50, b"{" * 100]),
        )
    )
    if body or method not in ("GET", "HEAD"):
        usual_type = st.just(profile.content_type)
        headers["content-type"] = draw(st.one_of(usual_type, usual_type, st.sampled_from(_TYPES)))
    if body or method not in ("GET", "HEAD"):
        headers["content-length"] = str(len(body))
    return Sent(method, path, urlencode(pairs, quote_via=quote), headers, body)


def _batch(
    http: httpx.Client, method: str, path: str, params: dict[str, str], body: bytes
) -> httpx.Response:
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    sent = Sent(method, path, urlencode(params, quote_via=quote), headers, body)
    return _send(http, sent, sign=True)


def _send(http: httpx.Client, sent: Sent, sign: bool = False, session: str = "") -> httpx.Response:
    headers = dict(sent.headers)
    if session:
        headers[SID] = session
    if sign:
        headers["ocp-date"] = http_date(datetime.now(UTC))
        scope = {
            "type": "http", "method": sent.method, "path": unquote(sent.path),
            "raw_path": sent.path.encode(), "query_string": sent.query.encode(),
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        }  # fmt: skip
        canonical = strings_to_sign(Request(scope, None), ACCOUNT)[0]
        headers["authorization"] = f"SharedKey {ACCOUNT}:{_mac(canonical)}"
    url = sent.path + (f"?{sent.query}" if sent.query else "")
    raw = {name: value.encode("latin-1") for name, value in headers.items()}  # not ASCII only
    request = http.build_request(sent.method, url, headers=raw, content=sent.body or None)
    return http.send(request)


@pytest.mark.parametrize("name", list(PROFILES))
@settings(FUZZ, max_examples=150)
@given(data=st.data())
def test_a19_dialect_fuzz_never_5xx(surface: Surface, name: str, data: st.DataObject) -> None:
    """A19: random requests on every route of each legacy dialect (ids, query names and
    values, conditional headers with dates up to 9999, random and mutated bodies; Batch
    signed, Veeam within a session) are answered 2xx-4xx, never 5xx."""
    profile = PROFILES[name]
    sent = data.draw(_request(surface, profile))
    signed = name == "batch" and data.draw(st.integers(0, 4)) > 0
    session = surface.veeam_session if name == "veeam" and data.draw(st.integers(0, 4)) else ""
    with httpx.Client(base_url=surface.base_url, timeout=30) as http:
        r = _send(http, sent, sign=signed, session=session)
    assert r.status_code < 500, (sent, r.status_code, r.text[:500])
    if signed:  # what is signed right is judged on its merits
        assert "AuthenticationFailed" not in r.text, (sent, r.text[:500])
