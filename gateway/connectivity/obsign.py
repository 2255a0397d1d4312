"""Open Banking message signing: the detached JWS of `x-jws-signature` (OB Read/Write API v3.1.2).

The signature covers the exact HTTP body bytes, unencoded (RFC 7797, `b64: false`), in a compact JWS whose payload
part is empty (`header..signature`). The protected header carries `alg` PS256, `kid`, the OB claims
`http://openbanking.org.uk/iat` (epoch seconds), `/iss` (who signs: the TPP's "<org id>/<software id>", or the
ASPSP's own id) and `/tan` (the trust anchor), and `crit` naming `b64` and the three OB claims, so a verifier that
does not understand them must refuse the message. Requests are signed with the gateway's signing key; responses
are verified against the ASPSP's published JWKS before anything in them is believed.
"""
from __future__ import annotations

import time
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from joserfc.registry import HeaderParameter

from gateway.certificates.keys import SigningKey

OB = "http://openbanking.org.uk/"
IAT, ISS, TAN = OB + "iat", OB + "iss", OB + "tan"
CRIT = ("b64", IAT, ISS, TAN)
ALGORITHMS = ["PS256"]
CLOCK_SKEW = 300  # seconds an OB iat may differ from this clock

_REGISTRY = JWSRegistry(header_registry={
    IAT: HeaderParameter("OB signing time", "int", True),
    ISS: HeaderParameter("OB signer", "str", True),
    TAN: HeaderParameter("OB trust anchor", "str", True),
}, algorithms=ALGORITHMS)
# joserfc's defaults (512-byte header, 128 kB payload) are guards for tokens; an OB header with a long kid and
# issuer comes close to 512 bytes, and a signed body may be larger than a token. Bodies are already size-limited.
_REGISTRY.max_header_length = 4096
_REGISTRY.max_payload_length = 8 * 1024 * 1024


class SignatureInvalid(Exception):
    """The message's signature is absent, malformed, or does not prove it came unaltered from the expected signer."""


def sign_detached(key: SigningKey, body: bytes, *, issuer: str, trust_anchor: str) -> str:
    header = {"alg": "PS256", "kid": key.kid, "typ": "JOSE", "cty": "application/json", "b64": False,
              IAT: int(time.time()), ISS: issuer, TAN: trust_anchor, "crit": list(CRIT)}
    compact = jws.serialize_compact(header, body, key.key, algorithms=ALGORITHMS, registry=_REGISTRY)
    head, _, signature = compact.split(".")
    return f"{head}..{signature}"  # detached, whether or not joserfc left the payload in


def verify_detached(signature: str | None, body: bytes, jwks: dict[str, Any], *, trust_anchor: str,
                    issuer: str | None = None, max_age: float = CLOCK_SKEW) -> dict[str, Any]:
    """The protected header of a valid signature over `body`; SignatureInvalid (saying why) otherwise. `max_age`:
    how old its `iat` may be (a bank's answer to a repeated idempotent request may be the original, signed when
    first made, up to the key's 24 hours); never more than CLOCK_SKEW in the future."""
    if not signature:
        raise SignatureInvalid("no x-jws-signature")
    parts = signature.split(".")
    if len(parts) != 3 or parts[1]:
        raise SignatureInvalid("x-jws-signature is not a detached compact JWS")
    try:
        keys = KeySet.import_key_set(jwks)
        found = jws.deserialize_compact(signature, keys, payload=body, algorithms=ALGORITHMS, registry=_REGISTRY)
    except (JoseError, ValueError, KeyError, TypeError) as exc:
        raise SignatureInvalid(f"the signature does not verify ({type(exc).__name__})") from None
    header = found.headers()
    if header.get("b64") is not False or set(header.get("crit") or ()) != set(CRIT):
        raise SignatureInvalid("the signature's header does not carry b64=false and the OB crit claims")
    if header.get(TAN) != trust_anchor:
        raise SignatureInvalid(f"the signature's trust anchor is {header.get(TAN)!r}, not {trust_anchor!r}")
    if issuer is not None and header.get(ISS) != issuer:
        raise SignatureInvalid(f"the message was signed by {header.get(ISS)!r}, not {issuer!r}")
    iat = header.get(IAT)
    now = time.time()
    if not isinstance(iat, int) or iat - now > CLOCK_SKEW or now - iat > max(max_age, CLOCK_SKEW):
        raise SignatureInvalid("the signature's iat is missing or outside the allowed window")
    return header
