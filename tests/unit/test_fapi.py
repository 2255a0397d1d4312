"""gateway.connectivity.fapi: the JWTs the gateway signs (client assertion, request object) and the checks on the
ASPSP's ID token before a code is exchanged. No network: keys are generated once for the module."""
from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet, RSAKey

from gateway.certificates.keys import SigningKey
from gateway.connectivity import fapi
from gateway.connectivity.fapi import AuthorisationRefused, half_hash, verify_id_token
from gateway.errors import ValidationFailed

GATEWAY = SigningKey(key=RSAKey.generate_key(2048), kid="k1")  # the gateway's signing key
ASPSP = SigningKey(key=RSAKey.generate_key(2048), kid="aspsp-1")  # the bank's ID token key
FORGER = SigningKey(key=RSAKey.generate_key(2048), kid="aspsp-1")  # same kid, another key
ASPSP_JWKS = {"keys": [ASPSP.public_jwk()]}
GATEWAY_PUBLIC = KeySet.import_key_set({"keys": [GATEWAY.public_jwk()]})

ISSUER = "https://aspsp.example.com"
CLIENT_ID = "client-123"
NONCE = "n-0S6_WzA2Mj"
CODE = "SplxlOBeZQQYbYS6WxSbIA"
STATE = "af0ifjsldkj-state"
INTENT = "urn-alphabank-intent-58923"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(token: str) -> jwt.Token:
    return jwt.decode(token, GATEWAY_PUBLIC, algorithms=["PS256"])


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": CLIENT_ID, "sub": INTENT, "openbanking_intent_id": INTENT, "iat": now,
        "exp": now + 300, "nonce": NONCE, "c_hash": half_hash(CODE), "s_hash": half_hash(STATE),
        "acr": "urn:openbanking:psd2:sca",
    }
    for name, value in overrides.items():
        if value is ...:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _id_token(key: SigningKey = ASPSP, alg: str = "PS256", **overrides: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, _claims(**overrides), key.key, algorithms=[alg])


def _verify(token: str, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"jwks": ASPSP_JWKS, "issuer": ISSUER, "client_id": CLIENT_ID, "nonce": NONCE,
                            "code": CODE, "state": STATE, "intent_id": INTENT}
    args.update(kwargs)
    return verify_id_token(token, **args)


def _refused(token: str, **kwargs: Any) -> AuthorisationRefused:
    with pytest.raises(AuthorisationRefused) as caught:
        _verify(token, **kwargs)
    exc = caught.value
    assert isinstance(exc, ValidationFailed)
    assert exc.status == 422
    assert exc.code == "authorisation_result_invalid"
    assert exc.errors and exc.errors[0]["field"] == "redirect_result"
    assert exc.errors[0]["location"] == "body"
    problem = exc.problem("req_1")
    assert problem["status"] == 422 and problem["code"] == "authorisation_result_invalid"
    return exc


# --- client assertion ---------------------------------------------------------------------------------------------
def test_client_assertion_claims_and_header() -> None:
    before = int(time.time())
    token = fapi.client_assertion(GATEWAY, client_id=CLIENT_ID, audience="https://aspsp.example.com/token")
    decoded = _decode(token)
    assert decoded.header["alg"] == "PS256"
    assert decoded.header["kid"] == "k1"
    claims = decoded.claims
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == "https://aspsp.example.com/token"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert before <= claims["iat"] <= int(time.time())
    assert isinstance(claims["jti"], str) and claims["jti"]


def test_client_assertion_jti_is_unique() -> None:
    jtis = {_decode(fapi.client_assertion(GATEWAY, client_id=CLIENT_ID, audience="a")).claims["jti"]
            for _ in range(20)}
    assert len(jtis) == 20


def test_client_assertion_does_not_verify_with_another_key() -> None:
    token = fapi.client_assertion(GATEWAY, client_id=CLIENT_ID, audience="a")
    with pytest.raises(Exception):
        jwt.decode(token, KeySet.import_key_set({"keys": [ASPSP.public_jwk()]}), algorithms=["PS256"])


def test_client_assertion_is_ps256_only() -> None:
    token = fapi.client_assertion(GATEWAY, client_id=CLIENT_ID, audience="a")
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "PS256"
    assert fapi.CLIENT_ASSERTION_TYPE == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


