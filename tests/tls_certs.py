"""A throwaway CA and a loopback server certificate, made with `cryptography` for TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Issued:
    cert_der: bytes
    cert_pem: bytes
    key_pem: bytes
    key: ec.EllipticCurvePrivateKey
    name: x509.Name


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _build(
    subject: x509.Name, issuer: Issued | None, ca: bool, sans: list[x509.GeneralName]
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.name if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    der = cert.public_bytes(serialization.Encoding.DER)
    return Issued(der, ssl.DER_cert_to_PEM_cert(der).encode(), _pem_key(key), key, subject)


def make_ca() -> Issued:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mxconform test CA")])
    return _build(name, None, True, [])


def server_context(ca: Issued, folder: Path) -> ssl.SSLContext:
    """A server-side context for 127.0.0.1 with a certificate `ca` signed."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    leaf = _build(name, ca, False, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert, key = folder / "server.pem", folder / "server.key"
    cert.write_bytes(leaf.cert_pem)
    key.write_bytes(leaf.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
