"""gateway.certificates: the local environment's throw-away material, loading keys and certificates, what is
published of them, and the `gateway certificates` command."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from gateway.certificates.keys import (
    WARN_DAYS,
    KeyMaterialError,
    SigningKey,
    certificate_subject,
    client_ssl_context,
    describe_certificate,
    jwks,
    load_signing_key,
    private_key_pem,
)
from gateway.certificates.local import DIRECTORY_ISSUER, LocalMaterial, ensure_local_material

ROOT = Path(__file__).resolve().parents[2]
SOFTWARE_ID = "gwunitsoftware07"
ORG_ID = "0015800001UNITORG"
REDIRECTS = ("https://app.example.com/cb", "http://127.0.0.1:8080/callback")
FILES = ("local-ca.pem", "transport.pem", "transport.key", "aspsp-server.pem", "aspsp-server.key", "signing.key",
         "software-jwks.json", "directory-jwks.json", "software-statement.jwt")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
UTC = timezone.utc


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> LocalMaterial:
    return ensure_local_material(tmp_path_factory.mktemp("material") / "certs", software_id=SOFTWARE_ID,
                                 organisation_id=ORG_ID, redirect_uris=REDIRECTS)


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {name: ((directory / name).read_bytes(), (directory / name).stat().st_mtime_ns) for name in FILES}


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


_CERT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _cert_expiring(not_after: datetime, *, cn: str = "expiring.example") -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(_CERT_KEY.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_after - timedelta(days=400))
            .not_valid_after(not_after).sign(_CERT_KEY, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


# --- ensure_local_material --------------------------------------------------------------------------------------------
def test_all_files_created(material: LocalMaterial) -> None:
    for name in FILES:
        assert (material.directory / name).is_file(), name
        assert (material.directory / name).stat().st_size > 0
    assert material.transport_cert.name == "transport.pem"
    assert material.software_id == SOFTWARE_ID and material.organisation_id == ORG_ID


def test_private_keys_are_owner_only(material: LocalMaterial) -> None:
    for path in (material.transport_key, material.server_key, material.signing_key):
        assert path.stat().st_mode & 0o077 == 0, path


def test_second_call_reuses_files(material: LocalMaterial) -> None:
    before = _snapshot(material.directory)
    again = ensure_local_material(material.directory, software_id=SOFTWARE_ID, organisation_id=ORG_ID,
                                  redirect_uris=REDIRECTS)
    assert again == material
    assert _snapshot(material.directory) == before


def test_missing_file_regenerates(tmp_path: Path, material: LocalMaterial) -> None:
    directory = tmp_path / "copy"
    shutil.copytree(material.directory, directory)
    before = _snapshot(directory)
    (directory / "software-statement.jwt").unlink()
    ensure_local_material(directory, software_id=SOFTWARE_ID, organisation_id=ORG_ID, redirect_uris=REDIRECTS)
    assert all((directory / n).is_file() for n in FILES)
    assert (directory / "transport.pem").read_bytes() != before["transport.pem"][0]


def test_transport_certificate(material: LocalMaterial) -> None:
    cert = _load(material.transport_cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == SOFTWARE_ID
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == ORG_ID
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert ExtendedKeyUsageOID.SERVER_AUTH not in eku
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ca = _load(material.ca_cert)
    cert.verify_directly_issued_by(ca)
    assert cert.issuer == ca.subject
    subject = certificate_subject(material.transport_cert.read_bytes())
    assert f"CN={SOFTWARE_ID}" in subject and f"OU={ORG_ID}" in subject


def test_transport_key_matches_certificate(material: LocalMaterial) -> None:
    key = serialization.load_pem_private_key(material.transport_key.read_bytes(), None)
    assert key.public_key().public_numbers() == _load(material.transport_cert).public_key().public_numbers()


def test_ca_certificate(material: LocalMaterial) -> None:
    ca = _load(material.ca_cert)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    ca.verify_directly_issued_by(ca)


def test_server_certificate(material: LocalMaterial) -> None:
    cert = _load(material.server_cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert "127.0.0.1" in ips
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    cert.verify_directly_issued_by(_load(material.ca_cert))


def test_software_statement_verifies_with_directory_jwks(material: LocalMaterial) -> None:
    directory_jwks = json.loads(material.directory_jwks.read_text())
    token = material.software_statement.read_text().strip()
    decoded = jwt.decode(token, KeySet.import_key_set(directory_jwks), algorithms=["PS256"])
    claims = decoded.claims
    assert decoded.header["alg"] == "PS256"
    assert decoded.header["kid"] == directory_jwks["keys"][0]["kid"]
    assert claims["iss"] == DIRECTORY_ISSUER
    assert claims["software_id"] == SOFTWARE_ID
    assert claims["org_id"] == ORG_ID
    assert claims["software_redirect_uris"] == list(REDIRECTS)
    assert claims["software_jwks_endpoint"] == material.software_jwks_endpoint
    assert SOFTWARE_ID in material.software_jwks_endpoint and ORG_ID in material.software_jwks_endpoint
    assert set(claims["software_roles"]) == {"AISP", "PISP"}
    for key in directory_jwks["keys"]:
        assert not PRIVATE_MEMBERS & set(key)


def test_software_statement_not_verified_by_software_key(material: LocalMaterial) -> None:
    token = material.software_statement.read_text().strip()
    software = json.loads((material.directory / "software-jwks.json").read_text())
    with pytest.raises(Exception):
        jwt.decode(token, KeySet.import_key_set(software), algorithms=["PS256"])


def test_keystore_serves_public_signing_key(material: LocalMaterial) -> None:
    store = material.keystore()
    assert list(store) == [material.software_jwks_endpoint]
    served = store[material.software_jwks_endpoint]
    signing = load_signing_key(material.signing_key)
    assert served == {"keys": [signing.public_jwk()]}
    for key in served["keys"]:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["kid"] == signing.kid and key["alg"] == "PS256" and key["use"] == "sig"
    # a token signed with the signing key verifies with what the keystore serves
    token = jwt.encode({"alg": "PS256", "kid": signing.kid}, {"x": 1}, signing.key, algorithms=["PS256"])
    assert jwt.decode(token, KeySet.import_key_set(served), algorithms=["PS256"]).claims == {"x": 1}


# --- describe_certificate ---------------------------------------------------------------------------------------------
NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("offset, days, warning", [
    (timedelta(days=100, hours=1), 100, None),
    (timedelta(days=10, hours=1), 10, "expires in 10 days"),
    (timedelta(days=WARN_DAYS, hours=1), WARN_DAYS, f"expires in {WARN_DAYS} days"),
    (timedelta(days=WARN_DAYS + 1, hours=1), WARN_DAYS + 1, None),
    (-timedelta(days=5), -5, "EXPIRED 5 days ago"),
])
def test_describe_certificate(tmp_path: Path, offset: timedelta, days: int, warning: str | None) -> None:
    path = tmp_path / "c.pem"
    path.write_bytes(_cert_expiring(NOW + offset))
    info = describe_certificate(path, now=NOW)
    assert info.days_left == days
    assert info.warning == warning
    assert info.not_after == NOW + offset
    assert info.subject == "CN=expiring.example" and info.issuer == "CN=expiring.example"
    assert info.path == str(path)


def test_describe_certificate_real_clock(tmp_path: Path) -> None:
    path = tmp_path / "c.pem"
    path.write_bytes(_cert_expiring(datetime.now(UTC) + timedelta(days=10, hours=1)))
    info = describe_certificate(path)
    assert info.days_left == 10 and info.warning == "expires in 10 days"
    path.write_bytes(_cert_expiring(datetime.now(UTC) - timedelta(days=3, hours=1)))
    assert describe_certificate(path).warning.startswith("EXPIRED")


def test_describe_local_material(material: LocalMaterial) -> None:
    info = describe_certificate(material.transport_cert)
    assert info.warning is None and info.days_left > 300
    assert f"CN={SOFTWARE_ID}" in info.subject


def test_describe_certificate_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyMaterialError, match="missing.pem"):
        describe_certificate(tmp_path / "missing.pem")
    bad = tmp_path / "bad.pem"
    bad.write_text("CONFIDENTIAL-GARBAGE")
    with pytest.raises(KeyMaterialError) as caught:
        describe_certificate(bad)
    assert str(bad) in str(caught.value) and "CONFIDENTIAL-GARBAGE" not in str(caught.value)


# --- load_signing_key / jwks --------------------------------------------------------------------------------------
def test_load_signing_key_default_kid_is_thumbprint(material: LocalMaterial) -> None:
    key = load_signing_key(material.signing_key)
    assert key.key.is_private
    assert key.kid == key.key.thumbprint()
    expected = RSAKey.import_key(material.signing_key.read_bytes()).thumbprint()
    assert key.kid == expected


def test_load_signing_key_configured_kid(material: LocalMaterial) -> None:
    key = load_signing_key(material.signing_key, "my-kid-2024")
    assert key.kid == "my-kid-2024"
    assert load_signing_key(material.signing_key).kid != "my-kid-2024"


def test_load_signing_key_reloads_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    first, second = RSAKey.generate_key(2048), RSAKey.generate_key(2048)
    path.write_bytes(private_key_pem(first))
    assert load_signing_key(path).kid == first.thumbprint()
    path.write_bytes(private_key_pem(second))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert load_signing_key(path).kid == second.thumbprint()


def test_load_signing_key_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(KeyMaterialError) as caught:
        load_signing_key(path)
    assert str(path) in str(caught.value)


def test_load_signing_key_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "notakey.key"
    content = "-----BEGIN PRIVATE KEY-----\nU0VDUkVULUNPTlRFTlQtc2hvdWxkLW5vdC1sZWFr\n-----END PRIVATE KEY-----\n"
    path.write_text(content)
    with pytest.raises(KeyMaterialError) as caught:
        load_signing_key(path)
    message = str(caught.value)
    assert path.name in message
    assert "U0VDUkVULUNPTlRFTlQtc2hvdWxkLW5vdC1sZWFr" not in message
    plain = tmp_path / "plain.key"
    plain.write_text("SECRET-CONTENT-should-not-leak")
    with pytest.raises(KeyMaterialError) as caught:
        load_signing_key(plain)
    assert plain.name in str(caught.value) and "SECRET-CONTENT" not in str(caught.value)


def test_load_signing_key_public_only(tmp_path: Path) -> None:
    key = RSAKey.generate_key(2048)
    path = tmp_path / "public.pem"
    path.write_bytes(key.as_pem(private=False))
    with pytest.raises(KeyMaterialError, match="public.pem"):
        load_signing_key(path)


def test_load_signing_key_certificate_is_not_a_key(material: LocalMaterial) -> None:
    with pytest.raises(KeyMaterialError, match="transport.pem"):
        load_signing_key(material.transport_cert)


def test_jwks_has_no_private_members(material: LocalMaterial) -> None:
    keys = [load_signing_key(material.signing_key), SigningKey(key=RSAKey.generate_key(2048), kid="k2")]
    out = jwks(keys)
    assert [k["kid"] for k in out["keys"]] == [keys[0].kid, "k2"]
    for jwk in out["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk), jwk
        assert jwk["kty"] == "RSA" and {"n", "e"} <= set(jwk)
        assert jwk["alg"] == "PS256" and jwk["use"] == "sig"
    assert "private" not in json.dumps(out).lower()
    assert repr(keys[1]) == "SigningKey(kid='k2')"


# --- client_ssl_context -------------------------------------------------------------------------------------------
def test_client_ssl_context_loads(material: LocalMaterial) -> None:
    context = client_ssl_context(material.transport_cert, material.transport_key, material.ca_cert)
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert client_ssl_context(material.transport_cert, material.transport_key, None)


def test_client_ssl_context_bad_pair(material: LocalMaterial) -> None:
    with pytest.raises(KeyMaterialError) as caught:
        client_ssl_context(material.transport_cert, material.server_key, material.ca_cert)
    assert "transport.pem" in str(caught.value)
    assert material.server_key.read_text().splitlines()[1] not in str(caught.value)


def test_client_ssl_context_missing_files(tmp_path: Path, material: LocalMaterial) -> None:
    with pytest.raises(KeyMaterialError):
        client_ssl_context(tmp_path / "none.pem", material.transport_key, None)
    with pytest.raises(KeyMaterialError):
        client_ssl_context(material.transport_cert, tmp_path / "none.key", None)


# --- the `gateway certificates` command ---------------------------------------------------------------------------
def _config_for(tmp_path: Path, directory: Path) -> Path:
    text = (ROOT / "config" / "local.toml").read_text()
    assert 'local_material = "var/certs"' in text
    path = tmp_path / "local.toml"
    path.write_text(text.replace('local_material = "var/certs"', f"local_material = {json.dumps(str(directory))}"))
    return path


def _run_cli(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "certificates", "--config", str(config)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_certificates_ok(tmp_path: Path, material: LocalMaterial) -> None:
    directory = tmp_path / "certs"
    shutil.copytree(material.directory, directory)
    before = _snapshot(directory)
    result = _run_cli(_config_for(tmp_path, directory))
    assert result.returncode == 0, result.stdout + result.stderr
    subject = describe_certificate(directory / "transport.pem").subject
    assert f"stripe-uk transport certificate: {subject}" in result.stdout
    assert f"CN={SOFTWARE_ID}" in result.stdout
    assert "local CA" in result.stdout
    assert "WARNING" not in result.stdout
    assert _snapshot(directory) == before  # reporting touches nothing


def test_cli_certificates_warns_on_expiry(tmp_path: Path, material: LocalMaterial) -> None:
    directory = tmp_path / "certs"
    shutil.copytree(material.directory, directory)
    (directory / "transport.pem").write_bytes(
        _cert_expiring(datetime.now(UTC) + timedelta(days=10, hours=1), cn="soon-expiring"))
    result = _run_cli(_config_for(tmp_path, directory))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "WARNING" in result.stdout
    assert "expires in 10 days" in result.stdout
    assert "CN=soon-expiring" in result.stdout


def test_cli_certificates_expired(tmp_path: Path, material: LocalMaterial) -> None:
    directory = tmp_path / "certs"
    shutil.copytree(material.directory, directory)
    (directory / "transport.pem").write_bytes(_cert_expiring(datetime.now(UTC) - timedelta(days=2, hours=1)))
    result = _run_cli(_config_for(tmp_path, directory))
    assert result.returncode == 1
    assert "WARNING: EXPIRED" in result.stdout
