"""Authentication and authorization of the gRPC server (docs/security.md A1-A9): real JWTs
(ES256, RS256, HS256), real TLS client certificates, a real policy file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from google.longrunning import operations_pb2, operations_pb2_grpc

from jobcontrol.service import tokens
from jobcontrol.service.core import access
from jobcontrol.service.server import RunningServer, start_server
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import job_service_pb2_grpc, operator_service_pb2_grpc
from jobcontrol.v1 import operator_service_pb2 as ops
from jobcontrol.v1 import resources_pb2 as res
from tests.conftest import make_settings
from tests.helpers import expect_error
from tests.pki import Pki

pytestmark = pytest.mark.backends

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
ISSUER, AUDIENCE = "https://issuer.test", "jobcontrol"
POLICY = """
[[bindings]]
principals = ["user:admin"]
role = "admin"

[[bindings]]
principals = ["user:viewer"]
role = "viewer"
collections = ["team-*"]

[[bindings]]
principals = ["user:alice", "user:bob"]
role = "editor"
collections = ["team-*"]

[[bindings]]
principals = ["user:gateway"]
role = "impersonator"

[[bindings]]
principals = ["cert:O=jobcontrol-tests,CN=carol"]
role = "viewer"
"""


@dataclass
class Secured:
    """A server with bearer-JWT authentication and the policy above."""

    server: RunningServer
    key: Path
    jwks: Path

    def token(self, sub: str, **claims: Any) -> str:
        return tokens.mint(self.key, sub, issuer=ISSUER, audience=AUDIENCE, **claims)

    def stubs(self, channel: grpc.aio.Channel) -> Any:
        return job_service_pb2_grpc.JobServiceStub(channel)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def secured_server(tmp_path: Path, alg: str = "ES256", **extra: Any) -> Secured:
    key, jwks = tokens.keygen(tmp_path / "keys", alg)
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = make_settings(
        tmp_path,
        auth_jwks=str(jwks),
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_algorithms=alg,
        auth_policy=str(policy),
        **extra,
    )
    return Secured(await start_server(settings), key, jwks)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    running = await secured_server(tmp_path)
    try:
        yield running
    finally:
        await running.server.stop(grace=1.0)


@pytest.fixture
async def channel(secured: Secured) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(secured.server.address) as ch:
        yield ch


async def make_team(secured: Secured, channel: grpc.aio.Channel, cid: str = "team-a") -> str:
    """A scheduled collection with job `j`, made by the admin."""
    stub = secured.stubs(channel)
    admin = bearer(secured.token("admin"))
    await stub.CreateCollection(
        js.CreateCollectionRequest(
            collection_id=cid, collection=res.Collection(profile=res.SCHEDULED)
        ),
        metadata=admin,
    )
    await stub.CreateJob(
        js.CreateJobRequest(parent=f"collections/{cid}", job_id="j", job=res.Job()), metadata=admin
    )
    return f"collections/{cid}"


# --- A1 principals from bearer tokens -------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "RS256", "HS256"])
async def test_a1_bearer_jwt_is_the_principal(tmp_path: Path, alg: str) -> None:
    """A1: a bearer JWT verified with the configured JWKS and algorithm makes the call as
    user:<sub>, with the roles the policy binds it to (a viewer reads, may not write)."""
    secured = await secured_server(tmp_path, alg)
    try:
        async with grpc.aio.insecure_channel(secured.server.address) as ch:
            parent = await make_team(secured, ch)
            stub = secured.stubs(ch)
            viewer = bearer(secured.token("viewer"))
            job = await stub.GetJob(js.GetJobRequest(name=f"{parent}/jobs/j"), metadata=viewer)
            assert job.name == f"{parent}/jobs/j"
            err = await expect_error(
                stub.DeleteJob(js.DeleteJobRequest(name=job.name), metadata=viewer),
                DENIED,
                "PERMISSION_DENIED",
            )
            assert err.info is not None
            assert dict(err.info.metadata) == {
                "permission": "jobcontrol.jobs.delete",
                "resource": job.name,
            }
    finally:
        await secured.server.stop(grace=1.0)


async def test_a1_calls_without_credentials_are_unauthenticated(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A1: with authentication configured, every RPC but health checks refuses a call
    without credentials: UNAUTHENTICATED / UNAUTHENTICATED, before anything else."""
    for method in access.PERMISSIONS:
        call = channel.unary_unary(method, request_serializer=bytes, response_deserializer=bytes)
        err = await expect_error(call(b""), UNAUTHENTICATED, "UNAUTHENTICATED")
        assert "credentials are required" in err.message
    health = channel.unary_unary(
        "/grpc.health.v1.Health/Check", request_serializer=bytes, response_deserializer=bytes
    )
    assert await health(b"") == b"\x08\x01"  # SERVING


