"""adapters.ob_connect.client and settings: the request id the hub sees, the OAuth 1.0a header (checked here with
the public key, rebuilding the base string with the signer's own helpers), the request the client sends and the
errors it raises, and the local signing material."""
from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote

import orjson
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from multidict import CIMultiDict, CIMultiDictProxy
from oauth1 import coreutils

from adapters.base import CallContext
from adapters.ob_connect.client import HubClient, request_uuid
from adapters.ob_connect.settings import (
    LOCAL_CERT, LOCAL_P12, LOCAL_PASSWORD, ObConnectSettings, ensure_local_p12, load_material,
)
from gateway.api.middleware import new_request_id
from gateway.connectivity.client import UpstreamResponse
from gateway.errors import GatewayRequestRejected, ProviderRateLimited, ProviderUnavailable
from gateway.secrets import Secret

NAMESPACE = uuid.UUID("5b1f2d3e-9c4a-4e8b-a6f0-2d7c1e9b3a54")
X_REQUEST_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")  # the spec's
BASE = "http://127.0.0.1:8099/openbanking/connect/api"
CONSUMER_KEY = "ck-4f1c0a7e9b2d!000000000000000000000000000000000000000000000000000"
MERCHANT = {"id": "MERCHANT-1", "name": "Example Shop Ltd"}
OAUTH_KEYS = {"oauth_consumer_key", "oauth_nonce", "oauth_timestamp", "oauth_signature_method", "oauth_version",
              "oauth_body_hash", "oauth_signature"}


# --- request_uuid -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [
    ("123e4567-e89b-42d3-a456-426655440000", "123e4567-e89b-42d3-a456-426655440000"),
    ("123E4567-E89B-42D3-A456-426655440000", "123e4567-e89b-42d3-a456-426655440000"),
    ("{123e4567-e89b-42d3-a456-426655440000}", "123e4567-e89b-42d3-a456-426655440000"),
    ("urn:uuid:123e4567-e89b-42d3-a456-426655440000", "123e4567-e89b-42d3-a456-426655440000"),
    ("123e4567e89b42d3a456426655440000", "123e4567-e89b-42d3-a456-426655440000"),
])
def test_request_uuid_passes_a_uuid(given, expected):
    assert request_uuid(given) == expected


def test_request_uuid_of_the_gateways_own_ids_is_unchanged():
    for _ in range(50):
        rid = new_request_id()
        assert request_uuid(rid) == rid


@pytest.mark.parametrize("given", ["req-42", "my.trace:0001", "x", "123e4567-e89b-42d3-a456-42665544000",
                                   "123e4567-e89b-42d3-a456-4266554400000", "g23e4567-e89b-42d3-a456-426655440000",
                                   "a" * 128])
def test_request_uuid_of_anything_else_is_a_stable_uuid5(given):
    derived = request_uuid(given)
    assert derived == str(uuid.uuid5(NAMESPACE, given)) == request_uuid(given)
    assert uuid.UUID(derived).version == 5 and X_REQUEST_ID.fullmatch(derived)
    assert derived != given


def test_request_uuid_distinct_inputs_distinct_uuids():
    assert len({request_uuid(f"req-{n}") for n in range(500)}) == 500


# --- the OAuth 1.0a header ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _hub(key: Any, upstream: Any = None) -> HubClient:
    return HubClient(upstream if upstream is not None else object(), consumer_key=CONSUMER_KEY, signing_key=key,
                     merchant=MERCHANT)


def _params(header: str) -> dict[str, str]:
    assert header.startswith("OAuth ")
    pairs = re.findall(r'(\w+)="([^"]*)"', header[len("OAuth "):])
    assert ",".join(f'{k}="{v}"' for k, v in pairs) == header[len("OAuth "):]  # nothing else in the header
    return dict(pairs)


def _verify(key: rsa.RSAPrivateKey, method: str, url: str, params: dict[str, str]) -> None:
    """The check the hub makes: the base string over the URL and every oauth_* parameter but the signature."""
    unsigned = {k: v for k, v in params.items() if k != "oauth_signature"}
    base = (f"{method.upper()}&{coreutils.percent_encode(coreutils.normalize_url(url))}"
            f"&{coreutils.percent_encode(coreutils.normalize_params(url, unsigned))}")
    signature = base64.b64decode(unquote(params["oauth_signature"]), validate=True)
    key.public_key().verify(signature, base.encode(), padding.PKCS1v15(), hashes.SHA256())


BODY = orjson.dumps({"requestInfo": {"xRequestId": "123e4567-e89b-42d3-a456-426655440000", "aspspId": "a",
                                     "merchant": {"id": "M", "name": "Bank Wiślany"}},  # non-ASCII: UTF-8 bytes
                     "payments": {"instructedAmount": {"amount": 149.9, "currency": "PLN"}}})


