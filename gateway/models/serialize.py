"""Canonical resources → JSON: one converter to plain structures, one `dumps` to bytes.

`to_plain` leaves datetimes and dates as objects and `dumps` writes them (orjson, RFC 3339 with "Z"): every
timestamp in the models is UTC-aware, so the text is the same as formatting it by hand, at a fraction of the
cost. Money becomes {"amount": "<decimal string>", "currency": "<ISO 4217 code>"}, enums their values. The resources on
hot paths (transactions, balances) have hand-written hooks; the rest use cattrs' generated ones.
"""
from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any, Sequence

import cattrs
import orjson

from gateway.models.money import Money
from gateway.models.resources import Balance, Transaction

converter = cattrs.Converter(omit_if_default=False)
_OPTIONS = orjson.OPT_UTC_Z


def decimal_text(value: Decimal) -> str:
    text = str(value)
    return format(value, "f") if "E" in text else text  # never exponent notation


def _money(m: Money) -> dict[str, str]:
    return {"amount": decimal_text(m.amount), "currency": m.currency}


def _transaction(t: Transaction, amount: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "id": t.id, "account_id": t.account_id, "provider_ref": t.provider_ref,
        "amount": _money(t.amount) if amount is None else amount,
        "status": t.status.value, "description": t.description, "booked_at": t.booked_at,
        "transaction_date": t.transaction_date, "category": t.category, "memo": t.memo,
        "check_number": t.check_number,
    }


def _transactions(items: Sequence[Transaction]) -> list[dict[str, Any]]:
    """A page of transactions: amounts repeat (the translation shares Money objects), so each is rendered once."""
    amounts: dict[int, dict[str, str]] = {}
    out = []
    for t in items:
        m = t.amount
        amount = amounts.get(id(m))
        if amount is None:
            amount = amounts[id(m)] = _money(m)
        out.append(_transaction(t, amount))
    return out


def _balance(b: Balance) -> dict[str, Any]:
    return {"account_id": b.account_id, "type": b.type.value, "amount": _money(b.amount), "as_of": b.as_of,
            "live": b.live}


converter.register_unstructure_hook(Decimal, decimal_text)
converter.register_unstructure_hook(Money, _money)
converter.register_unstructure_hook(Transaction, _transaction)
converter.register_unstructure_hook(Balance, _balance)
converter.register_unstructure_hook_func(lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda e: e.value)


def to_plain(obj: Any) -> Any:
    return converter.unstructure(obj)


def to_plain_list(items: Sequence[Any]) -> list[Any]:
    """Many objects of one type: the hook is looked up once, not per item."""
    if not items:
        return []
    kind = type(items[0])
    if kind is Transaction and all(type(i) is Transaction for i in items):
        return _transactions(items)
    hook = converter.get_unstructure_hook(kind)
    return [hook(item) for item in items]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTIONS)
