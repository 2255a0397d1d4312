"""Loading key material from the files config names, and what the gateway publishes of it.

The transport certificate and key authenticate the gateway in mutual TLS; the signing key (RSA, for PS256) signs
registration requests, client assertions, request objects and payment JWS, under its `kid`. Only public parts
leave the process: `/.well-known/jwks.json` serves the signing keys' public JWKs.
"""
from __future__ import annotations

import functools
import ssl
from datetime import datetime, timezone
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from joserfc.jwk import RSAKey

WARN_DAYS = 30


class KeyMaterialError(Exception):
    """A key or certificate file is missing or unreadable (the message names the file, never its content)."""


@attrs.frozen
class SigningKey:
    key: RSAKey = attrs.field(repr=False)
    kid: str

    def public_jwk(self) -> dict:
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": "PS256"}


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyMaterialError(f"cannot read the {what} {path}: {exc.strerror}") from None


def load_signing_key(path: Path, kid: str | None = None) -> SigningKey:
    """An RSA private key (PEM); its kid is the configured one or else its RFC 7638 thumbprint. Loading checks the
    key's consistency, which costs tens of milliseconds, so a file once loaded is reused until it changes."""
    try:
        stat = Path(path).stat()
    except OSError as exc:
        raise KeyMaterialError(f"cannot read the signing key {path}: {exc.strerror}") from None
    return _load_signing_key(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size, kid)


@functools.lru_cache(maxsize=16)
def _load_signing_key(path: str, _mtime_ns: int, _size: int, kid: str | None) -> SigningKey:
    try:
        key = RSAKey.import_key(_read(Path(path), "signing key"))
    except (ValueError, TypeError) as exc:
        raise KeyMaterialError(f"the signing key {path} is not an RSA private key in PEM ({exc})") from None
    if not key.is_private:
        raise KeyMaterialError(f"the signing key {path} holds no private key")
    return SigningKey(key=key, kid=kid or key.thumbprint())


def jwks(keys: list[SigningKey]) -> dict:
    return {"keys": [k.public_jwk() for k in keys]}


def client_ssl_context(cert: Path, key: Path, trust: Path | None) -> ssl.SSLContext:
    """TLS for calling an upstream with the gateway's transport certificate; `trust` replaces the system roots
    (a private or test CA), None keeps them."""
    context = ssl.create_default_context(cafile=str(trust) if trust else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise KeyMaterialError(f"cannot load the transport certificate {cert} with its key {key}: {exc}") from None
    return context


@attrs.frozen
class CertificateInfo:
    path: str
    subject: str
    issuer: str
    not_after: datetime
    days_left: int

    @property
    def warning(self) -> str | None:
        if self.days_left < 0:
            return f"EXPIRED {-self.days_left} days ago"
        if self.days_left <= WARN_DAYS:
            return f"expires in {self.days_left} days"
        return None


def describe_certificate(path: Path, now: datetime | None = None) -> CertificateInfo:
    try:
        cert = x509.load_pem_x509_certificate(_read(path, "certificate"))
    except ValueError:
        raise KeyMaterialError(f"{path} is not a PEM certificate") from None
    not_after = cert.not_valid_after_utc
    now = now or datetime.now(timezone.utc)
    return CertificateInfo(path=str(path), subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                           not_after=not_after, days_left=(not_after - now).days)


def certificate_subject(pem: bytes) -> str:
    return x509.load_pem_x509_certificate(pem).subject.rfc4514_string()


def private_key_pem(key: RSAKey) -> bytes:
    return key.private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
