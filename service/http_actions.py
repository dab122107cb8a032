"""The scheduler's action runner: HTTP and HTTPS actions with aiohttp (one session per
server); queue actions are stored and shown, and fail with a clear message until an
adapter is configured."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)

from jobcontrol.service.core.model import ActionOutcome

# the history message holds at most this much of the response
RESPONSE_LIMIT = 2048
QUEUE_TYPES = ("STORAGE_QUEUE", "SERVICE_BUS_QUEUE", "SERVICE_BUS_TOPIC")


class HttpActionRunner:
    """`service.core.ports.ActionRunner` over HTTP: method, uri, headers and body of the
    action's request, Basic or ClientCertificate authentication from its stored secrets;
    success is a 2xx reply. Redirects are not followed (a 3xx is the target's answer).

    HTTPS targets are verified against the system's trusted CAs and, with `ca_file` (PEM,
    the server's `--action-ca-file`), that file's CAs as well: for every action, with or
    without a client certificate. The file is read here, so a bad one fails at start."""

    def __init__(self, ca_file: str = "") -> None:
        self._session: aiohttp.ClientSession | None = None
        self._ca = Path(ca_file).read_text() if ca_file else None
        # aiohttp's own default context unless there is an extra CA to trust
        self._tls: ssl.SSLContext | bool = _context(self._ca) if self._ca is not None else True

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60),
                auto_decompress=False,
            )
        return self._session

    async def run(
        self, action: dict[str, Any], headers: dict[str, str], seconds: float
    ) -> ActionOutcome:
        kind = action.get("type") or "HTTP"
        if kind in QUEUE_TYPES:
            return ActionOutcome(
                False, f"{kind} action: action type not available in this deployment"
            )
        request = action.get("request") or {}
        uri = request.get("uri") or ""
        host = urlsplit(uri).hostname or uri
        if not uri:
            return ActionOutcome(False, "Http Action - the action has no request uri")
        try:
            auth, tls = _authentication(request.get("authentication") or {}, self._ca)
            own = request.get("headers") or {}
            if auth and any(name.lower() == "authorization" for name in own):
                raise ValueError("the action has both an Authorization header and Basic auth")
            # the job's own headers, its credentials, then the scheduler's (they identify
            # the occurrence)
            sent = {**own, **auth, **headers}
            async with self._client().request(
                (request.get("method") or "GET").upper(),
                uri,
                headers=sent,
                data=(request.get("body") or "").encode(),
                ssl=tls if tls is not None else self._tls,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as reply:
                body = await reply.content.read(RESPONSE_LIMIT)
        except TimeoutError:
            return ActionOutcome(
                False, f"Http Action - Request to host '{host}' timed out after {seconds:g} s"
            )
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return ActionOutcome(
                False, f"Http Action - Request to host '{host}' failed: {exc}{_hint(uri, exc)}"
            )
        text = body.decode("utf-8", "replace")
        message = (
            f"Http Action - Response from host '{host}': '{reply.status} {reply.reason or ''}'"
            f" Body: {text}"
        )
        return ActionOutcome(200 <= reply.status < 300, message)


def _context(ca: str | None) -> ssl.SSLContext:
    """A default (verifying) TLS context, also trusting the PEM CAs `ca` when given."""
    context = ssl.create_default_context()
    if ca is not None:
        context.load_verify_locations(cadata=ca)
    return context


def _hint(uri: str, exc: Exception) -> str:
    """What a TLS 1.3 target refusing the client certificate looks like to the client: the
    handshake had finished, then the connection is reset or closed (no alert read)."""
    closed = isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError) or (
        isinstance(exc, aiohttp.ClientOSError)
        and not isinstance(exc, aiohttp.ClientConnectorError)
        and not isinstance(exc.__cause__ or exc.__context__, ssl.SSLError)
    )
    if closed and urlsplit(uri).scheme.lower() == "https":
        return (
            " (the HTTPS target closed the connection: did it refuse or require a client"
            " certificate?)"
        )
    return ""


def _basic(username: str, password: str) -> dict[str, str]:
    """The Basic Authorization header (as aiohttp's BasicAuth wrote it: latin-1, no ':' in
    the username)."""
    if ":" in username:
        raise ValueError('a ":" is not allowed in a Basic authentication username')
    token = base64.b64encode(f"{username}:{password}".encode("latin1")).decode()
    return {"Authorization": f"Basic {token}"}


def _authentication(
    auth: dict[str, Any], ca: str | None
) -> tuple[dict[str, str], ssl.SSLContext | None]:
    """Basic credentials (a header), or a TLS context presenting the stored client
    certificate."""
    kind = str(auth.get("type") or "").lower()
    if kind == "basic":
        return _basic(auth.get("username") or "", auth.get("password") or ""), None
    if kind == "clientcertificate" and auth.get("pfx"):
        return {}, _client_certificate(auth["pfx"], auth.get("password") or "", ca)
    return {}, None


def _client_certificate(pfx: str, password: str, ca: str | None) -> ssl.SSLContext:
    """A default TLS context (trusting `ca` too) with the PKCS#12 (base64) certificate and
    key loaded; ssl takes files only, so the PEM lives in a private temporary file while it
    loads."""
    try:
        key, cert, chain = pkcs12.load_key_and_certificates(
            base64.b64decode(pfx), password.encode() or None
        )
    except ValueError as exc:  # binascii.Error too
        raise ValueError(f"the client certificate (pfx) cannot be read: {exc}") from exc
    if key is None or cert is None:
        raise ValueError("the client certificate has no key or certificate")
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    pem += cert.public_bytes(Encoding.PEM)
    for extra in chain or ():
        pem += extra.public_bytes(Encoding.PEM)
    context = _context(ca)
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        context.load_cert_chain(path)
    finally:
        os.unlink(path)
    return context
