"""gateway.connectivity.obsign: the detached JWS of `x-jws-signature` (RFC 7797 b64=false, OB claims in `crit`).
Round trips with generated keys, and every way a signature must be refused. No network."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jws
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from joserfc.jwk import RSAKey

from gateway.certificates.keys import SigningKey
from gateway.connectivity import obsign
from gateway.connectivity.obsign import CRIT, IAT, ISS, TAN, SignatureInvalid, sign_detached, verify_detached

BANK = SigningKey(RSAKey.generate_key(2048), "aspsp-kid-1")
OTHER = SigningKey(RSAKey.generate_key(2048), "aspsp-kid-1")  # same kid, another key (a forger)
BANK_JWKS = {"keys": [{**BANK.key.as_dict(private=False), "kid": BANK.kid}]}

ISSUER = "0015800001041REAAY/a1b2c3d4e5f6"
ANCHOR = "openbanking.org.uk"
BODY = b'{"Data":{"Initiation":{"InstructedAmount":{"Amount":"10.50","Currency":"GBP"}}},"Risk":{}}'


def _header(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forge_with(changes: dict[str, Any], drop: tuple[str, ...] = (), key: SigningKey = BANK) -> str:
    """A detached signature made as obsign makes one, with the header changed as the test needs."""
    header: dict[str, Any] = {"alg": "PS256", "kid": key.kid, "typ": "JOSE", "cty": "application/json", "b64": False,
                              IAT: int(time.time()), ISS: ISSUER, TAN: ANCHOR, "crit": list(CRIT)}
    header.update(changes)
    for name in drop:
        header.pop(name)
    compact = jws.serialize_compact(header, BODY, key.key, algorithms=obsign.ALGORITHMS, registry=obsign._REGISTRY)
    head, _, signature = compact.split(".")
    return f"{head}..{signature}"


def _hand_signed(header: dict[str, Any], body: bytes = BODY, key: SigningKey = BANK) -> str:
    """A PS256 detached JWS signed without joserfc's header checks (which refuse to make the broken headers some
    tests need): signing input = BASE64URL(header) "." body, unencoded when the header says b64=false."""
    head = _b64(json.dumps(header, separators=(",", ":")).encode())
    payload = body if header.get("b64") is False else _b64(body).encode()
    signature = key.key.private_key.sign(
        head.encode() + b"." + payload,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    return f"{head}..{_b64(signature)}"


def _ob_header(**changes: Any) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": "PS256", "kid": BANK.kid, "typ": "JOSE", "cty": "application/json", "b64": False,
                              IAT: int(time.time()), ISS: ISSUER, TAN: ANCHOR, "crit": list(CRIT)}
    header.update(changes)
    return header


def _verify(signature: str | None, body: bytes = BODY, jwks: dict[str, Any] = BANK_JWKS, **kw: Any) -> dict[str, Any]:
    kw.setdefault("trust_anchor", ANCHOR)
    return verify_detached(signature, body, jwks, **kw)


def _refused(signature: str | None, body: bytes = BODY, **kw: Any) -> str:
    with pytest.raises(SignatureInvalid) as caught:
        _verify(signature, body, **kw)
    return str(caught.value)


# --- round trip ------------------------------------------------------------------------------------------------
def test_sign_then_verify_round_trip():
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    header = _verify(signature, issuer=ISSUER)
    assert header[ISS] == ISSUER and header[TAN] == ANCHOR and header["kid"] == BANK.kid


def test_verify_without_an_expected_issuer_accepts_any_signer():
    signature = sign_detached(BANK, BODY, issuer="someone/else", trust_anchor=ANCHOR)
    assert _verify(signature)[ISS] == "someone/else"


def test_the_signature_is_detached():
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    head, payload, sig = signature.split(".")
    assert payload == ""
    assert head and sig
    assert signature.count(".") == 2
    assert _b64(BODY) not in signature  # neither the payload nor its encoding travels in the header


def test_the_protected_header():
    before = int(time.time())
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    header = _header(signature.split(".")[0])
    assert header["alg"] == "PS256"
    assert header["kid"] == "aspsp-kid-1"
    assert header["typ"] == "JOSE"
    assert header["cty"] == "application/json"
    assert header["b64"] is False
    assert header["crit"] == ["b64", "http://openbanking.org.uk/iat", "http://openbanking.org.uk/iss",
                              "http://openbanking.org.uk/tan"]
    assert header["http://openbanking.org.uk/iss"] == ISSUER
    assert header["http://openbanking.org.uk/tan"] == ANCHOR
    iat = header["http://openbanking.org.uk/iat"]
    assert isinstance(iat, int) and before <= iat <= int(time.time())


def test_verify_returns_the_protected_header():
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    assert _verify(signature) == _header(signature.split(".")[0])


@pytest.mark.parametrize("body", [b"{}", b'{"a":"b.c.d"}', "{\"Name\":\"Zo\u00eb\"}".encode(), b"x" * 10_000])
def test_round_trip_on_various_bodies(body):
    signature = sign_detached(BANK, body, issuer=ISSUER, trust_anchor=ANCHOR)
    assert signature.split(".")[1] == ""
    _verify(signature, body)


def test_round_trip_on_a_body_larger_than_a_token():
    body = b'{"Data":"' + b"x" * 300_000 + b'"}'  # past joserfc's 128 kB default payload limit
    _verify(sign_detached(BANK, body, issuer=ISSUER, trust_anchor=ANCHOR), body)


def test_round_trip_with_a_long_kid_and_issuer():
    key = SigningKey(BANK.key, "k" * 200)
    jwks = {"keys": [{**BANK.key.as_dict(private=False), "kid": key.kid}]}
    issuer = "0015800001041REAAY/" + "s" * 200  # the header passes joserfc's 512-byte default
    signature = sign_detached(key, BODY, issuer=issuer, trust_anchor=ANCHOR)
    assert len(signature.split(".")[0]) > 512
    assert _verify(signature, jwks=jwks, issuer=issuer)["kid"] == key.kid


def test_verify_finds_the_key_by_kid_among_several():
    jwks = {"keys": [{**OTHER.key.as_dict(private=False), "kid": "old-key"}, *BANK_JWKS["keys"]]}
    _verify(sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR), jwks=jwks)


def test_a_forged_header_built_like_obsign_verifies():
    # the helper the refusals below are built with is itself a valid signature
    _verify(_forge_with({}), issuer=ISSUER)


# --- refusals --------------------------------------------------------------------------------------------------
def test_a_body_changed_by_one_byte_is_refused():
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    changed = BODY.replace(b"10.50", b"10.51")
    assert len(changed) == len(BODY) and sum(a != b for a, b in zip(BODY, changed)) == 1
    assert "does not verify" in _refused(signature, changed)


@pytest.mark.parametrize("body", [BODY + b"\n", b" " + BODY, json.dumps(json.loads(BODY)).encode(), b""])
def test_the_same_json_in_other_bytes_is_refused(body):
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    _refused(signature, body)


def test_another_key_under_the_same_kid_is_refused():
    signature = sign_detached(OTHER, BODY, issuer=ISSUER, trust_anchor=ANCHOR)
    assert "does not verify" in _refused(signature)


def test_a_kid_not_in_the_jwks_is_refused():
    stranger = SigningKey(BANK.key, "unknown-kid")  # even the right key under a kid the bank did not publish
    _refused(sign_detached(stranger, BODY, issuer=ISSUER, trust_anchor=ANCHOR))


def test_an_empty_jwks_refuses_everything():
    _refused(sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR), jwks={"keys": []})


def test_a_wrong_trust_anchor_is_refused():
    signature = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor="openbankingtest.org.uk")
    message = _refused(signature)
    assert "trust anchor" in message and "'openbankingtest.org.uk'" in message


def test_a_wrong_issuer_is_refused_when_one_is_expected():
    signature = sign_detached(BANK, BODY, issuer="another-aspsp", trust_anchor=ANCHOR)
    message = _refused(signature, issuer=ISSUER)
    assert "'another-aspsp'" in message and repr(ISSUER) in message


@pytest.mark.parametrize("signature", [None, ""])
def test_a_missing_signature_is_refused(signature):
    assert _refused(signature) == "no x-jws-signature"


def test_the_attached_form_is_refused():
    compact = jws.serialize_compact({"alg": "PS256", "kid": BANK.kid}, BODY, BANK.key, algorithms=["PS256"])
    assert compact.split(".")[1] != ""
    assert _refused(compact) == "x-jws-signature is not a detached compact JWS"


def test_a_detached_signature_with_the_payload_put_back_is_refused():
    head, _, sig = sign_detached(BANK, BODY, issuer=ISSUER, trust_anchor=ANCHOR).split(".")
    assert _refused(f"{head}.{_b64(BODY)}.{sig}") == "x-jws-signature is not a detached compact JWS"


@pytest.mark.parametrize("signature", ["abc", "a..b..c", "a.b", "...", "not a jws at all", "..", "e30..", "..c2ln"])
def test_garbage_is_refused_not_crashed(signature):
    _refused(signature)


@pytest.mark.parametrize("skew", [301, 3600, -301, -3600])
def test_iat_outside_300_seconds_is_refused(skew):
    message = _refused(_forge_with({IAT: int(time.time()) - skew}))
    assert "outside the allowed window" in message


def test_an_older_iat_is_accepted_within_max_age_but_never_one_from_the_future():
    """A bank may answer a repeated idempotent request with its original signed answer (up to the key's 24 h)."""
    _verify(_forge_with({IAT: int(time.time()) - 3600}), max_age=86_400)
    assert "outside the allowed window" in _refused(_forge_with({IAT: int(time.time()) - 90_000}), max_age=86_400)
    assert "outside the allowed window" in _refused(_forge_with({IAT: int(time.time()) + 3600}), max_age=86_400)


@pytest.mark.parametrize("skew", [0, 250, -250])
def test_iat_within_300_seconds_is_accepted(skew):
    _verify(_forge_with({IAT: int(time.time()) - skew}))


def test_the_hand_signer_makes_valid_signatures():
    # the helper the refusals below are built with is itself a valid signer
    assert _verify(_hand_signed(_ob_header()), issuer=ISSUER)[ISS] == ISSUER


@pytest.mark.parametrize("missing", [IAT, ISS, TAN])
def test_crit_missing_an_ob_claim_is_refused(missing):
    crit = [name for name in CRIT if name != missing]
    for signature in (_forge_with({"crit": crit}), _hand_signed(_ob_header(crit=crit))):
        assert _refused(signature) == "the signature's header does not carry b64=false and the OB crit claims"


def test_crit_missing_b64_is_refused():
    _refused(_hand_signed(_ob_header(crit=[IAT, ISS, TAN])))


def test_no_crit_at_all_is_refused():
    header = _ob_header()
    del header["crit"]
    _refused(_hand_signed(header))


def test_crit_naming_an_unknown_extension_is_refused():
    _refused(_hand_signed(_ob_header(crit=[*CRIT, "urn:example:unknown"], **{"urn:example:unknown": 1})))


def test_b64_true_is_refused():
    # a signature over BASE64URL(body) is over another message: the header must say b64=false
    for signature in (_hand_signed(_ob_header(b64=True)), _forge_with({"b64": True})):
        assert _refused(signature) == "the signature's header does not carry b64=false and the OB crit claims"


def test_b64_absent_is_refused():
    header = _ob_header(crit=[IAT, ISS, TAN])
    del header["b64"]
    assert _refused(_hand_signed(header)) == "the signature's header does not carry b64=false and the OB crit claims"


def test_iat_missing_is_refused():
    header = _ob_header(crit=["b64", ISS, TAN])
    del header[IAT]
    _refused(_hand_signed(header))


@pytest.mark.parametrize("kind", [str, float, lambda _: None])
def test_iat_not_an_integer_is_refused(kind):
    # the current time, but not as the integer OB requires
    _refused(_hand_signed(_ob_header(**{IAT: kind(int(time.time()))})))


def test_a_tampered_header_is_refused():
    head, _, sig = sign_detached(BANK, BODY, issuer="someone/else", trust_anchor=ANCHOR).split(".")
    header = _header(head)
    header[ISS] = ISSUER
    forged = _b64(json.dumps(header, separators=(",", ":")).encode())
    assert "does not verify" in _refused(f"{forged}..{sig}", issuer=ISSUER)


def test_another_algorithm_is_refused():
    header = {"alg": "HS256", "kid": BANK.kid, "b64": False, IAT: int(time.time()), ISS: ISSUER, TAN: ANCHOR,
              "crit": list(CRIT)}
    signing_input = _b64(json.dumps(header).encode()).encode() + b"." + BODY
    sig = _b64(hmac.new(b"secret", signing_input, hashlib.sha256).digest())
    _refused(f"{signing_input.split(b'.')[0].decode()}..{sig}")
