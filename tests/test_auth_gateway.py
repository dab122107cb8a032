"""The native REST mapping under authentication (docs/security.md A7-A9): the same
principals and permissions as gRPC, through the real gateway over real HTTP (and real
TLS), in front of a secured server."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from jobcontrol.service import tokens
from jobcontrol.v1 import job_service_pb2 as js
from jobcontrol.v1 import job_service_pb2_grpc
from tests.conftest import RunningGateway, start_gateway
from tests.helpers import expect_error
from tests.pki import Pki, self_signed
from tests.test_auth_server import AUDIENCE, Secured, secured_server
from tests.test_process import ServerProcess

JOBS = "/v1/collections/team-a/jobs"
SCHEDULED = {"profile": "SCHEDULED"}


@dataclass
class Front:
    """A secured server, the gateway in front of it (an impersonator), an HTTP client."""

    secured: Secured
    gateway: RunningGateway
    http: httpx.AsyncClient

    def bearer(self, sub: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secured.token(sub)}"}

    async def admin_setup(self) -> None:
        """Collection team-a with job j (scheduled), and batch-acct2 with its quota."""
        admin = self.bearer("admin")
        for cid in ("team-a", "batch-acct2"):
            reply = await self.http.post(
                f"/v1/collections?collectionId={cid}", json=SCHEDULED, headers=admin
            )
            assert reply.status_code == 200, reply.text
        reply = await self.http.post(f"{JOBS}?jobId=j", json={}, headers=admin)
        assert reply.status_code == 200, reply.text


def gateway_token(secured: Secured, directory: Path) -> str:
    """The gateway's own bearer token (user:gateway, bound to impersonator), as a file."""
    path = directory / "gateway.jwt"
    path.write_text(secured.token("gateway"))
    return str(path)


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    secured = await secured_server(tmp_path)
    gateway, stop = await start_gateway(
        secured.server.address, grpc_token_file=gateway_token(secured, tmp_path)
    )
    try:
        async with httpx.AsyncClient(base_url=gateway.base_url, timeout=10) as http:
            yield Front(secured, gateway, http)
    finally:
        await stop()
        await secured.server.stop(grace=1.0)


NO_CREDENTIALS = "credentials are required: `authorization: Bearer <JWT>`"


def info(reason: str, **metadata: str) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "jobcontrol.dev",
    }
    if metadata:
        detail["metadata"] = metadata
    return detail


def unauthenticated(message: str = NO_CREDENTIALS) -> dict[str, Any]:
    """The AIP-193 body of a 401."""
    error = {"code": 401, "status": "UNAUTHENTICATED", "message": message}
    return {"error": {**error, "details": [info("UNAUTHENTICATED")]}}


def denied(permission: str, resource: str) -> dict[str, Any]:
    """The AIP-193 body of a 403: the same whether or not the resource exists."""
    message = f"permission {permission} denied on {resource} (or it does not exist)"
    error = {"code": 403, "status": "PERMISSION_DENIED", "message": message}
    meta = info("PERMISSION_DENIED", permission=permission, resource=resource)
    return {"error": {**error, "details": [meta]}}


def tls_client(base_url: str, ca: Path, cert: tuple[str, str] | None = None) -> httpx.AsyncClient:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.AsyncClient(base_url=base_url, verify=context, timeout=10)


async def test_a7_native_rest_without_credentials_is_401(front: Front) -> None:
    """A7: no Authorization on /v1 -> 401 UNAUTHENTICATED with WWW-Authenticate: Bearer
    (RFC 6750); listing collections (batch-*, veeam included) shows nothing."""
    await front.admin_setup()
    for method, path in [
        ("GET", "/v1/collections"),
        ("GET", JOBS),
        ("DELETE", f"{JOBS}/j"),
        ("POST", f"{JOBS}:batchDelete"),
    ]:
        reply = await front.http.request(method, path, json={} if method == "POST" else None)
        assert reply.status_code == 401, (method, path, reply.text)
        assert reply.headers["www-authenticate"] == 'Bearer realm="jobcontrol"'
        assert reply.json() == unauthenticated()
    reply = await front.http.get(f"{JOBS}/j", headers=front.bearer("admin"))
    assert reply.status_code == 200


async def test_a7_the_callers_bearer_token_is_forwarded(front: Front) -> None:
    """A7: the gateway forwards the caller's bearer token (not its own): alice (editor on
    team-*) works on team-a; the viewer reads but may not delete (403, nothing deleted);
    a token of another issuer is 401."""
    await front.admin_setup()
    alice, viewer = front.bearer("alice"), front.bearer("viewer")
    reply = await front.http.post(f"{JOBS}?jobId=k", json={}, headers=alice)
    assert reply.status_code == 200, reply.text
    reply = await front.http.delete(f"{JOBS}/j", headers=viewer)
    assert reply.status_code == 403
    assert reply.json() == denied("jobcontrol.jobs.delete", "collections/team-a/jobs/j")
    assert (await front.http.get(f"{JOBS}/j", headers=viewer)).status_code == 200
    stranger = tokens.mint(front.secured.key, "alice", issuer="https://other", audience=AUDIENCE)
    reply = await front.http.get(JOBS, headers={"authorization": f"Bearer {stranger}"})
    assert reply.status_code == 401
    assert reply.json() == unauthenticated("the bearer token is not valid: Invalid issuer")


