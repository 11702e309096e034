"""A throwaway certificate authority and a loopback server certificate, for tests and a local demo.

    from msigvault.testing.tls import make_test_pki
    pki = make_test_pki(tmp_path)          # pki.ca_cert, pki.server_cert, pki.server_key (PEM files)

The CA and the server key are fresh EC P-256 keys; the server certificate names 127.0.0.1, ::1 and
localhost and lives a day. Never use these for a real service: the CA key sits next to the files.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..fileio import write_atomic

__all__ = ["TestPki", "make_test_pki"]


@dataclass(frozen=True)
class TestPki:
    """Paths of the PEM files: the CA certificate (what clients pin) and the server's certificate and key."""

    __test__ = False  # not a pytest test class

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "msigvault test PKI")])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_test_pki(directory: "str | Path", *, name: str = "msigvault test CA",
                  lifetime: _dt.timedelta = _dt.timedelta(days=1)) -> TestPki:
    """Write ``ca.pem``, ``ca.key``, ``server.pem`` and ``server.key`` into ``directory`` (keys mode 0600)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + lifetime)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    alt = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.IPAddress(ipaddress.ip_address("::1")), x509.DNSName("localhost")])
    server = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now).not_valid_after(now + lifetime)
              .add_extension(alt, critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pki = TestPki(d / "ca.pem", d / "ca.key", d / "server.pem", d / "server.key")
    write_atomic(pki.ca_cert, ca.public_bytes(serialization.Encoding.PEM), overwrite=True)
    write_atomic(pki.ca_key, _key_pem(ca_key), secret=True, overwrite=True)
    write_atomic(pki.server_cert, server.public_bytes(serialization.Encoding.PEM), overwrite=True)
    write_atomic(pki.server_key, _key_pem(server_key), secret=True, overwrite=True)
    return pki
