"""Cursors are opaque and tamper-evident; ids are stable per tenant and unforgeable."""
from __future__ import annotations

import base64

import orjson
import pytest

from gateway.api.cursor import CursorCodec
from gateway.errors import ValidationFailed
from gateway.ids import IdMinter, new_id


def test_cursor_round_trip() -> None:
    codec = CursorCodec(b"key")
    token = codec.encode("tenant-a", "txn:acc_1", {"start": 26})
    assert codec.decode(token, "tenant-a", "txn:acc_1") == {"start": 26}


@pytest.mark.parametrize("mutate", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: "x" + t,
    lambda t: t.split(".")[0],
    lambda t: "",
    lambda t: "not-base64!.zz",
])
def test_cursor_tampering_refused(mutate) -> None:  # type: ignore[no-untyped-def]
    codec = CursorCodec(b"key")
    token = codec.encode("tenant-a", "s", {"start": 1})
    with pytest.raises(ValidationFailed) as err:
        codec.decode(mutate(token), "tenant-a", "s")
    assert err.value.errors[0]["field"] == "cursor"


def test_cursor_with_forged_payload_refused() -> None:
    codec = CursorCodec(b"key")
    token = codec.encode("tenant-a", "s", {"start": 1})
    body, mac = token.split(".")
    forged = base64.urlsafe_b64encode(orjson.dumps({"t": "tenant-a", "s": "s", "p": {"start": 999}, "i": 0}))
    with pytest.raises(ValidationFailed):
        codec.decode(forged.decode().rstrip("=") + "." + mac, "tenant-a", "s")


def test_cursor_bound_to_tenant_and_query() -> None:
    codec = CursorCodec(b"key")
    token = codec.encode("tenant-a", "txn:acc_1:2026-01-01", {"start": 26})
    with pytest.raises(ValidationFailed):
        codec.decode(token, "tenant-b", "txn:acc_1:2026-01-01")
    with pytest.raises(ValidationFailed):
        codec.decode(token, "tenant-a", "txn:acc_1:2025-01-01")
    with pytest.raises(ValidationFailed):
        CursorCodec(b"other-key").decode(token, "tenant-a", "txn:acc_1:2026-01-01")


def test_ids() -> None:
    a = IdMinter(b"k", "tenant-a", "con_1")
    assert a.account("123") == IdMinter(b"k", "tenant-a", "con_1").account("123")
    assert a.account("123") != IdMinter(b"k", "tenant-b", "con_1").account("123")
    assert a.account("123") != IdMinter(b"other", "tenant-a", "con_1").account("123")
    assert a.account("123").startswith("acc_") and a.transactions_of("acc_1")("9").startswith("txn_")
    assert a.transactions_of("acc_1")("9") != IdMinter(b"k", "tenant-b", "con_1").transactions_of("acc_1")("9")
    ids = {new_id("cus") for _ in range(1000)}
    assert len(ids) == 1000 and all(i.startswith("cus_") and len(i) == 28 for i in ids)
