"""Who is calling: a bearer JWT (verified with the configured keys and algorithms, never
the token's own choice), else the subject of the TLS client certificate, else nobody; and,
from a caller allowed to impersonate (a gateway), the principal it asserts."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from jobcontrol.service.core import access
from jobcontrol.service.core.access import Grant, Principal
from jobcontrol.service.core.authorizer import Authorizer

PRINCIPAL_HEADER = "x-jobcontrol-principal"
GRANTS_HEADER = "x-jobcontrol-grants"
# the algorithms each kind of key may verify (an RSA key never checks an HMAC)
_KEY_ALGORITHMS = {
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "EC": {"ES256", "ES384", "ES512"},
    "oct": {"HS256", "HS384", "HS512"},
    "OKP": {"EdDSA"},
}
LEEWAY_SECONDS = 30
MAX_TOKEN = 16 * 1024
# verified tokens are remembered (a signature check costs more than the call it guards)
# until they expire, for at most as long as keys fetched from a JWKS URL are cached
VERIFIED_SECONDS = 300.0
VERIFIED_MAX = 4096


@dataclass(frozen=True)
class TokenRules:
    """How bearer tokens are verified."""

    jwks: str  # a JWKS file or an http(s) URL
    algorithms: tuple[str, ...]
    issuer: str = ""
    audience: str = ""


class Authenticator:
    """Turns a call's metadata and TLS peer into its principal."""

    def __init__(self, rules: TokenRules | None, authorizer: Authorizer) -> None:
        self.rules = rules
        self.authorizer = authorizer
        self._keys: jwt.PyJWKSet | None = None
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._client: jwt.PyJWKClient | None = None
        if rules is not None:
            if rules.jwks.startswith(("http://", "https://")):
                self._client = jwt.PyJWKClient(rules.jwks, cache_keys=True, lifespan=300)
            else:
                self._keys = jwt.PyJWKSet.from_dict(json.loads(Path(rules.jwks).read_text()))

    async def principal(self, metadata: dict[str, str], auth_context: Any) -> Principal:
        """The caller's principal (the asserted one when a gateway asserts one)."""
        caller = await self._caller(metadata, auth_context)
        asserted = metadata.get(PRINCIPAL_HEADER)
        if asserted is None:
            return caller
        if not self.authorizer.may_impersonate(caller):
            raise access.denied(access.IMPERSONATE, "principals")
        return assertion(asserted, metadata.get(GRANTS_HEADER, ""))

    async def _caller(self, metadata: dict[str, str], auth_context: Any) -> Principal:
        header = metadata.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if header and scheme.lower() == "bearer" and self.rules is not None:
            return Principal(f"user:{await self._subject(token.strip())}")
        if header and self.rules is not None:
            raise access.unauthenticated("authorization must be `Bearer <JWT>`")
        subject = _certificate_subject(auth_context)
        if subject:
            return Principal(f"cert:{subject}")
        return Principal(access.ANONYMOUS)

    async def _subject(self, token: str) -> str:
        """The `sub` of a valid token (remembered until it expires, LRU-bounded)."""
        now = time.time()
        known = self._verified.get(token)
        if known is not None and known[1] > now:
            self._verified.move_to_end(token)
            return known[0]
        subject, expires = await self._verify(token)
        self._verified[token] = (subject, min(expires, now + VERIFIED_SECONDS))
        if len(self._verified) > VERIFIED_MAX:
            self._verified.popitem(last=False)
        return subject

    async def _verify(self, token: str) -> tuple[str, float]:
        assert self.rules is not None
        if len(token) > MAX_TOKEN:
            raise access.unauthenticated("the bearer token is too long")
        try:
            key = await self._key(token)
            fits = _KEY_ALGORITHMS.get(str(key.key_type), set())
            allowed = [a for a in self.rules.algorithms if a in fits]
            required = ["exp", "sub"] + (["iss"] if self.rules.issuer else [])
            claims = jwt.decode(
                token,
                key.key,
                algorithms=allowed,
                issuer=self.rules.issuer or None,
                audience=self.rules.audience or None,
                leeway=LEEWAY_SECONDS,
                options={"require": required + (["aud"] if self.rules.audience else [])},
            )
        except (jwt.PyJWTError, jwt.PyJWKClientError, ValueError, KeyError) as exc:
            raise access.unauthenticated(f"the bearer token is not valid: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 256:
            raise access.unauthenticated("the bearer token has no usable `sub`")
        return subject, float(claims["exp"])

    async def _key(self, token: str) -> jwt.PyJWK:
        if self._client is not None:
            client = self._client
            return await asyncio.to_thread(client.get_signing_key_from_jwt, token)
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        if kid is None and len(self._keys.keys) == 1:
            return self._keys.keys[0]
        return self._keys[str(kid)]


def _certificate_subject(auth_context: Any) -> str:
    """The verified client certificate's subject as gRPC renders it (RFC 4514, the last
    RDN first: `O=example,CN=alice`), if any."""
    if not auth_context:
        return ""
    values = auth_context.get("x509_subject") or ()
    return values[0].decode() if values else ""


def assertion(principal_id: str, grants: str) -> Principal:
    """The principal a gateway asserts: `kind:name`, with `role=collections;…` grants."""
    if not principal_id or len(principal_id) > 512 or ":" not in principal_id:
        raise access.unauthenticated("the asserted principal must look like kind:name")
    parsed = []
    for item in filter(None, (part.strip() for part in grants.split(";"))):
        role, sep, pattern = item.partition("=")
        if not sep or role not in access.ROLES or not pattern:
            raise access.unauthenticated(
                f"the asserted grant {item[:80]!r} is not role=collections"
            )
        parsed.append(Grant(role, pattern))
    return Principal(principal_id, tuple(parsed))
