"""Azure management certificates (Scheduler, Import/Export): thumbprints per subscription."""

# As the classic Service Management APIs did: the client authenticates with a certificate
# over TLS, and its SHA-1 thumbprint must be registered for the subscription in the URL.
# The listener has already verified the certificate against its trust store (which holds
# the management certificates themselves, so self-signed ones pass) and the handshake
# proved the client holds its key; the thumbprint then names exactly that certificate.

from __future__ import annotations

import functools
import hashlib
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

import grpc

from jobcontrol.gateway.config import GatewaySettings
from jobcontrol.gateway.errors import GatewayError, gateway_error
from jobcontrol.gateway.http import Request

__all__ = [
    "AUTHENTICATION_FAILED", "MESSAGE", "ManagementCerts", "parse_certs", "path_subscription",
    "thumbprint",
]  # fmt: skip

log = logging.getLogger("jobcontrol.gateway")
AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
# the Service Management API's own wording for its 403 AuthenticationFailed
MESSAGE = (
    "The server failed to authenticate the request. Verify that the certificate is valid "
    "and is associated with this subscription."
)
PRINCIPAL_KIND = "azure"
_THUMBPRINT = re.compile(r"^[0-9A-F]{40}$")
# subscription ids are GUIDs; anything that fits a path segment and a principal id is kept
_SUBSCRIPTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ENV = "JOBCONTROL_MANAGEMENT_CERTS"


def parse_certs(text: str) -> dict[str, frozenset[str]]:
    """`subscription=THUMBPRINT[,...]` -> {lower-case subscription: upper-case thumbprints}.
    A subscription may be named several times (several certificates); thumbprints are hex
    in any case, spaces and colons ignored. SystemExit names a malformed entry."""
    registered: dict[str, set[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        subscription, sep, raw = item.partition("=")
        subscription = subscription.strip()
        digits = raw.replace(" ", "").replace(":", "").upper()
        if not sep or not _SUBSCRIPTION.match(subscription) or not _THUMBPRINT.match(digits):
            raise SystemExit(
                f"{_ENV}: {item!r}: expected subscription=THUMBPRINT (a SHA-1 thumbprint, "
                "40 hex digits)"
            )
        # subscription ids are GUIDs, which Azure compares case-insensitively
        registered.setdefault(subscription.lower(), set()).add(digits)
    return {sub: frozenset(prints) for sub, prints in registered.items()}


def thumbprint(request: Request) -> str | None:
    """The SHA-1 thumbprint (upper-case hex) of the TLS client certificate the connection
    presented, None without one."""
    tls = (request.scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    if not chain:
        return None
    der = ssl.PEM_cert_to_DER_cert(chain[0])
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def path_subscription(request: Request) -> str:
    """The subscription a request's path names (its first segment), before routing."""
    parts = request.path.split("/")
    return unquote(parts[1]) if len(parts) > 1 else ""


def authentication_failed() -> GatewayError:
    """403 AuthenticationFailed in every Service Management dialect."""
    return gateway_error(
        grpc.StatusCode.UNAUTHENTICATED, AUTHENTICATION_FAILED, MESSAGE, http_status=403
    )


@dataclass(frozen=True)
class ManagementCerts:
    """The registered thumbprints, and whether a request needs one (management
    certificates are configured, or the gateway has an identity towards the server: a
    secured gateway never calls as anyone it has not authenticated)."""

    registered: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    required: bool = False

    @classmethod
    def from_settings(cls, settings: GatewaySettings | None) -> ManagementCerts:
        """From `management_certs` and `secured` (None: the open development mode)."""
        if settings is None:
            return cls()
        return _load(settings.management_certs, settings.secured, bool(settings.tls_cert))

    def principal(self, request: Request, subscription: str) -> str | None:
        """`azure:<subscription>` when the request's client certificate is registered for
        `subscription`; None when no certificate is required (open mode); otherwise
        403 AuthenticationFailed."""
        if not self.required:
            return None
        found = thumbprint(request)
        canonical = subscription.lower()
        if found is None or found not in self.registered.get(canonical, ()):
            raise authentication_failed()
        return f"{PRINCIPAL_KIND}:{canonical}"


@functools.cache
def _load(text: str, secured: bool, tls: bool) -> ManagementCerts:
    """Parsed once per configuration (both dialects share it, and warn once)."""
    registered = parse_certs(text)
    certs = ManagementCerts(MappingProxyType(registered), bool(registered) or secured)
    if certs.required and not tls:
        log.warning(
            "Azure Scheduler and Import/Export need a client certificate, but the gateway "
            "has no TLS listener (--tls-cert): every request of theirs is refused (403)"
        )
    return certs
