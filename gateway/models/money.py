"""Money as Decimal, and exact conversion of the floats some upstreams send.

A float such as 0.30000000000000004 is converted through its shortest round-trip repr, never through binary
expansion, so what the upstream printed is what we keep. Amounts are then scaled to the currency's minor unit
when that loses nothing; a value with more precision than the currency allows is kept as it is rather than rounded.
"""
from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

import attrs

# ISO 4217 minor units for the currencies the providers use; anything else defaults to 2.
MINOR_UNITS: dict[str, int] = {"USD": 2, "AUD": 2, "GBP": 2, "EUR": 2, "PLN": 2, "SEK": 2, "DKK": 2,
                               "NOK": 2, "CHF": 2, "CZK": 2, "HUF": 2, "RON": 2, "JPY": 0, "BHD": 3, "KWD": 3}
_QUANTA = {n: Decimal(1).scaleb(-n) for n in range(0, 5)}


def minor_units(currency: str) -> int:
    return MINOR_UNITS.get(currency, 2)


def _normalise(value: Decimal, currency: str) -> Decimal:
    """Scale to the currency's minor unit when that is exact ("12.5" → "12.50", JPY "100.0" → "100");
    keep every digit when it is not ("0.30000000000000004" stays as the upstream sent it)."""
    if not value.is_finite():
        raise ValueError("amount is not a finite number")
    if value.is_zero():
        value = abs(value)  # no "-0.00" in our output
    scaled = value.quantize(_QUANTA[minor_units(currency)])
    return scaled if scaled == value else value


def decimal_from_float(value: float | int | str | Decimal) -> Decimal:
    """Exact Decimal of an upstream JSON number (float via its shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("amount is not a finite number")
        return Decimal(repr(value))
    return Decimal(value)


def parse_amount(text: str) -> Decimal:
    """Parse a caller's decimal string strictly ("12.50", "-3", not "1e3", not " 1", not "NaN")."""
    if not isinstance(text, str) or not text or text.strip() != text:
        raise ValueError("amount must be a decimal string such as \"12.50\"")
    body = text[1:] if text[0] in "+-" else text
    if not body or not all(c in "0123456789." for c in body) or body.count(".") > 1 or body in (".",):
        raise ValueError("amount must be a decimal string such as \"12.50\"")
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - guarded above
        raise ValueError("amount must be a decimal string") from exc


@attrs.frozen(slots=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, amount: float | int | str | Decimal, currency: str) -> "Money":
        return cls(_normalise(decimal_from_float(amount), currency), currency)

    def to_json(self) -> dict[str, str]:
        return {"amount": format(self.amount, "f"), "currency": self.currency}
