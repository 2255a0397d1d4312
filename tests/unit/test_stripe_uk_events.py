"""stripe-uk event notifications, unit level: reading the body, the header rules, the signature and claim checks of
`adapters.stripe_uk.events.verify`, and what `inbound` makes of each kind of notification. No network: the bank's
key is made here."""
from __future__ import annotations

import base64
import functools
import time
import uuid
from typing import Any

import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapters.stripe_uk import events
from adapters.stripe_uk.events import CONSENT_REVOKED, RESOURCE_UPDATE, inbound, read_token, verify
from adapters.stripe_uk.subscriptions import _same
from gateway.errors import MalformedRequest, Unauthenticated
from gateway.models import ConsentStatus

ISSUER = "https://bank.example.com"
CLIENT = "client-123"
OB = "http://openbanking.org.uk/"
NOW = time.time()


@functools.lru_cache(maxsize=2)
def key(name: str) -> RSAKey:
    return RSAKey.generate_key(2048)


def jwks() -> dict[str, Any]:
    return {"keys": [{**key("bank").as_dict(private=False), "kid": "k1", "alg": "PS256", "use": "sig"}]}


def claims(event: str = RESOURCE_UPDATE, rty: str = "domestic-payment", rid: str = "dp-1",
           **changes: Any) -> dict[str, Any]:
    link = f"{ISSUER}/open-banking/v3.1/pisp/domestic-payments/{rid}"
    body = {"iss": ISSUER, "iat": int(NOW), "jti": str(uuid.uuid4()), "aud": CLIENT, "sub": link,
            "txn": str(uuid.uuid4()), "toe": int(NOW) - 1,
            "events": {event: {"subject": {"subject_type": f"{OB}rid_{OB}rty", f"{OB}rid": rid, f"{OB}rty": rty,
                                           f"{OB}rlk": [{"version": "v3.1", "link": link}]}}}}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def sign(body: dict[str, Any], signer: str = "bank", **header: Any) -> str:
    return jwt.encode({"alg": "PS256", "kid": "k1", "typ": "JWT", **header}, body, key(signer), algorithms=["PS256"])


def check(token: str, **kw: Any) -> dict[str, Any]:
    return verify(token, jwks(), issuer=ISSUER, audience=CLIENT, now=NOW, max_age=kw.pop("max_age", 3600.0), **kw)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- the body ----------------------------------------------------------------------------------------------------
def test_read_token_accepts_the_jwt_media_types_and_the_swaggers_json_string():
    token = sign(claims())
    for media in ("application/jwt", "application/jwt; charset=utf-8", "application/secevent+jwt",
                  "application/jose"):
        assert read_token(media, f"  {token}\n".encode()) == token
    assert read_token("application/json", orjson.dumps(token)) == token


@pytest.mark.parametrize("content_type, body", [
    ("application/jwt", b"hello"), ("application/jwt", b"a.b"), ("application/jwt", b".b.c"),
    ("application/jwt", b"a..c"), ("application/jwt", b"a+b.c.d"), ("application/jwt", "é.b.c".encode()),
    ("application/json", b'{"a": 1}'), ("application/json", b"nope"), ("text/plain", b"a.b.c"), (None, b"a.b.c"),
])
def test_read_token_refuses_what_is_not_a_compact_jws(content_type, body):
    with pytest.raises(MalformedRequest):
        read_token(content_type, body)


def test_header_must_be_base64url_json():
    with pytest.raises(MalformedRequest):
        events.header_of("bm90IGpzb24.e30.")  # "not json"
    with pytest.raises(MalformedRequest):
        events.header_of(b64(b"[1, 2]") + ".e30.")


# --- header and signature ----------------------------------------------------------------------------------------
def test_a_good_notification_verifies():
    body = claims()
    assert check(sign(body)) == body


@pytest.mark.parametrize("header", [{"alg": "none"}, {"alg": "HS256"}, {"alg": "RS256"}, {"kid": ""}, {"kid": 5},
                                    {"typ": "at+jwt"}, {"typ": "JOSE"}])
def test_header_rules(header):
    base = {"alg": "PS256", "kid": "k1", "typ": "JWT", **header}
    token = f"{b64(orjson.dumps(base))}.{b64(orjson.dumps(claims()))}.c2ln"
    with pytest.raises(Unauthenticated):
        check(token)


def test_typ_may_be_absent_or_secevent():
    for typ in (None, "secevent+jwt"):
        header = {"alg": "PS256", "kid": "k1", **({"typ": typ} if typ else {})}
        token = jwt.encode(header, claims(), key("bank"), algorithms=["PS256"])
        assert check(token)["iss"] == ISSUER


def test_another_key_or_an_unknown_kid_is_refused():
    with pytest.raises(Unauthenticated, match="signature does not verify"):
        check(sign(claims(), signer="forger"))
    with pytest.raises(Unauthenticated, match="kid"):
        check(sign(claims(), kid="k2"))
    token = sign(claims())
    head, payload, signature = token.split(".")
    tampered = b64(orjson.dumps({**claims(), "aud": CLIENT, "jti": "other"}))
    with pytest.raises(Unauthenticated):
        check(f"{head}.{tampered}.{signature}")