def test_sign_header(key):
    url = f"{BASE}/payments/domestic-credit-transfers/consents"
    before = int(time.time())
    headers = _hub(key)._sign("POST", url, BODY)
    assert list(headers) == ["Authorization"]
    params = _params(headers["Authorization"])
    assert set(params) == OAUTH_KEYS
    assert params["oauth_consumer_key"] == CONSUMER_KEY
    assert params["oauth_signature_method"] == "RSA-SHA256"
    assert params["oauth_version"] == "1.0"
    assert params["oauth_body_hash"] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert before - 1 <= int(params["oauth_timestamp"]) <= int(time.time()) + 1
    assert re.fullmatch(r"[0-9A-Za-z]{16}", params["oauth_nonce"])
    _verify(key, "POST", url, params)


def test_sign_verification_is_not_vacuous(key):
    url = f"{BASE}/accounts"
    params = _params(_hub(key)._sign("POST", url, BODY)["Authorization"])
    tampered = {**params, "oauth_body_hash": base64.b64encode(hashlib.sha256(BODY + b" ").digest()).decode()}
    with pytest.raises(InvalidSignature):
        _verify(key, "POST", url, tampered)
    with pytest.raises(InvalidSignature):
        _verify(key, "POST", f"{BASE}/accounts/account", params)  # another path
    with pytest.raises(InvalidSignature):
        _verify(rsa.generate_private_key(public_exponent=65537, key_size=1024), "POST", url, params)


def test_sign_every_attempt_afresh(key):
    hub, url = _hub(key), f"{BASE}/payments/sepa-credit-transfers"
    first = _params(hub._sign("POST", url, BODY)["Authorization"])
    second = _params(hub._sign("POST", url, BODY)["Authorization"])
    assert first["oauth_nonce"] != second["oauth_nonce"]
    assert first["oauth_signature"] != second["oauth_signature"]
    assert first["oauth_body_hash"] == second["oauth_body_hash"]
    _verify(key, "POST", url, first)
    _verify(key, "POST", url, second)


@pytest.mark.parametrize("body", [None, b""])
def test_sign_without_a_body_hashes_the_empty_string(key, body):
    url = f"{BASE}/accounts/health"
    params = _params(_hub(key)._sign("GET", url, body)["Authorization"])
    assert params["oauth_body_hash"] == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    _verify(key, "GET", url, params)


def test_sign_url_with_query_and_default_port(key):
    url = "https://HUB.example.com:443/openbanking/connect/api/accounts?b=2&a=1"
    params = _params(_hub(key)._sign("POST", url, BODY)["Authorization"])
    _verify(key, "POST", url, params)
    assert coreutils.normalize_url(url) == "https://hub.example.com/openbanking/connect/api/accounts"