async def test_a7_permission_denied_before_not_found_on_rest(front: Front) -> None:
    """A7 (AIP-211): alice has no role on batch-acct2: its existing and its missing jobs
    answer the same 403, and alice's list does not show it; nor may she set its quota."""
    await front.admin_setup()
    alice = front.bearer("alice")
    existing = await front.http.get("/v1/collections/batch-acct2", headers=alice)
    missing = await front.http.get("/v1/collections/batch-acct9", headers=alice)
    assert existing.json() == denied("jobcontrol.collections.get", "collections/batch-acct2")
    assert missing.json() == denied("jobcontrol.collections.get", "collections/batch-acct9")
    listed = await front.http.get("/v1/collections", headers=alice)
    assert [c["name"] for c in listed.json().get("collections", [])] == ["collections/team-a"]
    reply = await front.http.patch(
        "/v1/collections/batch-acct2?updateMask=quota",
        json={"quota": {"maxJobCount": 0}},
        headers=alice,
    )
    assert reply.json() == denied("jobcontrol.collections.update", "collections/batch-acct2")
    admin_view = await front.http.get("/v1/collections/batch-acct2", headers=front.bearer("admin"))
    assert "maxJobCount" not in admin_view.json().get("quota", {})


async def test_a7_operator_transitions_need_the_operator_role_on_rest(front: Front) -> None:
    """A7: alice (editor) may not :transition (operator-only): 403, the job unchanged."""
    await front.admin_setup()
    alice = front.bearer("alice")
    before = (await front.http.get(f"{JOBS}/j", headers=alice)).json()
    reply = await front.http.post(f"{JOBS}/j:transition", json={"state": "RUNNING"}, headers=alice)
    assert reply.json() == denied("jobcontrol.jobs.transition", "collections/team-a/jobs/j")
    assert (await front.http.get(f"{JOBS}/j", headers=alice)).json() == before


async def test_a8_a_client_can_never_set_an_identity_header(front: Front) -> None:
    """A8: x-jobcontrol-principal / -grants sent by an HTTP client are not forwarded:
    anonymous with them is 401; alice with them is still alice (403 on batch-acct2)."""
    await front.admin_setup()
    forged = {"x-jobcontrol-principal": "user:admin", "x-jobcontrol-grants": "admin=*"}
    reply = await front.http.get("/v1/collections/batch-acct2", headers=forged)
    assert (reply.status_code, reply.json()) == (401, unauthenticated())
    reply = await front.http.get(
        "/v1/collections/batch-acct2", headers={**forged, **front.bearer("alice")}
    )
    assert reply.json() == denied("jobcontrol.collections.get", "collections/batch-acct2")


async def test_a8_pre_creating_another_principals_collection_is_refused(front: Front) -> None:
    """A8 (issue probe): without a role covering the name, creating batch-acct1 (with the
    wrong profile) is 403 and nothing is created."""
    alice = front.bearer("alice")
    reply = await front.http.post(
        "/v1/collections?collectionId=batch-acct1", json={"profile": "BACKUP"}, headers=alice
    )
    assert reply.json() == denied("jobcontrol.collections.create", "collections/batch-acct1")
    reply = await front.http.get("/v1/collections/batch-acct1", headers=front.bearer("admin"))
    assert reply.status_code == 404


async def test_a9_client_certificate_on_the_gateway_is_the_principal(tmp_path: Path) -> None:
    """A9: the gateway on TLS with a client CA: a certificate it issued is the principal
    cert:<subject> on /v1 (carol, bound as viewer: she reads the collection, creating is
    403); a bearer token wins over the certificate; no certificate, or a management
    certificate (trusted for its dialect only), is 401."""
    secured = await secured_server(tmp_path)
    pki = Pki(tmp_path / "pki")
    server_cert, carol = pki.server(), pki.client("carol")
    management = self_signed(tmp_path / "mgmt", "carol")
    gateway, stop = await start_gateway(
        secured.server.address,
        grpc_token_file=gateway_token(secured, tmp_path),
        tls_cert=str(server_cert.cert),
        tls_key=str(server_cert.key),
        tls_client_ca=str(pki.ca.cert),
        management_certs_file=str(management.cert),
    )
    try:
        async with tls_client(
            gateway.base_url, pki.ca.cert, (str(carol.cert), str(carol.key))
        ) as http:
            reply = await http.post("/v1/collections?collectionId=c", json=SCHEDULED)
            assert reply.json() == denied("jobcontrol.collections.create", "collections/c")
            admin = {"authorization": f"Bearer {secured.token('admin')}"}
            reply = await http.post("/v1/collections?collectionId=c", json=SCHEDULED, headers=admin)
            assert reply.status_code == 200, reply.text
            reply = await http.get("/v1/collections/c")
            assert (reply.status_code, reply.json()["owner"]) == (200, "user:admin")
        for cert in (None, (str(management.cert), str(management.key))):
            async with tls_client(gateway.base_url, pki.ca.cert, cert) as http:
                reply = await http.get("/v1/collections/c")
                assert (reply.status_code, reply.json()) == (401, unauthenticated())
    finally:
        await stop()
        await secured.server.stop(grace=1.0)


