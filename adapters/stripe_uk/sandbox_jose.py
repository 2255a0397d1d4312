"""JOSE shared by the simulator. JWT checks for registration, client authentication and the authorisation request:
PS256 only, a `kid` that names a key of the signer's JWKS, and the time claims, each failure explained in one
sentence. And Open Banking's detached JWS (`x-jws-signature`): verifying a TPP's signature over a request body with
the OB error code of each failure, and signing the simulator's own answers."""
from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jws import JWSRegistry, extract_compact
from joserfc.registry import HeaderParameter

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


# --- detached JWS (x-jws-signature) ------------------------------------------------------------------------------
# Open Banking signs message bodies with a compact JWS whose payload part is left empty (RFC 7515 appendix F) and
# whose payload is not base64url-encoded (RFC 7797 `b64: false`): the signing input is `base64url(header) + "." +
# the exact body bytes`, so any change to the bytes on the wire (even re-serialising the same JSON) breaks it.
OB_IAT = "http://openbanking.org.uk/iat"
OB_ISS = "http://openbanking.org.uk/iss"
OB_TAN = "http://openbanking.org.uk/tan"
TRUST_ANCHOR = "openbanking.org.uk"
OB_CRIT = frozenset({"b64", OB_IAT, OB_ISS, OB_TAN})
SIGNATURE_IAT_WINDOW = 300.0  # seconds either side of the wall clock
_REQUIRED_HEADER = ("alg", "kid", "b64", OB_IAT, OB_ISS, OB_TAN, "crit")
_CONTENT_TYPES = frozenset({"application/json", "json"})

SIGNATURE_MISSING = "UK.OBIE.Signature.Missing"
SIGNATURE_MALFORMED = "UK.OBIE.Signature.Malformed"
SIGNATURE_MISSING_CLAIM = "UK.OBIE.Signature.MissingClaim"
SIGNATURE_INVALID_CLAIM = "UK.OBIE.Signature.InvalidClaim"
SIGNATURE_INVALID = "UK.OBIE.Signature.Invalid"


class SignatureProblem(Exception):
    """Why a detached JWS was refused: the OB error code to answer with, and a sentence safe to show the client."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


@functools.cache
def _ob_registry() -> JWSRegistry:
    """joserfc refuses a `crit` naming a header it does not know, so the OB claims are registered. Unknown headers
    outside `crit` are ignored (RFC 7515 4.1.11). The size limits are raised from joserfc's defaults (512-byte
    header, 128 kB payload): an OB header with its URL-named claims is near 500 bytes, and bodies may reach the
    simulator's 1 MB request limit; a signature refused for size would hide the real problem."""
    registry = JWSRegistry(header_registry={OB_IAT: HeaderParameter("OB issued at", "int", True),
                                            OB_ISS: HeaderParameter("OB issuer", "str", True),
                                            OB_TAN: HeaderParameter("OB trust anchor", "str", True)},
                           algorithms=[ALG], strict_check_header=False)
    registry.max_header_length = 8 * 1024
    registry.max_payload_length = 2 * 1024 * 1024
    return registry


def sign_detached(body: bytes, key: RSAKey, kid: str, issuer: str, now: float) -> str:
    """`header..signature` over the exact body bytes, with the OB claims and `crit` the standard requires."""
    header = {"alg": ALG, "kid": kid, "b64": False, OB_IAT: int(now), OB_ISS: issuer, OB_TAN: TRUST_ANCHOR,
              "crit": ["b64", OB_IAT, OB_ISS, OB_TAN], "typ": "JOSE", "cty": "application/json"}
    compact = jws.serialize_compact(header, body, key, algorithms=[ALG], registry=_ob_registry())
    # joserfc keeps the payload inline when the body happens to be all URL-safe characters; it is always detached.
    head, _, rest = compact.partition(".")
    return f"{head}..{rest.rpartition('.')[2]}"


def _detached_header(value: str) -> dict[str, Any]:
    parts = value.strip().split(".")
    if len(parts) != 3:
        raise SignatureProblem(SIGNATURE_MALFORMED, "x-jws-signature must be a compact JWS: three dot-separated parts")
    head, payload, signature = parts
    if payload:
        raise SignatureProblem(SIGNATURE_MALFORMED, "x-jws-signature must be detached: its payload part is empty")
    if not head or not signature:
        raise SignatureProblem(SIGNATURE_MALFORMED, "x-jws-signature has an empty header or signature part")
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise SignatureProblem(SIGNATURE_MALFORMED, "the x-jws-signature header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise SignatureProblem(SIGNATURE_MALFORMED, "the x-jws-signature header is not a JSON object")
    return header


def _check_claims(header: dict[str, Any], issuer: str, now: float) -> None:
    """The OB profile of the protected header: what is missing, then what is wrong, one problem at a time."""
    for name in _REQUIRED_HEADER:
        if name not in header:
            raise SignatureProblem(SIGNATURE_MISSING_CLAIM, f"the x-jws-signature header has no {name}")
    crit = header["crit"]
    if not isinstance(crit, list) or not all(isinstance(c, str) for c in crit):
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, "crit must be a list of header names")
    missing = sorted(OB_CRIT - set(crit))
    if missing:
        raise SignatureProblem(SIGNATURE_MISSING_CLAIM, f"crit must name {', '.join(missing)}")
    if set(crit) != OB_CRIT or len(crit) != len(OB_CRIT):
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, f"crit must name exactly {', '.join(sorted(OB_CRIT))}")
    if header["alg"] != ALG:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, f"alg must be {ALG}, not {header['alg']!r}")
    if header["b64"] is not False:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, "b64 must be false (RFC 7797: the payload is not encoded)")
    if not isinstance(header["kid"], str) or not header["kid"]:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, "kid must be a non-empty string")
    iat = header[OB_IAT]
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, f"{OB_IAT} must be an integer (epoch seconds)")
    if abs(now - iat) > SIGNATURE_IAT_WINDOW:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, f"{OB_IAT} is more than {int(SIGNATURE_IAT_WINDOW)} seconds "
                                                        "from now")
    if header[OB_ISS] != issuer:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, f"{OB_ISS} must be {issuer!r} (org_id/software_id)")
    if header[OB_TAN] != TRUST_ANCHOR:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, f"{OB_TAN} must be {TRUST_ANCHOR!r}")
    if "typ" in header and header["typ"] != "JOSE":
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, "typ, when present, must be JOSE")
    if "cty" in header and header["cty"] not in _CONTENT_TYPES:
        raise SignatureProblem(SIGNATURE_INVALID_CLAIM, "cty, when present, must be application/json")


def verify_detached(value: str, body: bytes, jwks: dict[str, Any], issuer: str, now: float) -> dict[str, Any]:
    """The protected header of a valid OB detached JWS over `body`, signed by a key of `jwks` for `issuer`
    (`org_id/software_id`); else SignatureProblem with the OB error code. The header is read and checked here
    before joserfc verifies, so each failure gets the precise code rather than joserfc's generic error."""
    header = _detached_header(value)
    _check_claims(header, issuer, now)
    try:
        key = KeySet.import_key_set(jwks).get_by_kid(header["kid"])
    except (JoseError, ValueError, TypeError, KeyError):
        raise SignatureProblem(SIGNATURE_INVALID, f"no key of the software's JWKS has kid {header['kid']!r}") from None
    try:
        jws.deserialize_compact(value.strip(), key, payload=body, algorithms=[ALG], registry=_ob_registry())
    except JoseError:
        raise SignatureProblem(SIGNATURE_INVALID, "the signature does not verify over the request body") from None
    return header
