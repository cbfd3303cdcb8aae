"""TLS Secret -> Certificate, parsed and checked with ``cryptography``."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from polyingress.core.pipeline.model import Certificate, ObjectRef

__all__ = ["CertificateError", "certificate_from_secret", "parse_pem_pair"]


class CertificateError(ValueError):
    pass


def _data_field(secret: Mapping[str, Any], key: str) -> str:
    string_data = secret.get("stringData") or {}
    if isinstance(string_data, Mapping) and isinstance(string_data.get(key), str):
        return str(string_data[key])
    data = secret.get("data") or {}
    raw = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(raw, str) or not raw:
        raise CertificateError(f"data[{key!r}] is missing")
    try:
        return base64.b64decode(raw, validate=True).decode("ascii")
    except (binascii.Error, ValueError) as exc:
        raise CertificateError(f"data[{key!r}] is not valid base64 of ASCII PEM: {exc}") from exc


@lru_cache(maxsize=4096)
def parse_pem_pair(cert_pem: str, key_pem: str) -> tuple[tuple[str, ...], str, str, str, str]:
    """Check a cert/key pair; returns (dns_names, not_after, fingerprint, cert, key).

    Cached on the PEM text: a 10,000-Secret world is parsed once, not at every sync.
    """
    if "\x00" in cert_pem or "\x00" in key_pem:
        raise CertificateError("PEM data contains NUL bytes")
    try:
        chain = x509.load_pem_x509_certificates(cert_pem.encode())
    except ValueError as exc:
        raise CertificateError(f"tls.crt is not a PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"tls.key is not an unencrypted PEM private key: {exc}") from exc
    leaf = chain[0]
    pub = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kpub = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if pub != kpub:
        raise CertificateError("tls.key does not match the certificate in tls.crt")
    names: list[str] = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        names = [str(cn.value) for cn in cns]
    not_after = leaf.not_valid_after_utc.isoformat()
    fingerprint = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()
    # Re-serialize: what reaches a proxy is what cryptography parsed, never the raw text.
    cert_out = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)
    key_out = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return tuple(sorted(set(names))), not_after, fingerprint, cert_out, key_out


def certificate_from_secret(secret: Mapping[str, Any]) -> tuple[Certificate, list[str]]:
    """Returns the certificate and warnings (e.g. expired). Raises CertificateError."""
    meta = secret.get("metadata") or {}
    ns, name = meta.get("namespace") or "default", meta.get("name") or ""
    stype = secret.get("type")
    if stype != "kubernetes.io/tls":
        shown = "missing" if stype is None else repr(stype)
        raise CertificateError(f"type is {shown}, expected 'kubernetes.io/tls'")
    cert_pem = _data_field(secret, "tls.crt")
    key_pem = _data_field(secret, "tls.key")
    names, not_after, fingerprint, cert_out, key_out = parse_pem_pair(cert_pem, key_pem)
    warnings = []
    if dt.datetime.fromisoformat(not_after) < dt.datetime.now(dt.UTC):
        warnings.append(f"certificate expired at {not_after}")
    return (
        Certificate(
            name=f"{ns}__{name}",
            source=ObjectRef(kind="Secret", namespace=ns, name=name),
            cert_pem=cert_out,
            key_pem=key_out,
            dns_names=names,
            not_after=not_after,
            fingerprint=fingerprint,
        ),
        warnings,
    )
