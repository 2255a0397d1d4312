"""Mastercard OAuth 1.0a (RSA-SHA256 with a body hash), verified the way Mastercard's API gateway does it.

Independent of the `oauth1` signer library on purpose: the simulator must catch a signer that is wrong, not agree
with it by construction. The base string follows Mastercard's signer (and so its gateway), which differs from RFC 5849
in one point: parameters are joined as `key=value` with their values as sent (the RFC percent-encodes each first),
sorted as strings, and the whole joined string is percent-encoded once.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from adapters.ob_connect.sandbox_http import GATEWAY, HubError

REQUIRED = ("oauth_consumer_key", "oauth_nonce", "oauth_timestamp", "oauth_signature_method", "oauth_version",
            "oauth_body_hash", "oauth_signature")
_PARAM = re.compile(r'\s*([A-Za-z0-9_]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


def unauthorized(reason_code: str, description: str, details: str = "") -> HubError:
    return HubError(401, reason_code, description, source=GATEWAY, details=details)


def pct(text: str) -> str:
    """RFC 3986 percent-encoding (unreserved characters kept)."""
    return quote(text.encode("utf-8"), safe="~")


def parse_header(header: str) -> dict[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    if scheme != "OAuth" or not rest.strip():
        raise unauthorized("UNAUTHORIZED", "an Authorization: OAuth header is required")
    params: dict[str, str] = {}
    pos, rest = 0, rest.strip()
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None:
            raise unauthorized("UNAUTHORIZED", "the OAuth header is malformed", rest[pos:pos + 40])
        if match.group(1) in params:
            raise unauthorized("UNAUTHORIZED", "the OAuth header repeats a parameter", match.group(1))
        params[match.group(1)] = match.group(2)
        pos = match.end()
    missing = [name for name in REQUIRED if not params.get(name)]
    if missing:
        raise unauthorized("UNAUTHORIZED", "the OAuth header lacks parameters", ", ".join(missing))
    return params


def normalized_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower()
    if (scheme == "http" and netloc.endswith(":80")) or (scheme == "https" and netloc.endswith(":443")):
        netloc = netloc.rsplit(":", 1)[0]
    return f"{scheme}://{netloc}{parts.path or '/'}"


def normalized_params(url: str, oauth_params: dict[str, str]) -> str:
    query = urlsplit(url).query
    encoded = query != unquote(query)  # a query sent percent-encoded is signed encoded
    pairs = [(pct(k), pct(v)) if encoded else (k.replace(" ", "+"), v.replace(" ", "+"))
             for k, v in parse_qsl(query, keep_blank_values=True)]
    pairs += [(k, v) for k, v in oauth_params.items() if k != "oauth_signature"]
    return "&".join(sorted(f"{k}={v}" for k, v in pairs))


def base_string(method: str, url: str, oauth_params: dict[str, str]) -> str:
    return f"{method.upper()}&{pct(normalized_url(url))}&{pct(normalized_params(url, oauth_params))}"


def body_hash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


class OAuth1Verifier:
    """Checks requests of one consumer key against the public key of its certificate; remembers nonces."""

    def __init__(self, *, consumer_key: str, certificate_pem: bytes, window: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise ValueError("the signing certificate must hold an RSA public key")
        self.consumer_key = consumer_key
        self.public_key = public_key
        self.window = window
        self.clock = clock
        self._nonces: dict[str, float] = {}  # nonce -> when it stops mattering (wall clock)

    def verify(self, method: str, url: str, header: str | None, body: bytes) -> dict[str, str]:
        """The request's OAuth parameters when it is authentic, else HubError 401 (see UPSTREAM.md for the order)."""
        if not header:
            raise unauthorized("UNAUTHORIZED", "an Authorization: OAuth header is required")
        params = parse_header(header)
        if params["oauth_consumer_key"] != self.consumer_key:
            raise unauthorized("UNAUTHORIZED", "unknown consumer key")
        if params["oauth_version"] != "1.0":
            raise unauthorized("UNAUTHORIZED", "oauth_version must be 1.0")
        if params["oauth_signature_method"] != "RSA-SHA256":
            raise unauthorized("UNAUTHORIZED", "oauth_signature_method must be RSA-SHA256",
                               params["oauth_signature_method"])
        now = self.clock()
        try:
            timestamp = int(params["oauth_timestamp"])
        except ValueError:
            raise unauthorized("TIMESTAMP_OUT_OF_RANGE", "oauth_timestamp is not an integer") from None
        if abs(now - timestamp) > self.window:
            raise unauthorized("TIMESTAMP_OUT_OF_RANGE", "oauth_timestamp is too far from the current time",
                               f"{timestamp} vs {int(now)} (window {self.window:g} s)")
        if unquote(params["oauth_body_hash"]) != body_hash(body):
            raise unauthorized("BODY_HASH_MISMATCH", "oauth_body_hash does not match the request body")
        try:
            signature = base64.b64decode(unquote(params["oauth_signature"]), validate=True)
        except (binascii.Error, ValueError):
            raise unauthorized("INVALID_SIGNATURE", "oauth_signature is not base64") from None
        message = base_string(method, url, params).encode("utf-8")
        try:
            self.public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise unauthorized("INVALID_SIGNATURE", "the request signature does not verify") from None
        self._forget_old(now)
        nonce = params["oauth_nonce"]
        if nonce in self._nonces:
            raise unauthorized("NONCE_REPLAYED", "this oauth_nonce was already used", nonce)
        self._nonces[nonce] = timestamp + self.window
        return params

    def _forget_old(self, now: float) -> None:
        if len(self._nonces) > 1000:
            for nonce in [n for n, until in self._nonces.items() if until < now - self.window]:
                del self._nonces[nonce]
