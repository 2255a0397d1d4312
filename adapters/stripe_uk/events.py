"""stripe-uk event notifications (Open Banking v3.1.2 Event Notification API, real time): reading and verifying the
Security Event Token (RFC 8417) the bank POSTs to /webhooks/stripe-uk, and what it means for the gateway.

A notification is a JWT (compact JWS) that the bank signs PS256 with a key its /jwks publishes: the same keys that
sign its ID tokens and answers. Nothing in it is believed before the signature verifies. The checks, in order:

    body       a compact JWS (Content-Type application/jwt; the v3.1.2 swagger's JSON string is read too) -> 400
    header     alg exactly PS256 (so `none` and HS256 are refused), a kid, typ absent or JWT/secevent+jwt   -> 401
    signature  by the bank's key of that kid (the adapter refetches the JWKS once for an unknown kid)       -> 401
    iss        the bank's issuer; aud: this gateway's client id; iat neither ahead of this clock (beyond
               CLOCK_SKEW) nor older than `max_age`; exp, when present, not past                            -> 401
    shape      jti, txn, sub, toe (not after iat), events, each known event's subject rid and rty          -> 400

A replayed notification has a jti already stored: the gateway's webhook route answers it as a duplicate and
changes nothing (replays within `max_age` are caught there; older ones are refused here).

What it means (`inbound`):
    consent-authorization-revoked of an account-access-consent  -> that consent (its provider_ref is the
                                                                    ConsentId) is revoked by the account holder
    resource-update of a domestic-payment                       -> payment_ref: the gateway reads that payment
    resource-update of an account-access-consent                -> names the consent; its new state is not said
Anything else is recorded and changes nothing. The payload kept is the verified claims: resource ids and links,
no tokens and nothing about the person.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import re
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from adapters.base import InboundEvent
from gateway.errors import MalformedRequest, Unauthenticated
from gateway.models import ConsentStatus

RESOURCE_UPDATE = "urn:uk:org:openbanking:events:resource-update"
CONSENT_REVOKED = "urn:uk:org:openbanking:events:consent-authorization-revoked"
EVENT_TYPES = (RESOURCE_UPDATE, CONSENT_REVOKED)  # what the adapter subscribes to and understands
OB = "http://openbanking.org.uk/"
RID, RTY = OB + "rid", OB + "rty"
DOMESTIC_PAYMENT = "domestic-payment"
ACCOUNT_ACCESS_CONSENT = "account-access-consent"
REVOKED_REASON = "revoked by the account holder at the bank"
ALGORITHMS = ["PS256"]
CLOCK_SKEW = 60  # seconds a notification's iat may be ahead of this clock
MEDIA_TYPES = frozenset({"application/jwt", "application/secevent+jwt", "application/jose"})
TYPES = frozenset({"JWT", "secevent+jwt"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")


def _malformed(message: str) -> MalformedRequest:
    return MalformedRequest(f"event notification: {message}")


def _refused(message: str) -> Unauthenticated:
    return Unauthenticated(f"event notification refused: {message}")


# --- the token ------------------------------------------------------------------------------------------------
def read_token(content_type: str | None, body: bytes) -> str:
    """The compact JWS a notification body carries; MalformedRequest when it carries none."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media == "application/json":  # the v3.1.2 swagger describes the body as a JSON string
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _malformed("the body is not JSON") from None
        if not isinstance(value, str):
            raise _malformed("a JSON body must be the signed notification as a string")
        text = value
    elif media in MEDIA_TYPES:
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("the body is not a compact JWS") from None
    else:
        raise _malformed(f"Content-Type must be application/jwt, not {media or 'missing'}")
    token = text.strip()
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1] or not all(_B64URL.match(p) for p in parts):
        raise _malformed("the body is not a compact JWS (three base64url parts)")
    return token


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".", 1)[0]
    try:
        header = orjson.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        raise _malformed("its protected header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise _malformed("its protected header is not a JSON object")
    return header


def key_id(header: dict[str, Any]) -> str:
    """The kid of a header the bank could have made; Unauthenticated for anything else (unsigned, HMAC, …)."""
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise _refused(f"it is signed with {alg!r}; only {', '.join(ALGORITHMS)} is accepted")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _refused("its header names no kid")
    if "typ" in header and header["typ"] not in TYPES:
        raise _refused(f"its typ is {header['typ']!r}, not a JWT")
    return kid


def key_ids(jwks: dict[str, Any]) -> set[str]:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    return {k["kid"] for k in keys or () if isinstance(k, dict) and isinstance(k.get("kid"), str)}


# --- the claims -----------------------------------------------------------------------------------------------
def _same(value: Any, expected: str) -> bool:
    return isinstance(value, str) and hmac.compare_digest(value.encode(), expected.encode())


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(claims: dict[str, Any], name: str, limit: int = 128) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        raise _malformed(f"{name} must be a string of 1 to {limit} characters")
    return value


def verify(token: str, jwks: dict[str, Any], *, issuer: str, audience: str, now: float,
           max_age: float) -> dict[str, Any]:
    """The claims of a notification the bank really sent to this gateway, recently; else Unauthenticated (who sent
    it, to whom, when) or MalformedRequest (a signed notification that is not one)."""
    key_id(header_of(token))
    try:
        claims = dict(jwt.decode(token, KeySet.import_key_set(jwks), algorithms=ALGORITHMS).claims)
    except JoseError as exc:
        why = "no published key has its kid" if exc.error == "invalid_key_id" else "its signature does not verify"
        raise _refused(f"{why} (the bank's published keys)") from None
    except (ValueError, TypeError, KeyError):
        raise _refused("it cannot be verified with the bank's published keys") from None
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    if not _same(claims.get("iss"), issuer):
        raise _refused("it was not issued by the bank (iss)")
    if not any(_same(value, audience) for value in audiences):
        raise _refused("it is not addressed to this gateway's client (aud)")
    iat = claims.get("iat")
    if not _integer(iat):
        raise _refused("iat must be an integer")
    if iat > now + CLOCK_SKEW:
        raise _refused("it is issued in the future (iat)")
    if now - iat > max_age:
        raise _refused(f"it was issued more than {int(max_age)} seconds ago (iat)")
    exp = claims.get("exp")
    if exp is not None and (not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp + CLOCK_SKEW <= now):
        raise _refused("it has expired (exp)")
    _check_shape(claims, iat)
    return claims


def _check_shape(claims: dict[str, Any], iat: int) -> None:
    _text(claims, "jti")
    _text(claims, "txn")
    _text(claims, "sub", 2048)
    toe = claims.get("toe")
    if not _integer(toe) or toe < 0 or toe > iat + CLOCK_SKEW:
        raise _malformed("toe must be an integer time no later than iat")
    events = claims.get("events")
    if not isinstance(events, dict) or not events:
        raise _malformed("events must be an object naming at least one event")
    for name in EVENT_TYPES:
        if name in events:
            _subject(events, name)


def _subject(events: dict[str, Any], name: str) -> tuple[str, str]:
    """(rid, rty) of one event's subject."""
    event = events[name]
    subject = event.get("subject") if isinstance(event, dict) else None
    if not isinstance(subject, dict):
        raise _malformed(f"{name} has no subject")
    return _text(subject, RID), _text(subject, RTY)


def _kind(rty: str) -> str:
    """The resource type, singular (v3.1.2 examples say `domestic-payment`; later versions pluralise)."""
    return rty[:-1] if rty.endswith("s") else rty


# --- what it means --------------------------------------------------------------------------------------------
def inbound(claims: dict[str, Any]) -> InboundEvent:
    """The verified notification as the gateway records and applies it."""
    events: dict[str, Any] = claims["events"]
    event_id = str(claims["jti"])
    if CONSENT_REVOKED in events:
        rid, rty = _subject(events, CONSENT_REVOKED)
        if _kind(rty) == ACCOUNT_ACCESS_CONSENT:
            return InboundEvent(event_id=event_id, type=CONSENT_REVOKED, provider_ref=rid, payload=claims,
                                consent_status=ConsentStatus.REVOKED, reason=REVOKED_REASON)
        return InboundEvent(event_id=event_id, type=CONSENT_REVOKED, provider_ref="", payload=claims)
    if RESOURCE_UPDATE in events:
        rid, rty = _subject(events, RESOURCE_UPDATE)
        kind = _kind(rty)
        if kind == DOMESTIC_PAYMENT:
            return InboundEvent(event_id=event_id, type=RESOURCE_UPDATE, provider_ref="", payload=claims,
                                payment_ref=rid)
        return InboundEvent(event_id=event_id, type=RESOURCE_UPDATE,
                            provider_ref=rid if kind == ACCOUNT_ACCESS_CONSENT else "", payload=claims)
    return InboundEvent(event_id=event_id, type=str(next(iter(events))), provider_ref="", payload=claims)
