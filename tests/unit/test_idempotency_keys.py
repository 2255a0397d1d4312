"""gateway.api.idempotency.fingerprint (what makes two requests under one Idempotency-Key "the same") and
gateway.payments.keys.upstream_key (the idempotency key sent to providers)."""
from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from gateway.api.idempotency import fingerprint
from gateway.payments.keys import upstream_key

HEX64 = re.compile(r"^[0-9a-f]{64}$")
HEX40 = re.compile(r"^[0-9a-f]{40}$")
PATH = "/v1/payments"
BODY = b'{"type":"domestic","amount":{"amount":"10.50","currency":"GBP"},"reference":"INV-123456"}'


# --- fingerprint -----------------------------------------------------------------------------------------------
def test_fingerprint_is_a_hex_hmac_sha256_digest():
    assert HEX64.fullmatch(fingerprint("POST", PATH, BODY))


def test_fingerprint_is_deterministic():
    assert fingerprint("POST", PATH, BODY) == fingerprint("POST", PATH, BODY)


def test_fingerprint_needs_the_gateways_key_to_be_recomputed():
    # A body with an SSN has few enough possible values to try them all against a plain hash; not against an HMAC.
    body = b'{"first_name":"J","last_name":"W","ssn":"999601111"}'
    kept = fingerprint("POST", "/v1/customers/c/consumer", body, "dev", b"k" * 32)
    assert kept == fingerprint("POST", "/v1/customers/c/consumer", body, "dev", b"k" * 32)
    assert kept != fingerprint("POST", "/v1/customers/c/consumer", body, "dev", b"other-key")
    assert kept != fingerprint("POST", "/v1/customers/c/consumer", body, "dev")


def test_fingerprint_ignores_key_order_and_whitespace():
    reordered = b'''{
        "reference": "INV-123456",
        "amount": {"currency": "GBP", "amount": "10.50"},
        "type": "domestic"
    }'''
    assert fingerprint("POST", PATH, reordered) == fingerprint("POST", PATH, BODY)


def test_fingerprint_sorts_keys_at_every_depth():
    a = b'{"creditor":{"account":{"scheme":"uk_sort_code","sort_code":"040004","account_number":"12345678"}}}'
    b = b'{"creditor":{"account":{"account_number":"12345678","sort_code":"040004","scheme":"uk_sort_code"}}}'
    assert fingerprint("POST", PATH, a) == fingerprint("POST", PATH, b)


def test_fingerprint_differs_by_method():
    assert fingerprint("POST", PATH, BODY) != fingerprint("PUT", PATH, BODY)


def test_fingerprint_differs_by_path():
    assert fingerprint("POST", PATH, BODY) != fingerprint("POST", "/v1/payments/pay_1/submit", BODY)


@pytest.mark.parametrize("other", [
    BODY.replace(b"10.50", b"10.51"),
    BODY.replace(b"INV-123456", b"INV-123457"),
    BODY.replace(b'"10.50"', b"10.50"),  # a number is not the string
    b'{"type":"domestic"}',
    b"{}",
    b"",
    b"[]",
    b"null",
])
def test_fingerprint_differs_by_body(other):
    assert fingerprint("POST", PATH, other) != fingerprint("POST", PATH, BODY)


def test_fingerprint_distinguishes_array_order():
    assert fingerprint("POST", PATH, b'{"a":[1,2]}') != fingerprint("POST", PATH, b'{"a":[2,1]}')


def test_fingerprint_an_empty_body_differs_from_an_empty_object():
    assert fingerprint("POST", PATH, b"") != fingerprint("POST", PATH, b"{}")


def test_fingerprint_parts_are_framed():
    # moving bytes from the path into the body must not make the same fingerprint
    assert fingerprint("POST", "/v1/payments1", b"") != fingerprint("POST", "/v1/payments", b"1")
    assert fingerprint("POS", "T/v1", b"") != fingerprint("POST", "/v1", b"")


def test_fingerprint_of_invalid_json_uses_the_raw_bytes():
    assert fingerprint("POST", PATH, b"{not json") == fingerprint("POST", PATH, b"{not json")
    assert fingerprint("POST", PATH, b"{not json") != fingerprint("POST", PATH, b"{not  json")
    expected = hmac.new(b"", b"idempotency-fingerprint-v1", hashlib.sha256)
    for part in (b"", b"POST", PATH.encode(), b"{not json"):
        expected.update(len(part).to_bytes(8, "big") + part)
    assert fingerprint("POST", PATH, b"{not json") == expected.hexdigest()


def test_fingerprint_of_json_is_the_sorted_compact_form():
    expected = hmac.new(b"", b"idempotency-fingerprint-v1", hashlib.sha256)
    for part in (b"", b"POST", PATH.encode(), b'{"a":1,"b":{"c":2,"d":3}}'):
        expected.update(len(part).to_bytes(8, "big") + part)
    assert fingerprint("POST", PATH, b'{ "b": {"d": 3, "c": 2}, "a": 1 }') == expected.hexdigest()


def test_fingerprint_differs_by_caller():
    raw = b'{"a": 1}'
    assert fingerprint("POST", PATH, raw, "dev") != fingerprint("POST", PATH, raw, "readonly")
    assert fingerprint("POST", PATH, raw, "dev") == fingerprint("POST", PATH, b'{"a":1}', "dev")


# --- upstream_key ----------------------------------------------------------------------------------------------
KEY = b"\x01" * 32


def test_upstream_key_is_40_lowercase_hex_characters():
    key = upstream_key(KEY, "acme", "caller-key-1", "consent")
    assert HEX40.fullmatch(key)
    assert len(key) == 40  # the Open Banking x-idempotency-key limit


def test_upstream_key_is_deterministic():
    assert upstream_key(KEY, "acme", "pay_1", "submission") == upstream_key(KEY, "acme", "pay_1", "submission")


def test_upstream_key_is_the_truncated_hmac():
    mac = hmac.new(KEY, b"idempotency\x00submission\x00acme\x00pay_1", hashlib.sha256).hexdigest()
    assert upstream_key(KEY, "acme", "pay_1", "submission") == mac[:40]


def test_upstream_key_differs_by_tenant():
    assert upstream_key(KEY, "acme", "k1", "consent") != upstream_key(KEY, "globex", "k1", "consent")


def test_upstream_key_differs_by_purpose():
    assert upstream_key(KEY, "acme", "pay_1", "consent") != upstream_key(KEY, "acme", "pay_1", "submission")


def test_upstream_key_differs_by_name():
    assert upstream_key(KEY, "acme", "k1", "consent") != upstream_key(KEY, "acme", "k2", "consent")


def test_upstream_key_differs_by_secret():
    assert upstream_key(KEY, "acme", "k1", "consent") != upstream_key(b"\x02" * 32, "acme", "k1", "consent")


def test_upstream_key_fields_are_separated():
    # ("ab", "c") and ("a", "bc") must not collide
    assert upstream_key(KEY, "ab", "c", "consent") != upstream_key(KEY, "a", "bc", "consent")
    assert upstream_key(KEY, "acme", "x", "consent") != upstream_key(KEY, "acme", "", "consentx")


def test_upstream_key_reveals_nothing_of_the_name():
    name = "my-secret-idempotency-key"
    key = upstream_key(KEY, "acme", name, "consent")
    assert name not in key and "acme" not in key

