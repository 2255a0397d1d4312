"""Transactions of the simulated AU accounts: plausible Australian merchants, the profile's income streams, pending
and shadow transactions, dated in Sydney time over the last 365 days.

An account's transactions derive from (seed, profile, account template) only, so the same seed gives the same data
in every run. Amounts are Decimals here with two decimals and become JSON floats in `money`.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from adapters.mastercard_au.sandbox_data import (
    D, AccountTemplate, Profile, money, sydney_date, sydney_epoch,
)

# (payee, category, type, smallest, largest, sign) per kind of account
_EVERYDAY = (
    ("Woolworths", "Groceries", "pointOfSale", 12, 240, -1),
    ("Coles", "Groceries", "pointOfSale", 9, 210, -1),
    ("ALDI Stores", "Groceries", "pointOfSale", 15, 160, -1),
    ("Ampol", "Gas & Fuel", "pointOfSale", 40, 110, -1),
    ("7-Eleven", "Gas & Fuel", "pointOfSale", 4, 95, -1),
    ("Bunnings Warehouse", "Home Improvement", "pointOfSale", 8, 380, -1),
    ("Chemist Warehouse", "Pharmacy", "pointOfSale", 6, 85, -1),
    ("Telstra", "Mobile Phone", "directDebit", 55, 99, -1),
    ("Origin Energy", "Utilities", "directDebit", 120, 460, -1),
    ("Transport for NSW Opal", "Public Transportation", "pointOfSale", 3, 50, -1),
    ("Uber Eats", "Food & Dining", "pointOfSale", 18, 75, -1),
    ("Guzman y Gomez", "Fast Food", "pointOfSale", 12, 38, -1),
    ("Netflix.com", "Entertainment", "directDebit", 11, 26, -1),
    ("JB Hi-Fi", "Electronics & Software", "pointOfSale", 19, 899, -1),
    ("ATM Withdrawal", "Cash & ATM", "atm", 20, 300, -1),
    ("Osko Transfer From A Patel", "Transfer", "transfer", 10, 250, 1),
    ("BPAY Sydney Water", "Utilities", "payment", 140, 320, -1),
)
_KINDS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "everyday": _EVERYDAY,
    "saving": (("Interest Credit", "Interest Income", "interest", 1, 60, 1),
               ("Transfer From Everyday", "Transfer", "transfer", 50, 900, 1),
               ("Transfer To Everyday", "Transfer", "transfer", 50, 600, -1)),
    "term": (("Term Deposit Interest", "Interest Income", "interest", 80, 400, 1),),
    "credit": (("Qantas Airways", "Air Travel", "pointOfSale", 140, 980, -1),
               ("Myer", "Shopping", "pointOfSale", 25, 320, -1),
               ("Uber Trip", "Rental Car & Taxi", "pointOfSale", 9, 65, -1),
               ("Kmart", "Shopping", "pointOfSale", 5, 140, -1),
               ("Payment Received - Thank You", "Credit Card Payment", "payment", 200, 1500, 1)),
    "loan": (("Loan Repayment Received", "Loan Payment", "payment", 380, 2900, 1),
             ("Interest Charged", "Interest Paid", "fee", 20, 1900, -1)),
    "business": (("Square Settlement", "Sales", "credit", 180, 4200, 1),
                 ("Stripe Payout", "Sales", "credit", 250, 6800, 1),
                 ("Osko From Harbour Builders Pty Ltd", "Sales", "transfer", 800, 14500, 1),
                 ("Timber Merchants Australia", "Supplies", "debit", 300, 8800, -1),
                 ("Bunnings Trade", "Supplies", "pointOfSale", 40, 2400, -1),
                 ("Xero Australia", "Software", "directDebit", 35, 90, -1),
                 ("Officeworks", "Office Supplies", "pointOfSale", 12, 410, -1),
                 ("Staff Wages", "Payroll", "transfer", 900, 5200, -1),
                 ("Ampol Fleet Card", "Gas & Fuel", "pointOfSale", 60, 260, -1),
                 ("ATO BAS Payment", "Taxes", "payment", 1200, 9800, -1),
                 ("AAMI Business Insurance", "Insurance", "directDebit", 180, 620, -1)),
    "business_card": (("Qantas Business Rewards", "Air Travel", "pointOfSale", 180, 1400, -1),
                      ("Bunnings Trade", "Supplies", "pointOfSale", 40, 1800, -1),
                      ("Google Workspace", "Software", "pointOfSale", 9, 120, -1),
                      ("Payment Received - Thank You", "Credit Card Payment", "payment", 1000, 6000, 1)),
}
_SUBURBS = ("SYDNEY", "PARRAMATTA", "MELBOURNE", "BRISBANE", "ADELAIDE", "PERTH", "HOBART", "CANBERRA")


def _kind(template: AccountTemplate) -> str:
    if template.type == "transactionAndSavings":
        return "business" if template.segment == "business" else "everyday"
    if template.type == "creditCard":
        return "business_card" if template.segment == "business" else "credit"
    return {"savings": "saving", "termDeposit": "term"}.get(template.type, "loan")


@attrs.define
class _Draft:
    day: date
    amount: Decimal
    payee: str
    category: str
    type: str
    minute: int
    status: str = "active"


def _drafts(rng: random.Random, profile: Profile, template: AccountTemplate, today: date) -> Iterator[_Draft]:
    count = template.transactions
    if template is profile.accounts[0]:  # income arrives in the profile's first account
        for income in profile.incomes:
            first = today - timedelta(days=rng.randrange(1, income.every + 1))
            for back in range(0, 365, income.every):
                yield _Draft(first - timedelta(days=back), income.amount, income.payor, income.category,
                             "directDeposit", 5 * 60 + rng.randrange(120))
                count -= 1
    rows = _KINDS[_kind(template)]
    for _ in range(max(count, 0)):
        payee, category, type_, low, high, sign = rows[rng.randrange(len(rows))]
        amount = D(rng.randint(low * 100, high * 100)) / 100 * sign
        yield _Draft(today - timedelta(days=rng.randrange(365)), amount, payee, category, type_,
                     rng.randint(7 * 60, 22 * 60))


def generate_transactions(*, seed: int, profile: Profile, template: AccountTemplate, account_id: str,
                          customer_id: str, now: datetime) -> tuple[list[dict[str, Any]], Decimal]:
    """The account's transactions in the platform's JSON shape, oldest first (by transactionDate, else postedDate),
    and the sum of the pending ones.

    The last days' card and everyday transactions are `pending` (no postedDate yet); about one in a hundred older
    ones is `shadow` (no longer in the institution's data), half of those with an `active` replacement.
    """
    rng = random.Random(f"{seed}:{profile.username}:{template.key}")
    today = sydney_date(now)
    now_epoch = int(now.timestamp())
    drafts = sorted(_drafts(rng, profile, template, today), key=lambda d: (d.day, d.minute, d.payee))
    for draft in drafts[-6:]:
        if (today - draft.day).days <= 3 and draft.type not in ("directDeposit", "interest"):
            draft.status = "pending"
    extra = []
    for index in range(40, len(drafts) - 20, 100):
        draft = drafts[index]
        draft.status = "shadow"
        if index % 200 == 40:
            corrected = draft.amount + (D("-0.50") if draft.amount < 0 else D("0.50"))
            extra.append(attrs.evolve(draft, status="active", amount=corrected, payee=draft.payee + " (corrected)"))
    drafts = sorted(drafts + extra, key=lambda d: (d.day, d.minute, d.payee))
    out = []
    for number, draft in enumerate(drafts, start=1):
        posted = min(sydney_epoch(draft.day, draft.minute), now_epoch - 60)
        suburb = _SUBURBS[number % len(_SUBURBS)]
        txn: dict[str, Any] = {
            "id": int(account_id) * 10_000 + number,
            "amount": money(draft.amount),
            "accountId": int(account_id),
            "customerId": int(customer_id),
            "status": draft.status,
            "description": f"{draft.payee.upper()} {suburb} AU" if draft.type == "pointOfSale" else draft.payee.upper(),
            "memo": f"{draft.payee} Value Date: {draft.day.day:02d}/{draft.day.month:02d}/{draft.day.year}",
            "type": draft.type,
            "createdDate": min(posted + 3600, now_epoch),
            "transactionDate": posted if draft.status == "pending" else posted - 86_400,
            "currencySymbol": "$",
            "categorization": {"normalizedPayeeName": draft.payee, "category": draft.category,
                               "bestRepresentation": draft.payee.upper(), "country": "AUS"},
        }
        if draft.status != "pending":
            txn["postedDate"] = posted
        out.append(txn)
    out.sort(key=lambda t: (t["transactionDate"], t["id"]))
    return out, sum((d.amount for d in drafts if d.status == "pending"), D(0))
