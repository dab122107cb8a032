"""Keys and tokens for trying the secured shape: `jobctl keygen` writes a signing key and
the JWKS a server verifies with; `jobctl token` mints a bearer JWT with such a key."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

KEY_FILE = "signing-key.pem"
SECRET_FILE = "signing-key.jwk.json"
JWKS_FILE = "jwks.json"


def keygen(out: Path, algorithm: str = "ES256", kid: str = "key-1") -> tuple[Path, Path]:
    """Write a new signing key and the JWKS that verifies its tokens into `out`; returns
    (signing key, JWKS). HS256: one secret JWK serves both (keep it secret)."""
    out.mkdir(parents=True, exist_ok=True)
    if algorithm.startswith("HS"):
        secret = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        jwk = {"kty": "oct", "k": secret, "kid": kid, "alg": algorithm, "use": "sig"}
        key_path = _write(out / SECRET_FILE, json.dumps(jwk), private=True)
        jwks_path = _write(out / JWKS_FILE, json.dumps({"keys": [jwk]}), private=True)
        return key_path, jwks_path
    private = _private_key(algorithm)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = _write(out / KEY_FILE, pem.decode(), private=True)
    jwks_path = _write(out / JWKS_FILE, json.dumps(jwks_of(private.public_key(), kid, algorithm)))
    return key_path, jwks_path


def _private_key(algorithm: str) -> Any:
    if algorithm.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    if algorithm not in curves:
        raise SystemExit(f"keygen: unsupported algorithm {algorithm}")
    return ec.generate_private_key(curves[algorithm])


def jwks_of(public_key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    """The JWKS of one public key."""
    maker = ECAlgorithm if isinstance(public_key, ec.EllipticCurvePublicKey) else RSAAlgorithm
    jwk: dict[str, Any] = json.loads(maker.to_jwk(public_key))
    jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    return {"keys": [jwk]}


def mint(
    key_file: Path,
    subject: str,
    *,
    issuer: str = "",
    audience: str = "",
    ttl: float = 3600,
    algorithm: str = "",
) -> str:
    """A bearer JWT for `subject`, signed with the key `keygen` wrote (a PEM private key or
    a secret JWK); the algorithm and kid come from the key unless given."""
    text = key_file.read_text()
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + int(ttl)}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    if text.lstrip().startswith("{"):
        jwk = json.loads(text)
        key = jwt.PyJWK(jwk)
        alg = algorithm or jwk.get("alg", "HS256")
        return jwt.encode(claims, key.key, algorithm=alg, headers={"kid": jwk.get("kid")})
    private = serialization.load_pem_private_key(text.encode(), password=None)
    default = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
    kid = _kid_beside(key_file)
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, private, algorithm=algorithm or default, headers=headers)  # type: ignore[arg-type]


def _kid_beside(key_file: Path) -> str:
    """The kid of the JWKS `keygen` wrote beside a key ("" without one)."""
    jwks = key_file.parent / JWKS_FILE
    if not jwks.exists():
        return ""
    keys = json.loads(jwks.read_text()).get("keys") or [{}]
    return str(keys[0].get("kid", ""))


def _write(path: Path, text: str, private: bool = False) -> Path:
    path.write_text(text + "\n")
    if private:
        path.chmod(0o600)
    return path