# --- request object -----------------------------------------------------------------------------------------------
def _request_object(**overrides: Any) -> jwt.Token:
    args = {"client_id": CLIENT_ID, "issuer": ISSUER, "redirect_uri": "https://app.example.com/cb",
            "scope": "openid accounts", "state": STATE, "nonce": NONCE, "intent_id": INTENT}
    args.update(overrides)
    return _decode(fapi.request_object(GATEWAY, **args))


def test_request_object_header() -> None:
    decoded = _request_object()
    assert decoded.header["alg"] == "PS256"
    assert decoded.header["kid"] == "k1"
    assert decoded.header["typ"] == "oauth-authz-req+jwt"


def test_request_object_claims() -> None:
    before = int(time.time())
    claims = _request_object().claims
    assert claims["iss"] == CLIENT_ID and claims["client_id"] == CLIENT_ID
    assert claims["aud"] == ISSUER
    assert claims["response_type"] == "code id_token"
    assert claims["redirect_uri"] == "https://app.example.com/cb"
    assert claims["scope"] == "openid accounts"
    assert claims["state"] == STATE
    assert claims["nonce"] == NONCE
    assert before <= claims["iat"] <= claims["exp"]
    assert claims["exp"] > time.time()
    assert claims["exp"] - claims["iat"] <= 600
    assert claims["jti"]


def test_request_object_essential_intent_and_acr() -> None:
    requested = _request_object().claims["claims"]
    essential_intent = {"value": INTENT, "essential": True}
    assert requested["id_token"]["openbanking_intent_id"] == essential_intent
    assert requested["userinfo"]["openbanking_intent_id"] == essential_intent
    acr = requested["id_token"]["acr"]
    assert acr["essential"] is True
    assert set(acr["values"]) == {"urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"}


def test_request_object_lifetime_is_configurable() -> None:
    claims = _request_object(lifetime=120).claims
    assert claims["exp"] - claims["iat"] == 120


def test_request_object_jti_unique() -> None:
    assert _request_object().claims["jti"] != _request_object().claims["jti"]


# --- half hash ----------------------------------------------------------------------------------------------------
def test_half_hash_known_vector_from_oidc_core() -> None:
    # OpenID Connect Core 1.0, appendix A.4: this code has c_hash LDktKdoQak3Pk0cnXxCltA.
    code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
    assert half_hash(code) == "LDktKdoQak3Pk0cnXxCltA"


@pytest.mark.parametrize("value", [CODE, STATE, "a", "x" * 500])
def test_half_hash_matches_hashlib(value: str) -> None:
    expected = base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()[:16]).rstrip(b"=").decode()
    assert half_hash(value) == expected
    assert len(half_hash(value)) == 22 and "=" not in half_hash(value)


# --- ID token: accepted -------------------------------------------------------------------------------------------
def test_valid_id_token_accepted() -> None:
    claims = _verify(_id_token())
    assert claims["openbanking_intent_id"] == INTENT
    assert claims["nonce"] == NONCE


def test_audience_list_containing_client_accepted() -> None:
    assert _verify(_id_token(aud=["someone-else", CLIENT_ID]))["aud"] == ["someone-else", CLIENT_ID]


def test_expired_within_skew_accepted() -> None:
    now = time.time()
    token = _id_token(iat=int(now) - 600, exp=int(now) - 30)
    assert _verify(token, now=now)


def test_iat_slightly_ahead_within_skew_accepted() -> None:
    now = time.time()
    assert _verify(_id_token(iat=int(now) + 30, exp=int(now) + 300), now=now)


def test_intent_from_sub_when_no_openbanking_intent_id() -> None:
    assert _verify(_id_token(openbanking_intent_id=...))["sub"] == INTENT


def test_keyset_with_several_keys() -> None:
    other = SigningKey(key=FORGER.key, kid="other-kid")
    jwks = {"keys": [other.public_jwk(), ASPSP.public_jwk()]}
    assert _verify(_id_token(), jwks=jwks)


# --- ID token: refused --------------------------------------------------------------------------------------------
def test_forged_signature_refused() -> None:
    exc = _refused(_id_token(key=FORGER))
    assert "signature" in exc.detail


