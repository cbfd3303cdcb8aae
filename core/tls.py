"""The self-signed fallback certificate served for unknown SNI and hosts without a valid Secret."""

from __future__ import annotations

import datetime as dt
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from polyingress.core.pipeline.model import Certificate, ObjectRef

__all__ = ["FALLBACK_NAME", "fallback_certificate", "self_signed"]

FALLBACK_NAME = "polyingress-fallback"
_lock = threading.Lock()
_fallback: Certificate | None = None


def self_signed(common_name: str, dns_names: tuple[str, ...] = (), days: int = 365) -> Certificate:
    """A new self-signed ECDSA P-256 certificate (used for the fallback and in tests)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, now + dt.timedelta(days=days)) - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return Certificate(
        name=FALLBACK_NAME,
        source=ObjectRef(kind="Secret", namespace="", name=FALLBACK_NAME),
        cert_pem=cert_pem,
        key_pem=key_pem,
        dns_names=tuple(dns_names) or (common_name,),
        not_after=cert.not_valid_after_utc.isoformat(),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def fallback_certificate() -> Certificate:
    """The process-wide fallback certificate (CN ``polyingress-fallback.invalid``), made once."""
    global _fallback
    with _lock:
        if _fallback is None:
            _fallback = self_signed("polyingress-fallback.invalid")
        return _fallback
