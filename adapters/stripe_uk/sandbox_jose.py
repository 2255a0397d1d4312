"""JWT checks shared by registration, client authentication and the authorisation request: PS256 only, a `kid` that
names a key of the signer's JWKS, and the time claims, each failure explained in one sentence."""
from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

ALG = "PS256"
SKEW = 30.0  # seconds of clock difference tolerated on iat / nbf / exp


class JwtProblem(Exception):
    """Why a JWT was refused (the message is safe to show the client)."""


def unverified(token: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS before its signature is checked (to find who signed it)."""
    try:
        compact = extract_compact(token.strip().encode())
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeDecodeError) as exc:
        raise JwtProblem(f"the {what} is not a signed JWT ({exc})") from None
    if not isinstance(claims, dict):
        raise JwtProblem(f"the {what} payload is not a JSON object")
    return dict(compact.headers()), claims


def verify(token: str, jwks: dict[str, Any], what: str) -> dict[str, Any]:
    """The claims of a PS256 JWT whose `kid` names a key of `jwks`."""
    header, _ = unverified(token, what)
    if header.get("alg") != ALG:
        raise JwtProblem(f"the {what} must be signed with {ALG}, not {header.get('alg')!r}")
    if not header.get("kid"):
        raise JwtProblem(f"the {what} header has no kid")
    try:
        keys = KeySet.import_key_set(jwks)
        return dict(jwt.decode(token.strip(), keys, algorithms=[ALG]).claims)
    except JoseError as exc:
        reason = "no key has its kid" if exc.error == "invalid_key_id" else "its signature does not verify"
        raise JwtProblem(f"the {what} is refused: {reason} (kid {header['kid']!r})") from None
    except (ValueError, TypeError) as exc:
        raise JwtProblem(f"the {what} cannot be verified: {exc}") from None


def check_times(claims: dict[str, Any], now: float, what: str, *, max_lifetime: float | None = None) -> None:
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise JwtProblem(f"the {what} needs a numeric exp")
    if exp <= now - SKEW:
        raise JwtProblem(f"the {what} has expired")
    if max_lifetime is not None and exp > now + max_lifetime + SKEW:
        raise JwtProblem(f"the {what} expires too late: at most {int(max_lifetime)} seconds ahead")
    for name in ("iat", "nbf"):
        value = claims.get(name)
        if value is not None and (not isinstance(value, (int, float)) or value > now + SKEW):
            raise JwtProblem(f"the {what} {name} is in the future or not a number")


def audience_ok(aud: Any, accepted: Iterable[str]) -> bool:
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return any(v in set(accepted) for v in values)


def half_hash(value: str) -> str:
    """OIDC c_hash / s_hash / at_hash for PS256: the left half of SHA-256, base64url without padding."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