def hs256_keyed_with_the_public_key(secured: Secured) -> str:
    """The classic confusion: HMAC-SHA256 keyed with the verifier's public key (PEM)."""
    public = jwt.PyJWK(json.loads(secured.jwks.read_text())["keys"][0]).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"sub": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60}

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signed = f"{part({'alg': 'HS256', 'typ': 'JWT', 'kid': 'key-1'})}.{part(claims)}"
    mac = hmac.new(public, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def forged(secured: Secured, **changes: Any) -> str:
    """Tokens that must not verify."""
    now = int(time.time())
    claims = {"sub": "admin", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60, **changes}
    private = secured.key.read_text()
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": "key-1"})


@pytest.mark.parametrize(
    "make",
    [
        lambda s: forged(s, exp=int(time.time()) - 3600),
        lambda s: forged(s, iss="https://other.test"),
        lambda s: forged(s, aud="someone-else"),
        lambda s: forged(s, sub=""),
        lambda s: jwt.encode({"sub": "admin", "iss": ISSUER, "aud": AUDIENCE,
                              "exp": int(time.time()) + 60}, "", algorithm="none"),
        hs256_keyed_with_the_public_key,
        lambda s: forged(s)[:-4] + "AAAA",
        lambda s: "not-a-jwt",
    ],
    ids=["expired", "issuer", "audience", "no-sub", "alg-none", "hs256-with-the-public-key",
         "bad-signature", "garbage"],
)  # fmt: skip
async def test_a1_tokens_that_do_not_verify_are_unauthenticated(
    secured: Secured, channel: grpc.aio.Channel, make: Callable[[Secured], str]
) -> None:
    """A1: expired, foreign issuer or audience, no subject, `alg: none`, an HS256 token
    keyed with the public key (algorithms are the configuration's, never the token's), a
    bad signature, garbage: UNAUTHENTICATED, and nothing is done."""
    stub = secured.stubs(channel)
    await expect_error(
        stub.ListCollections(js.ListCollectionsRequest(), metadata=bearer(make(secured))),
        UNAUTHENTICATED,
        "UNAUTHENTICATED",
    )


async def test_a1_a_client_cannot_assert_a_principal_itself(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A1: `x-jobcontrol-principal` from a caller without jobcontrol.principals.impersonate
    is PERMISSION_DENIED; from an impersonator (a gateway) the asserted principal makes the
    call with exactly the grants asserted for it."""
    parent = await make_team(secured, channel)
    stub = secured.stubs(channel)
    claim = (("x-jobcontrol-principal", "batch:acct1"), ("x-jobcontrol-grants", "viewer=team-a"))
    for who in ("alice", "admin"):
        await expect_error(
            stub.GetJob(
                js.GetJobRequest(name=f"{parent}/jobs/j"),
                metadata=bearer(secured.token(who)) + claim,
            ),
            DENIED,
            "PERMISSION_DENIED",
        )
    gateway = bearer(secured.token("gateway")) + claim
    job = await stub.GetJob(js.GetJobRequest(name=f"{parent}/jobs/j"), metadata=gateway)
    assert job.name.endswith("/jobs/j")
    await expect_error(
        stub.DeleteJob(js.DeleteJobRequest(name=job.name), metadata=gateway),
        DENIED,
        "PERMISSION_DENIED",
    )
    await expect_error(
        stub.GetJob(
            js.GetJobRequest(name=f"{parent}/jobs/j"), metadata=bearer(secured.token("gateway"))
        ),
        DENIED,
        "PERMISSION_DENIED",
    )


# --- A2 permissions before existence, ownership, lists --------------------------------------


async def test_a2_permission_denied_comes_before_not_found(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A2 (AIP-211): without a role on a collection the answer is PERMISSION_DENIED whether
    the job, or the collection, exists or not; with one, a missing job is NOT_FOUND."""
    parent = await make_team(secured, channel, "secret")
    stub = secured.stubs(channel)
    alice = bearer(secured.token("alice"))
    for name in (f"{parent}/jobs/j", f"{parent}/jobs/missing", "collections/nowhere/jobs/j"):
        await expect_error(
            stub.GetJob(js.GetJobRequest(name=name), metadata=alice), DENIED, "PERMISSION_DENIED"
        )
    await expect_error(
        stub.GetJob(js.GetJobRequest(name="collections/team-x/jobs/missing"), metadata=alice),
        grpc.StatusCode.NOT_FOUND,
        "COLLECTION_NOT_FOUND",
    )


async def test_a2_the_creator_of_a_collection_owns_it(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A2: alice (editor on team-*) creates team-alice and owns it: she may delete it; bob,
    editor on the same glob, may use its jobs but not delete the collection."""
    stub = secured.stubs(channel)
    alice, bob = bearer(secured.token("alice")), bearer(secured.token("bob"))
    created = await stub.CreateCollection(
        js.CreateCollectionRequest(
            collection_id="team-alice", collection=res.Collection(profile=res.SCHEDULED)
        ),
        metadata=alice,
    )
    await stub.CreateJob(
        js.CreateJobRequest(parent=created.name, job_id="x", job=res.Job()), metadata=bob
    )
    await expect_error(
        stub.DeleteCollection(js.DeleteCollectionRequest(name=created.name), metadata=bob),
        DENIED,
        "PERMISSION_DENIED",
    )
    op = await stub.DeleteCollection(js.DeleteCollectionRequest(name=created.name), metadata=alice)
    assert op.done
    await expect_error(
        stub.CreateCollection(
            js.CreateCollectionRequest(
                collection_id="batch-acct1", collection=res.Collection(profile=res.SCHEDULED)
            ),
            metadata=alice,
        ),
        DENIED,
        "PERMISSION_DENIED",
    )


async def test_a2_lists_show_only_what_the_principal_may_see(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A2: ListCollections and ListOperations hold only the collections (and their
    operations) the caller has a role on or owns."""
    await make_team(secured, channel, "team-a")
    await make_team(secured, channel, "hidden")
    stub = secured.stubs(channel)
    viewer = bearer(secured.token("viewer"))
    page = await stub.ListCollections(js.ListCollectionsRequest(), metadata=viewer)
    assert [c.name for c in page.collections] == ["collections/team-a"]
    admin = bearer(secured.token("admin"))
    for cid in ("team-a", "hidden"):
        await stub.DeleteJob(js.DeleteJobRequest(name=f"collections/{cid}/jobs/j"), metadata=admin)
    operations = operations_pb2_grpc.OperationsStub(channel)
    seen = await operations.ListOperations(operations_pb2.ListOperationsRequest(), metadata=viewer)
    assert {o.name for o in seen.operations} and all(
        "team-a" in o.metadata.value.decode(errors="ignore") for o in seen.operations
    )
    everything = await operations.ListOperations(
        operations_pb2.ListOperationsRequest(), metadata=admin
    )
    hidden = [o for o in everything.operations if o.name not in {s.name for s in seen.operations}]
    assert hidden
    await expect_error(
        operations.GetOperation(
            operations_pb2.GetOperationRequest(name=hidden[0].name), metadata=viewer
        ),
        DENIED,
        "PERMISSION_DENIED",
    )


async def test_a2_operator_transitions_need_the_operator_role(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A2: an editor may not run OperatorService transitions (operators and admins may)."""
    parent = await make_team(secured, channel)
    operator = operator_service_pb2_grpc.OperatorServiceStub(channel)
    request = ops.TransitionJobRequest(name=f"{parent}/jobs/j", state=res.COMPLETED)
    await expect_error(
        operator.TransitionJob(request, metadata=bearer(secured.token("alice"))),
        DENIED,
        "PERMISSION_DENIED",
    )
    done = await operator.TransitionJob(request, metadata=bearer(secured.token("admin")))
    assert done.state == res.COMPLETED


def test_a2_every_rpc_has_a_permission() -> None:
    """A2: the permission table names every method of every service served (a new RPC
    without a permission is refused, so this fails first): the native mapping's services
    and DialectStateService, which only gateways call (it has no HTTP mapping)."""
    from jobcontrol.gateway.app import SERVICES
    from jobcontrol.v1 import session_service_pb2

    state = session_service_pb2.DESCRIPTOR.services_by_name["DialectStateService"]
    methods = {f"/{s.full_name}/{m.name}" for s in (*SERVICES, state) for m in s.methods}
    assert methods - set(access.PERMISSIONS) == set()
    assert set(access.PERMISSIONS) - methods == set()


# --- A3 TLS client certificates -----------------------------------------------------------


async def test_a3_client_certificate_subject_is_the_principal(tmp_path: Path) -> None:
    """A3: with --tls-client-ca the listener requires a client certificate; its subject
    is the principal cert:<subject> (a viewer here); no certificate, no connection."""
    pki = Pki(tmp_path / "pki")
    server_cert = pki.server()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = make_settings(
        tmp_path, tls_cert=str(server_cert.cert), tls_key=str(server_cert.key),
        tls_client_ca=str(pki.ca.cert), auth_policy=str(policy),
    )  # fmt: skip
    running = await start_server(settings)
    carol = pki.client("carol")
    try:
        creds = grpc.ssl_channel_credentials(pki.ca.pem(), carol.key_pem(), carol.pem())
        async with grpc.aio.secure_channel(running.address, creds) as ch:
            stub = job_service_pb2_grpc.JobServiceStub(ch)
            page = await stub.ListCollections(js.ListCollectionsRequest())
            assert list(page.collections) == []
            await expect_error(
                stub.CreateCollection(
                    js.CreateCollectionRequest(
                        collection_id="c", collection=res.Collection(profile=res.SCHEDULED)
                    )
                ),
                DENIED,
                "PERMISSION_DENIED",
            )
        anonymous = grpc.ssl_channel_credentials(pki.ca.pem())
        async with grpc.aio.secure_channel(running.address, anonymous) as ch:
            stub = job_service_pb2_grpc.JobServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListCollections(js.ListCollectionsRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop(grace=1.0)


# --- A4 protected mode ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"grpc_address": "0.0.0.0:50051"}, True),
        ({"grpc_address": "127.0.0.1:0", "http_address": "10.1.2.3:8080"}, True),
        ({"grpc_address": "0.0.0.0:50051", "auth": "none"}, False),
        ({"grpc_address": "[::1]:0", "http_address": "localhost:8080"}, False),
        ({"grpc_address": "0.0.0.0:50051", "tls_client_ca": "ca.pem"}, False),
    ],
)
def test_a4_without_authentication_only_loopback_may_be_bound(
    tmp_path: Path, overrides: dict[str, str], refused: bool
) -> None:
    """A4 (protected mode): with no authentication configured the server refuses any
    address but loopback, for gRPC and for its gateway, unless --auth none says so."""
    from jobcontrol.service import auth_config

    settings = make_settings(tmp_path, **overrides)
    if refused:
        with pytest.raises(SystemExit, match=r"refusing to listen .* without authentication"):
            auth_config.check_exposure(settings)
    else:
        auth_config.check_exposure(settings)


# --- A5 request ids ---------------------------------------------------------------------


async def test_a5_request_ids_are_scoped_to_principal_method_and_resource(
    secured: Secured, channel: grpc.aio.Channel
) -> None:
    """A5: the same request_id from another principal, or on another collection, is a new
    request; from the same principal with a different request it is INVALID_ARGUMENT /
    REQUEST_ID_REUSED and nothing is written."""
    await make_team(secured, channel, "team-a")
    await make_team(secured, channel, "team-b")
    stub = secured.stubs(channel)
    alice, bob = bearer(secured.token("alice")), bearer(secured.token("bob"))

    def create(parent: str, job_id: str) -> js.CreateJobRequest:
        return js.CreateJobRequest(parent=parent, job_id=job_id, job=res.Job(), request_id="k1")

    first = await stub.CreateJob(create("collections/team-a", "x"), metadata=alice)
    again = await stub.CreateJob(create("collections/team-a", "x"), metadata=alice)
    assert again == first
    other = await stub.CreateJob(create("collections/team-b", "x"), metadata=alice)
    assert other.name == "collections/team-b/jobs/x"
    bobs = await stub.CreateJob(create("collections/team-a", "y"), metadata=bob)
    assert bobs.name == "collections/team-a/jobs/y"
    await expect_error(
        stub.CreateJob(create("collections/team-a", "z"), metadata=alice),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
    )
    await expect_error(
        stub.GetJob(js.GetJobRequest(name="collections/team-a/jobs/z"), metadata=alice),
        grpc.StatusCode.NOT_FOUND,
        "JOB_NOT_FOUND",
    )


# --- A6 undecodable requests ---------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a" * 200_000])
async def test_a6_undecodable_requests_are_invalid_argument(
    secured: Secured, channel: grpc.aio.Channel, payload: bytes
) -> None:
    """A6: bytes that are no such message (bad tags, truncated fields, nesting beyond
    protobuf's limit) are INVALID_ARGUMENT / INVALID_MESSAGE, not gRPC's UNKNOWN."""
    call: Callable[..., Awaitable[bytes]] = channel.unary_unary(
        "/jobcontrol.v1.JobService/CreateJob",
        request_serializer=bytes,
        response_deserializer=bytes,
    )
    await expect_error(
        call(payload, metadata=bearer(secured.token("admin"))),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_MESSAGE",
    )


async def test_a1_jwks_may_be_fetched_from_a_url(tmp_path: Path) -> None:
    """A1: --auth-jwks may be an http(s) URL (an identity provider's JWKS endpoint); its
    keys verify tokens like a file's."""
    from aiohttp import web

    key, jwks = tokens.keygen(tmp_path / "keys", "RS256")

    async def serve_jwks(_: web.Request) -> web.Response:
        return web.Response(text=jwks.read_text())

    app = web.Application()
    app.router.add_get("/jwks", serve_jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    settings = make_settings(
        tmp_path, auth_jwks=f"http://127.0.0.1:{port}/jwks", auth_algorithms="RS256",
        auth_policy=str(policy),
    )  # fmt: skip
    running = await start_server(settings)
    try:
        async with grpc.aio.insecure_channel(running.address) as ch:
            stub = job_service_pb2_grpc.JobServiceStub(ch)
            page = await stub.ListCollections(
                js.ListCollectionsRequest(), metadata=bearer(tokens.mint(key, "admin"))
            )
            assert list(page.collections) == []
            await expect_error(
                stub.ListCollections(js.ListCollectionsRequest(), metadata=bearer("x.y.z")),
                UNAUTHENTICATED,
                "UNAUTHENTICATED",
            )
    finally:
        await running.stop(grace=1.0)
        await runner.cleanup()
