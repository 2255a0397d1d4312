"""Canonical JSON: a page rendered at once equals its items rendered one by one; times are RFC 3339 UTC."""
from __future__ import annotations

from datetime import date, datetime, timezone

import orjson

from gateway.models import Money, Transaction, TransactionStatus
from gateway.models.serialize import dumps, to_plain, to_plain_list


def test_page_equals_items_and_text_is_exact() -> None:
    shared = Money.of(0.1 + 0.2, "USD")
    items = [
        Transaction(id=f"txn_{i}", account_id="acc_1", provider_ref=str(i), amount=amount,
                    status=TransactionStatus.BOOKED, description="x",
                    booked_at=datetime(2026, 3, 8, 7, 30, 0, 123000, tzinfo=timezone.utc),
                    transaction_date=date(2026, 3, 8))
        for i, amount in enumerate([shared, shared, Money.of("-12.5", "USD"), Money.of("1E+3", "USD")])
    ]
    assert to_plain_list(items) == [to_plain(t) for t in items]
    text = orjson.loads(dumps(to_plain_list(items)))
    assert [t["amount"]["amount"] for t in text] == ["0.30000000000000004", "0.30000000000000004", "-12.50",
                                                     "1000.00"]
    assert text[0]["booked_at"] == "2026-03-08T07:30:00.123000Z" and text[0]["transaction_date"] == "2026-03-08"
    assert to_plain_list([]) == []
