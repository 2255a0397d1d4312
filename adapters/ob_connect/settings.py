"""ob-connect configuration: the consumer key and PKCS#12 signing key Mastercard issued (or, locally, throw-away
ones made on first start), the merchant named in every request, and what the environment is."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from gateway.secrets import Secret

LOCAL_P12 = "ob-connect-signing.p12"
LOCAL_CERT = "ob-connect-signing.pem"
LOCAL_PASSWORD = "local-only-p12-password"


@attrs.frozen
class ObConnectSettings:
    consumer_key: str
    merchant_id: str
    merchant_name: str
    redirect_uris: tuple[str, ...]
    signing_key_p12: str | None = None  # the PKCS#12 file from the Mastercard Developers project
    signing_key_password: Secret | None = None
    local_material: str | None = None  # local only: make a throw-away key and certificate here on first start
    # Pre-Production moves real money with real data: the environment file says so, and the gateway warns at
    # start and tags every payment through it as live.
    live: bool = False
    aspsp_cache_seconds: float = attrs.field(default=300.0, validator=attrs.validators.ge(0))
    sandbox_payment_timeline: tuple[float, float, float] = (1.0, 2.0, 4.0)

    def __attrs_post_init__(self) -> None:
        if self.local_material is None and not (self.signing_key_p12 and self.signing_key_password):
            raise ValueError("set signing_key_p12 and signing_key_password (or local_material in the local "
                             "environment)")
        if not self.redirect_uris:
            raise ValueError("redirect_uris: at least one redirect URI registered with the banks is needed")


@attrs.frozen
class SigningMaterial:
    key: Any  # a cryptography RSA private key, as the signer library takes it
    certificate_pem: bytes | None  # what a simulator trusts (local only)


_LOCAL_LOADED: dict[tuple[str, int, int], SigningMaterial] = {}


def load_material(settings: ObConnectSettings) -> SigningMaterial:
    """The signing key, loaded with the provider's own PKCS#12 loader (`oauth1.authenticationutils`)."""
    from oauth1.authenticationutils import load_signing_key

    if settings.local_material is not None:
        p12 = ensure_local_p12(Path(settings.local_material))
        # Opening a PKCS#12 file costs tens of milliseconds (its password is stretched); the throw-away local one is
        # opened by the adapter and by its simulator on every start, so it is kept per file version.
        stat = p12.stat()
        version = (str(p12.resolve()), stat.st_mtime_ns, stat.st_size)
        if version not in _LOCAL_LOADED:
            _LOCAL_LOADED[version] = SigningMaterial(load_signing_key(str(p12), LOCAL_PASSWORD),
                                                     (p12.parent / LOCAL_CERT).read_bytes())
        return _LOCAL_LOADED[version]
    assert settings.signing_key_p12 and settings.signing_key_password
    return SigningMaterial(load_signing_key(settings.signing_key_p12, settings.signing_key_password.reveal()), None)


def ensure_local_p12(directory: Path) -> Path:
    """A throw-away RSA key and self-signed certificate in a PKCS#12 file, as a Mastercard Developers project
    would issue; made once, reused after. Nothing here works anywhere but against the local simulator."""
    p12 = directory / LOCAL_P12
    if p12.exists() and (directory / LOCAL_CERT).exists():
        return p12
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gateway local ob-connect signing key")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=397)).sign(key, hashes.SHA256()))
    data = pkcs12.serialize_key_and_certificates(
        b"keyalias", key, cert, None, serialization.BestAvailableEncryption(LOCAL_PASSWORD.encode()))
    tmp = p12.with_suffix(".tmp")
    tmp.write_bytes(data)
    (directory / LOCAL_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp.replace(p12)
    return p12