# --- the client's requests ----------------------------------------------------------------------------------------
class FakeUpstream:
    """Stands in for UpstreamClient.request: records the call, signs as it would (full URL, exact bytes)."""

    def __init__(self, status: int = 200, body: bytes = b'{"originalRequestInfo":{}}',
                 headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.calls: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> UpstreamResponse:
        signed = kwargs["sign"](method, BASE + path, kwargs["data"])
        self.calls.append({"method": method, "path": path, "signed": signed, **kwargs})
        return UpstreamResponse(self.status, CIMultiDictProxy(CIMultiDict(self.headers)), self.body, "ob-connect")


CTX = CallContext(request_id="req-42", tenant="t", id_key=b"k" * 32)


async def test_post_sends_request_info_and_signs_the_exact_bytes(key):
    upstream = FakeUpstream(body=b'{"originalRequestInfo":{"xRequestId":"x"},"accounts":[]}')
    answer = await _hub(key, upstream).post(CTX, "/accounts/account", {"accountId": "acc-1"}, operation="get_account",
                                            request_info={"aspspId": "bank-1", "consentId": "c-1"})
    assert answer == {"originalRequestInfo": {"xRequestId": "x"}, "accounts": []}
    (call,) = upstream.calls
    assert (call["method"], call["path"], call["operation"], call["idempotent"]) == \
        ("POST", "/accounts/account", "get_account", True)
    assert call["headers"] == {"Content-Type": "application/json", "Accept": "application/json"}
    assert orjson.loads(call["data"]) == {
        "requestInfo": {"xRequestId": str(uuid.uuid5(NAMESPACE, "req-42")), "merchant": MERCHANT,
                        "aspspId": "bank-1", "consentId": "c-1"},
        "accountId": "acc-1"}
    params = _params(call["signed"]["Authorization"])
    assert params["oauth_body_hash"] == base64.b64encode(hashlib.sha256(call["data"]).digest()).decode()
    _verify(key, "POST", BASE + "/accounts/account", params)


async def test_post_unsafe_is_not_idempotent(key):
    upstream = FakeUpstream()
    await _hub(key, upstream).post(CTX, "/accounts/consents", {"permissions": ["accounts"]},
                                   operation="create_consent", safe=False)
    assert upstream.calls[0]["idempotent"] is False


async def test_post_raises_the_hubs_error(key):
    body = {"Errors": {"Error": [{"Source": "requestInfo.aspspId", "ReasonCode": "INVALID_REQUEST",
                                  "Description": "bad", "Recoverable": False, "Details": ""}]}}
    with pytest.raises(GatewayRequestRejected) as caught:
        await _hub(key, FakeUpstream(400, orjson.dumps(body))).post(CTX, "/accounts", {}, operation="list_accounts")
    assert caught.value.provider_code == "INVALID_REQUEST" and caught.value.provider_body == body


@pytest.mark.parametrize("raw", [b"<html>Bad Gateway</html>", b""])
async def test_post_error_without_json_goes_by_status(key, raw):
    with pytest.raises(ProviderUnavailable) as caught:
        await _hub(key, FakeUpstream(502, raw)).post(CTX, "/accounts", {}, operation="list_accounts")
    assert caught.value.provider_code == "http_502" and caught.value.provider_body is None


async def test_post_rate_limited_carries_retry_after(key):
    with pytest.raises(ProviderRateLimited) as caught:
        await _hub(key, FakeUpstream(429, b"", {"Retry-After": "12"})).post(CTX, "/accounts", {},
                                                                            operation="list_accounts")
    assert caught.value.retry_after == 12.0


# --- settings -------------------------------------------------------------------------------------------------------
def test_ensure_local_p12_made_once_then_reused(tmp_path):
    directory = tmp_path / "material" / "ob-connect"
    p12 = ensure_local_p12(directory)
    assert p12 == directory / LOCAL_P12 and p12.is_file() and (directory / LOCAL_CERT).is_file()
    first = (p12.read_bytes(), (directory / LOCAL_CERT).read_bytes())
    assert ensure_local_p12(directory) == p12
    assert (p12.read_bytes(), (directory / LOCAL_CERT).read_bytes()) == first
    assert not list(directory.glob("*.tmp"))
    key, cert, _ = pkcs12.load_key_and_certificates(first[0], LOCAL_PASSWORD.encode())
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert cert.public_bytes(serialization.Encoding.PEM) == first[1]  # the certificate file is the p12's
    assert x509.load_pem_x509_certificate(first[1]).public_key().public_numbers() == key.public_key().public_numbers()
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(first[0], b"wrong password")


def test_ensure_local_p12_remade_when_the_certificate_is_missing(tmp_path):
    p12 = ensure_local_p12(tmp_path)
    before = p12.read_bytes()
    (tmp_path / LOCAL_CERT).unlink()
    assert ensure_local_p12(tmp_path) == p12
    assert p12.read_bytes() != before and (tmp_path / LOCAL_CERT).is_file()


def _settings(**over: Any) -> ObConnectSettings:
    fields: dict[str, Any] = dict(consumer_key=CONSUMER_KEY, merchant_id="MERCHANT-1", merchant_name="Example Shop",
                                  redirect_uris=("https://tpp.example.com/ob/callback",))
    fields.update(over)
    return ObConnectSettings(**fields)


def test_load_material_local(tmp_path):
    material = load_material(_settings(local_material=str(tmp_path / "m")))
    assert material.certificate_pem == (tmp_path / "m" / LOCAL_CERT).read_bytes()
    cert = x509.load_pem_x509_certificate(material.certificate_pem)
    assert cert.public_key().public_numbers() == material.key.public_key().public_numbers()
    again = load_material(_settings(local_material=str(tmp_path / "m")))  # the same key, not a new one
    assert again.key.private_numbers() == material.key.private_numbers()
    url = f"{BASE}/accounts"  # the loaded key signs what the certificate verifies
    params = _params(_hub(material.key)._sign("POST", url, BODY)["Authorization"])
    _verify(material.key, "POST", url, params)


def test_load_material_from_a_p12_file(tmp_path):
    p12 = ensure_local_p12(tmp_path)
    material = load_material(_settings(signing_key_p12=str(p12), signing_key_password=Secret(LOCAL_PASSWORD)))
    assert material.certificate_pem is None
    cert = x509.load_pem_x509_certificate((tmp_path / LOCAL_CERT).read_bytes())
    assert cert.public_key().public_numbers() == material.key.public_key().public_numbers()


@pytest.mark.parametrize("over", [
    {},
    {"signing_key_p12": "/secrets/ob-connect.p12"},
    {"signing_key_password": Secret("p12-password-000")},
    {"signing_key_p12": "", "signing_key_password": Secret("p12-password-000")},
])
def test_settings_need_a_signing_key_outside_local(over):
    with pytest.raises(ValueError, match="signing_key_p12 and signing_key_password"):
        _settings(**over)


def test_settings_accept_a_key_or_local_material():
    assert _settings(signing_key_p12="/secrets/ob-connect.p12",
                     signing_key_password=Secret("p12-password-000")).live is False
    assert _settings(local_material="var/ob-connect").aspsp_cache_seconds == 300.0


@pytest.mark.parametrize("over", [{"local_material": "var/ob-connect"},
                                  {"signing_key_p12": "/k.p12", "signing_key_password": Secret("p12-password-000")}])
def test_settings_need_a_redirect_uri(over):
    with pytest.raises(ValueError, match="redirect_uris"):
        _settings(redirect_uris=(), **over)


def test_settings_refuse_a_negative_cache_time():
    with pytest.raises(ValueError):
        _settings(local_material="var/ob-connect", aspsp_cache_seconds=-1)