# --- claims -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, match", [
    ({"iss": "https://other.example.com"}, "iss"), ({"iss": None}, "iss"),
    ({"aud": "other"}, "aud"), ({"aud": None}, "aud"), ({"aud": ["a", "b"]}, "aud"),
    ({"iat": int(NOW) + 120}, "future"), ({"iat": int(NOW) - 7200, "toe": int(NOW) - 7200}, "seconds ago"),
    ({"iat": "1700000000"}, "integer"), ({"iat": True}, "integer"), ({"iat": None}, "integer"),
    ({"exp": int(NOW) - 120}, "expired"), ({"exp": "soon"}, "expired"),
])
def test_who_and_when_are_checked(changes, match):
    with pytest.raises(Unauthenticated, match=match):
        check(sign(claims(**changes)))


def test_a_little_clock_skew_is_tolerated_and_a_list_audience_accepted():
    assert check(sign(claims(iat=int(NOW) + 30, toe=int(NOW) + 30)))
    assert check(sign(claims(aud=["other", CLIENT])))
    assert check(sign(claims(exp=int(NOW) + 60)))


@pytest.mark.parametrize("changes", [
    {"jti": None}, {"jti": ""}, {"jti": "x" * 129}, {"txn": None}, {"txn": 7}, {"sub": None}, {"toe": None},
    {"toe": -1}, {"toe": int(NOW) + 3600}, {"toe": 1.5}, {"events": None}, {"events": {}}, {"events": []},
    {"events": {RESOURCE_UPDATE: {}}}, {"events": {RESOURCE_UPDATE: {"subject": "x"}}},
    {"events": {CONSENT_REVOKED: {"subject": {f"{OB}rty": "account-access-consent"}}}},
    {"events": {CONSENT_REVOKED: {"subject": {f"{OB}rid": "", f"{OB}rty": "account-access-consent"}}}},
])
def test_a_signed_notification_of_the_wrong_shape_is_malformed(changes):
    with pytest.raises(MalformedRequest):
        check(sign(claims(**changes)))


# --- what it means ---------------------------------------------------------------------------------------------------
def test_a_payment_update_names_the_payment():
    body = claims(rid="dp-42")
    event = inbound(check(sign(body)))
    assert (event.event_id, event.type, event.payment_ref, event.provider_ref) == (body["jti"], RESOURCE_UPDATE,
                                                                                  "dp-42", "")
    assert event.consent_status is None and event.payload == body


def test_a_revocation_revokes_the_account_access_consent():
    event = inbound(check(sign(claims(CONSENT_REVOKED, "account-access-consent", "aac-7"))))
    assert (event.provider_ref, event.consent_status, event.reason, event.payment_ref) == (
        "aac-7", ConsentStatus.REVOKED, "revoked by the account holder at the bank", None)
    assert event.ref_kind == "consent"


def test_a_consent_update_names_the_consent_without_saying_its_state():
    for rty in ("account-access-consent", "account-access-consents"):
        event = inbound(check(sign(claims(RESOURCE_UPDATE, rty, "aac-8"))))
        assert (event.provider_ref, event.consent_status, event.payment_ref) == ("aac-8", None, None)


def test_plural_resource_types_and_other_resources():
    assert inbound(check(sign(claims(rty="domestic-payments", rid="dp-9")))).payment_ref == "dp-9"
    other = inbound(check(sign(claims(rty="domestic-payment-consent", rid="pdc-1"))))
    assert (other.provider_ref, other.payment_ref, other.consent_status) == ("", None, None)
    funds = inbound(check(sign(claims(CONSENT_REVOKED, "funds-confirmation-consent", "fcc-1"))))
    assert (funds.provider_ref, funds.consent_status) == ("", None)  # not an account-access consent


def test_a_revocation_wins_over_an_update_in_one_notification_and_unknown_events_change_nothing():
    body = claims(CONSENT_REVOKED, "account-access-consent", "aac-1")
    body["events"][RESOURCE_UPDATE] = claims(rid="aac-1", rty="account-access-consent")["events"][RESOURCE_UPDATE]
    assert inbound(check(sign(body))).consent_status is ConsentStatus.REVOKED
    unknown = claims()
    unknown["events"] = {"urn:uk:org:openbanking:events:account-access-consent-linked-account-update": {}}
    event = inbound(check(sign(unknown)))
    assert (event.type, event.provider_ref, event.payment_ref, event.consent_status) == (
        "urn:uk:org:openbanking:events:account-access-consent-linked-account-update", "", None, None)


def test_key_ids_and_the_subscription_comparison():
    assert events.key_ids(jwks()) == {"k1"} and events.key_ids({"keys": [{"kty": "RSA"}, "x"]}) == set()
    assert events.key_ids([]) == set()
    wanted = {"CallbackUrl": "https://g/webhooks/stripe-uk", "Version": "3.1",
              "EventTypes": [RESOURCE_UPDATE, CONSENT_REVOKED]}
    assert _same({**wanted, "EventSubscriptionId": "es-1", "EventTypes": [CONSENT_REVOKED, RESOURCE_UPDATE]}, wanted)
    assert not _same({**wanted, "EventTypes": None}, wanted)  # "every type" is not what the gateway asked for
    assert not _same({**wanted, "CallbackUrl": "https://old/webhooks/stripe-uk"}, wanted)
    assert not _same({**wanted, "Version": "3.0"}, wanted)