def test_signed_by_unknown_kid_refused() -> None:
    _refused(_id_token(key=SigningKey(key=FORGER.key, kid="unknown")))


def test_tampered_payload_refused() -> None:
    header, _, signature = _id_token().split(".")
    payload = _b64(json.dumps(_claims(nonce="attacker")).encode())
    _refused(f"{header}.{payload}.{signature}")


def test_garbage_token_refused() -> None:
    _refused("not-a-jwt")


def test_wrong_issuer_refused() -> None:
    exc = _refused(_id_token(iss="https://evil.example.com"))
    assert "issued" in exc.detail


def test_missing_issuer_refused() -> None:
    _refused(_id_token(iss=...))


@pytest.mark.parametrize("aud", ["another-client", ["another-client", "third"], [], None])
def test_wrong_audience_refused(aud: Any) -> None:
    token = _id_token(aud=...) if aud is None else _id_token(aud=aud)
    exc = _refused(token)
    assert "client" in exc.detail


def test_expired_beyond_skew_refused() -> None:
    now = time.time()
    exc = _refused(_id_token(iat=int(now) - 900, exp=int(now) - 61), now=now)
    assert "expired" in exc.detail


def test_expired_via_injected_clock_refused() -> None:
    token = _id_token()
    _refused(token, now=time.time() + 300 + 61)


def test_missing_exp_refused() -> None:
    _refused(_id_token(exp=...))


def test_iat_in_future_refused() -> None:
    now = time.time()
    exc = _refused(_id_token(iat=int(now) + 120, exp=int(now) + 600), now=now)
    assert "future" in exc.detail


def test_missing_iat_refused() -> None:
    _refused(_id_token(iat=...))


def test_wrong_nonce_refused() -> None:
    assert "nonce" in _refused(_id_token(nonce="other-nonce")).detail
    _refused(_id_token(nonce=...))


def test_wrong_c_hash_refused() -> None:
    assert "c_hash" in _refused(_id_token(c_hash=half_hash("another-code"))).detail
    _refused(_id_token(), code="another-code")
    _refused(_id_token(c_hash=...))


def test_wrong_s_hash_refused() -> None:
    assert "s_hash" in _refused(_id_token(s_hash=half_hash("another-state"))).detail
    _refused(_id_token(), state="another-state")
    _refused(_id_token(s_hash=...))


def test_wrong_openbanking_intent_refused() -> None:
    assert "consent" in _refused(_id_token(openbanking_intent_id="other-intent")).detail
    _refused(_id_token(), intent_id="other-intent")


def test_wrong_sub_refused_when_no_intent_claim() -> None:
    _refused(_id_token(openbanking_intent_id=..., sub="other-intent"))
    _refused(_id_token(openbanking_intent_id=..., sub=...))


def test_rs256_token_refused() -> None:
    _refused(_id_token(alg="RS256"))


def test_ps512_token_refused() -> None:
    _refused(_id_token(alg="PS512"))


def test_unsigned_none_token_refused() -> None:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(_claims()).encode())
    _refused(f"{header}.{payload}.")
    _refused(f"{header}.{payload}")


def test_hs256_with_public_key_as_secret_refused() -> None:
    # alg confusion: an HMAC over the ASPSP's public key material must not verify.
    from joserfc.jwk import OctKey
    secret = OctKey.import_key(json.dumps(ASPSP.public_jwk()).encode())
    token = jwt.encode({"alg": "HS256", "kid": ASPSP.kid}, _claims(), secret, algorithms=["HS256"])
    _refused(token)


def test_refusal_never_leaks_into_success_path() -> None:
    # the checks run in order: a token wrong in several ways names the first failed check
    exc = _refused(_id_token(iss="https://evil.example.com", nonce="x"))
    assert "issued" in exc.detail


def test_jws_compact_helper_sanity() -> None:
    # the gateway's `sign` puts PS256 and the kid in the protected header
    token = fapi.sign(GATEWAY, {"a": 1}, typ="JWT")
    obj = jws.extract_compact(token.encode())
    assert obj.protected == {"alg": "PS256", "kid": "k1", "typ": "JWT"}