async def test_a9_an_open_server_behind_the_gateway_still_serves_everyone(
    tmp_path: Path, gateway: RunningGateway
) -> None:
    """A9: the default (open, loopback) mode keeps working without any credentials."""
    async with httpx.AsyncClient(base_url=gateway.base_url) as http:
        reply = await http.post("/v1/collections?collectionId=c", json=SCHEDULED)
        assert reply.status_code == 200, reply.text


# --- A10 the secured shape as the README shows it, and protected mode, as processes --------

README_POLICY = """
[[bindings]]
principals = ["user:gateway"]
role = "impersonator"

[[bindings]]
principals = ["user:alice"]
role = "editor"
collections = ["team-*"]
"""


def jobctl(*argv: str) -> subprocess.CompletedProcess[str]:
    """`jobctl ARGV` as a process (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "jobcontrol.service.cli", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
async def test_a10_jobctl_serve_secured_as_the_readme_shows(tmp_path: Path) -> None:
    """A10: `jobctl keygen`, a policy file, `jobctl token`, then `jobctl serve` with
    JOBCONTROL_AUTH_* and the gateway's JOBCONTROL_GRPC_TOKEN_FILE: alice's token works on
    /v1 and on gRPC, no token is 401 / UNAUTHENTICATED."""
    assert jobctl("keygen", str(tmp_path / "keys")).returncode == 0
    key, jwks = tmp_path / "keys" / "signing-key.pem", tmp_path / "keys" / "jwks.json"
    (tmp_path / "policy.toml").write_text(README_POLICY)
    gateway_jwt = jobctl("token", "--key", str(key), "--sub", "gateway").stdout.strip()
    (tmp_path / "gateway.jwt").write_text(gateway_jwt)
    alice = jobctl("token", "--key", str(key), "--sub", "alice").stdout.strip()
    env = {
        "JOBCONTROL_AUTH_JWKS": str(jwks),
        "JOBCONTROL_AUTH_POLICY": str(tmp_path / "policy.toml"),
        "JOBCONTROL_GRPC_TOKEN_FILE": str(tmp_path / "gateway.jwt"),
    }
    process = ServerProcess(tmp_path / "jobs.db", with_gateway=True, env=env)
    try:
        address = await process.start()
        await process.wait_http()
        async with httpx.AsyncClient(base_url=process.base_url, timeout=10) as http:
            headers = {"authorization": f"Bearer {alice}"}
            reply = await http.post(
                "/v1/collections?collectionId=team-a", json=SCHEDULED, headers=headers
            )
            assert reply.status_code == 200, reply.text
            reply = await http.get("/v1/collections/team-a")
            assert (reply.status_code, reply.json()) == (401, unauthenticated())
        async with grpc.aio.insecure_channel(address) as channel:
            stub = job_service_pb2_grpc.JobServiceStub(channel)
            metadata = (("authorization", f"Bearer {alice}"),)
            got = await stub.GetCollection(
                js.GetCollectionRequest(name="collections/team-a"), metadata=metadata
            )
            assert got.owner == "user:alice"
            await expect_error(
                stub.GetCollection(js.GetCollectionRequest(name="collections/team-a")),
                grpc.StatusCode.UNAUTHENTICATED,
                "UNAUTHENTICATED",
            )
        assert await process.terminate() == 0
    finally:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "listener"),
    [
        (["serve", "--grpc-address", "0.0.0.0:0", "--http-address", ""], "0.0.0.0:0"),
        (["gateway", "--http-address", "0.0.0.0:0"], "0.0.0.0:0"),
    ],
)
def test_a10_without_authentication_non_loopback_listeners_are_refused(
    argv: list[str], listener: str
) -> None:
    """A10 (protected mode): no authentication configured and a non-loopback address:
    the process exits at once with a message naming the address and `--auth none`."""
    done = jobctl(*argv)
    assert done.returncode != 0
    assert listener in done.stderr and "--auth none" in done.stderr, done.stderr
