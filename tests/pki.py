"""Certificates and keys made in the test (cryptography): a CA, server and client
certificates signed by it, self-signed client certificates, their SHA-1 thumbprints and
their PKCS#12 form."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path
    der: bytes

    @property
    def thumbprint(self) -> str:
        """The SHA-1 thumbprint, upper-case hex (as Azure shows management certificates)."""
        return hashlib.sha1(self.der, usedforsecurity=False).hexdigest().upper()

    def pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()

    def pfx(self, password: str) -> str:
        """Certificate and key as base64 PKCS#12 encrypted with `password` (an Azure
        Scheduler ClientCertificate authentication's `pfx`)."""
        key = serialization.load_pem_private_key(self.key_pem(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        blob = pkcs12.serialize_key_and_certificates(
            b"client",
            key,
            x509.load_der_x509_certificate(self.der),
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
        return base64.b64encode(blob).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "jobcontrol-tests"),
        ]
    )


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Issued:
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


class Pki:
    """A test CA under `directory`, issuing certificates on demand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = _name("jobcontrol test CA")
        cert = (
            _builder(name, name, self._key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._cert = cert
        self.ca = _write(directory, "ca", cert, self._key)

    def server(self, stem: str = "server") -> Issued:
        """A certificate for 127.0.0.1 and localhost."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = (
            _builder(_name("localhost"), self._cert.subject, key)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _write(self.directory, stem, cert, key)

    def client(self, common_name: str) -> Issued:
        """A client certificate for `common_name`, signed by the CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _builder(_name(common_name), self._cert.subject, key)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _write(self.directory, f"client-{common_name}", cert, key)


def self_signed(directory: Path, common_name: str) -> Issued:
    """A self-signed client certificate (as Azure management certificates usually are)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _write(directory, f"self-{common_name}", cert, key)
