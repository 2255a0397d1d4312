"""FAPI pieces shared by Open Banking UK providers (stripe-uk now, payments next): what the gateway signs and what
it must verify before it trusts an authorisation.

- Client authentication at the token endpoint with `private_key_jwt` (RFC 7523): a short-lived JWT, PS256.
- The authorisation request object (OIDC request parameter), PS256, carrying the consent id as the essential
  `openbanking_intent_id` claim, with `nonce`, `state`, `exp`, `aud`, redirect URI and the essential `acr`.
- The ID token of the hybrid flow, verified before any code is exchanged: signature from the ASPSP's JWKS, `iss`,
  `aud`, `exp`, `nonce`, `c_hash` (binds the code), `s_hash` (binds the state) and the intent.
JOSE is `joserfc`, the authlib project's JOSE library (authlib's own `authlib.jose` is deprecated in its favour);
PS256 is allowed explicitly, and nothing else is accepted.
"""
from __future__ import annotations

import base64
import hashlib
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.certificates.keys import SigningKey
from gateway.errors import ValidationFailed

ALGORITHMS = ["PS256"]
ACR_VALUES = ["urn:openbanking:psd2:sca", "urn:openbanking:psd2:ca"]
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 60  # seconds of clock difference tolerated when checking exp and iat


def sign(key: SigningKey, claims: dict[str, Any], *, typ: str = "JWT") -> str:
    return jwt.encode({"alg": "PS256", "kid": key.kid, "typ": typ}, claims, key.key, algorithms=ALGORITHMS)


def client_assertion(key: SigningKey, *, client_id: str, audience: str, lifetime: int = 300) -> str:
    now = int(time.time())
    return sign(key, {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + lifetime,
                      "jti": str(uuid.uuid4())})


def request_object(key: SigningKey, *, client_id: str, issuer: str, redirect_uri: str, scope: str, state: str,
                   nonce: str, intent_id: str, lifetime: int = 600) -> str:
    now = int(time.time())
    intent = {"openbanking_intent_id": {"value": intent_id, "essential": True},
              "acr": {"essential": True, "values": ACR_VALUES}}
    return sign(key, {
        "iss": client_id, "aud": issuer, "response_type": "code id_token", "client_id": client_id,
        "redirect_uri": redirect_uri, "scope": scope, "state": state, "nonce": nonce, "iat": now,
        "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4()),
        "claims": {"userinfo": {"openbanking_intent_id": intent["openbanking_intent_id"]}, "id_token": intent},
    }, typ="oauth-authz-req+jwt")


def half_hash(value: str) -> str:
    """The OIDC c_hash / s_hash of a value for a 256-bit algorithm: base64url of the left half of its SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


class AuthorisationRefused(ValidationFailed):
    """The redirect result cannot be trusted (forged, replayed, mismatched or expired): nothing changes."""
    code = "authorisation_result_invalid"


def _refuse(message: str) -> AuthorisationRefused:
    return AuthorisationRefused(f"redirect_result: {message}", errors=[
        {"location": "body", "field": "redirect_result", "message": message}])


def verify_id_token(token: str, *, jwks: dict[str, Any], issuer: str, client_id: str, nonce: str, code: str,
                    state: str, intent_id: str, now: float | None = None) -> dict[str, Any]:
    """The ID token's claims, once every check passed; AuthorisationRefused naming the first that failed."""
    try:
        decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise _refuse(f"the ID token's signature does not verify with the provider's keys ({exc})") from None
    claims = dict(decoded.claims)
    now = time.time() if now is None else now
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    checks = (
        (claims.get("iss") == issuer, "the ID token was not issued by the provider"),
        (client_id in audiences, "the ID token is not for this gateway's client"),
        (isinstance(claims.get("exp"), (int, float)) and claims["exp"] + CLOCK_SKEW > now, "the ID token has expired"),
        (isinstance(claims.get("iat"), (int, float)) and claims["iat"] - CLOCK_SKEW <= now,
         "the ID token is issued in the future"),
        (claims.get("nonce") == nonce, "the ID token's nonce is not this authorisation's (a replay?)"),
        (claims.get("c_hash") == half_hash(code), "the ID token's c_hash does not match the code"),
        (claims.get("s_hash") == half_hash(state), "the ID token's s_hash does not match the state"),
        (claims.get("openbanking_intent_id", claims.get("sub")) == intent_id,
         "the ID token is for another consent"),
    )
    for ok, message in checks:
        if not ok:
            raise _refuse(message)
    return claims
