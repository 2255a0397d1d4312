"""Throw-away key material for the local environment, generated on first start under ./var/certs/.

Real environments get their transport certificate, signing key and software statement from the Open Banking
directory. Locally the gateway plays that directory too, so that `make run` needs nothing from the user:
- a local CA, which signs the gateway's transport (client) certificate and the simulated ASPSP's server
  certificate (the simulator trusts this CA for client certificates, the gateway for the simulator);
- the gateway's signing key (RSA 2048, PS256), published in the directory's keystore as the software's JWKS;
- the "directory" signing key and the software statement assertion (SSA) it signs for the gateway's software.
Files are written once and reused; nothing here is secret beyond this machine, and nothing of it works elsewhere.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from ipaddress import ip_address
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.certificates.keys import load_signing_key

DIRECTORY_ISSUER = "OpenBanking Ltd (local test directory)"
KEYSTORE_BASE = "https://keystore.directory.local"
_VALID_DAYS = 397


@attrs.frozen
class LocalMaterial:
    directory: Path
    software_id: str
    organisation_id: str

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca_cert(self) -> Path:
        return self.path("local-ca.pem")

    @property
    def transport_cert(self) -> Path:
        return self.path("transport.pem")

    @property
    def transport_key(self) -> Path:
        return self.path("transport.key")

    @property
    def server_cert(self) -> Path:
        return self.path("aspsp-server.pem")

    @property
    def server_key(self) -> Path:
        return self.path("aspsp-server.key")

    @property
    def signing_key(self) -> Path:
        return self.path("signing.key")

    @property
    def software_statement(self) -> Path:
        return self.path("software-statement.jwt")

    @property
    def directory_jwks(self) -> Path:
        return self.path("directory-jwks.json")

    @property
    def software_jwks_endpoint(self) -> str:
        return f"{KEYSTORE_BASE}/{self.organisation_id}/{self.software_id}.jwks"

    def keystore(self) -> dict[str, dict]:
        """What the directory's keystore serves: the software's public signing keys at its JWKS endpoint."""
        return {self.software_jwks_endpoint: json.loads(self.path("software-jwks.json").read_text())}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _cert(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, issuer_key: rsa.RSAPrivateKey, *,
          ca: bool = False, client: bool = False, hosts: tuple[str, ...] = ()) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
               .not_valid_after(now + timedelta(days=_VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(**parts: str) -> x509.Name:
    oids = {"CN": NameOID.COMMON_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "O": NameOID.ORGANIZATION_NAME,
            "C": NameOID.COUNTRY_NAME}
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in parts.items()])


def ensure_local_material(directory: Path, *, software_id: str = "gwlocalsoftware01",
                          organisation_id: str = "0015800001041RHAAY",
                          redirect_uris: tuple[str, ...] = ("http://127.0.0.1:8080/callback",),
                          roles: tuple[str, ...] = ("AISP", "PISP")) -> LocalMaterial:
    """Create the local material once (or again if a file is missing); return where it is."""
    material = LocalMaterial(directory=Path(directory), software_id=software_id, organisation_id=organisation_id)
    names = ("local-ca.pem", "transport.pem", "transport.key", "aspsp-server.pem", "aspsp-server.key", "signing.key",
             "software-jwks.json", "directory-jwks.json", "software-statement.jwt")
    if all(material.path(n).exists() for n in names):
        return material
    material.directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    # A name of its own: two local CAs with one subject in one trust bundle would be mistaken for each other.
    ca_name = _name(CN=f"Gateway Local Test CA {uuid.uuid4().hex[:8]}", O="Gateway local environment", C="GB")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write(material.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
    # Open Banking transport certificates name the organisation (OU) and the software (CN).
    transport_key = _key()
    transport = _cert(_name(C="GB", O="Gateway local environment", OU=organisation_id, CN=software_id),
                      transport_key, ca_name, ca_key, client=True)
    _write(material.transport_cert, transport.public_bytes(serialization.Encoding.PEM))
    _write(material.transport_key, _pem_key(transport_key), private=True)
    server_key = _key()
    server = _cert(_name(CN="localhost", O="Simulated ASPSP"), server_key, ca_name, ca_key,
                   hosts=("localhost", "127.0.0.1", "::1"))
    _write(material.server_cert, server.public_bytes(serialization.Encoding.PEM))
    _write(material.server_key, _pem_key(server_key), private=True)
    _write(material.signing_key, _pem_key(_key()), private=True)
    signing = load_signing_key(material.signing_key)
    material.path("software-jwks.json").write_text(json.dumps({"keys": [signing.public_jwk()]}))
    directory_key = RSAKey.generate_key(2048)
    directory_kid = directory_key.thumbprint()
    material.path("directory-jwks.json").write_text(json.dumps({"keys": [
        {**directory_key.as_dict(private=False), "kid": directory_kid, "use": "sig", "alg": "PS256"}]}))
    now = int(time.time())
    statement = {
        "iss": DIRECTORY_ISSUER, "iat": now, "jti": str(uuid.uuid4()),
        "software_environment": "local", "software_mode": "Test", "software_id": software_id,
        "software_client_id": software_id, "software_client_name": "Gateway (local)",
        "software_client_description": "The open-banking gateway on the local environment",
        "software_version": "1.0", "software_roles": list(roles),
        "software_redirect_uris": list(redirect_uris), "software_jwks_endpoint": material.software_jwks_endpoint,
        "org_id": organisation_id, "org_name": "Gateway local environment", "org_status": "Active",
    }
    token = jwt.encode({"alg": "PS256", "kid": directory_kid, "typ": "JWT"}, statement, directory_key,
                       algorithms=["PS256"])
    material.software_statement.write_text(token)
    return material
