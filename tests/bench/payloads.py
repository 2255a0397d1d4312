"""Realistic mastercard-us payloads (shaped like the provider's spec) for the benchmark's fake upstream."""
from __future__ import annotations

import random
import time

import orjson

CUSTOMER_ID = "1005061234"
ACCOUNT_ID = "5011648377"
_DESCRIPTIONS = ["Grocery Outlet", "Shell Oil 5744", "Payroll ACME INC", "Amazon Mktp US", "Transfer to savings",
                 "Starbucks #1442", "Con Edison Bill Pay", "Zelle payment from J SMITH", "Check 1042", "ATM withdrawal"]


def transactions_page(count: int = 50, found: int = 1000) -> bytes:
    rng = random.Random(42)
    now = int(time.time())
    items = []
    for i in range(count):
        posted = now - i * 7200
        items.append({
            "id": 21284820852 + i,
            "amount": rng.choice([-828.9, -12.5, 0.1 + 0.2, -7.1, 1234.56, -19.99, 2500.0, -3.33]),
            "accountId": int(ACCOUNT_ID),
            "customerId": int(CUSTOMER_ID),
            "status": "pending" if i % 17 == 0 else "active",
            "description": rng.choice(_DESCRIPTIONS),
            "memo": "POS PURCHASE",
            "type": "debit",
            "transactionDate": posted - 3600,
            "postedDate": posted,
            "createdDate": posted,
            "categorization": {"normalizedPayeeName": "Grocery Outlet", "category": "Groceries",
                               "bestRepresentation": "GROCERY OUTLET", "country": "USA"},
            "runningBalanceAmount": 1000.25,
        })
    return orjson.dumps({"found": found, "displaying": count, "moreAvailable": found > count,
                         "fromDate": str(now - 90 * 86400), "toDate": str(now), "sort": "desc",
                         "transactions": items})


def balance() -> bytes:
    now = int(time.time())
    return orjson.dumps({"id": int(ACCOUNT_ID), "realAccountNumberLast4": "1111", "availableBalance": 1245.67,
                         "availableBalanceDate": now, "clearedBalance": 1300.12, "clearedBalanceDate": now,
                         "aggregationStatusCode": 0, "currency": "USD"})


def accounts() -> bytes:
    now = int(time.time())
    kinds = [("checking", ACCOUNT_ID), ("savings", "5011648378"), ("creditCard", "5011648379")]
    return orjson.dumps({"accounts": [{
        "id": ref, "number": "xx1111", "accountNumberDisplay": "1111", "name": f"Bench {kind}", "balance": 501.24,
        "type": kind, "status": "active", "customerId": CUSTOMER_ID, "institutionId": "102105",
        "balanceDate": now, "createdDate": now, "currency": "USD", "institutionLoginId": 1007302745,
        "displayPosition": i + 1,
    } for i, (kind, ref) in enumerate(kinds)]})


def consents() -> bytes:
    return orjson.dumps({"found": 1, "displaying": 1, "moreAvailable": False, "consents": [{
        "consentReceiptId": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "receiptVersion": 1,
        "customerId": CUSTOMER_ID, "customerCategory": "INDIVIDUAL", "purpose": "Account verification",
        "partnerId": "1445585709680", "statusDetails": {"status": "ACTIVE", "statusDate": "2099-01-01T00:00:00Z"},
        "accessPeriod": {"startDate": "2026-01-01T00:00:00Z", "endDate": "2099-01-01T00:00:00Z"},
        "createdDate": "2099-01-01T00:00:00Z",
        "institutions": [{"institutionId": "102105", "institutionLoginId": "1007302745",
                          "accounts": [{"id": ref, "status": "ACTIVE"} for ref in (ACCOUNT_ID, "5011648378", "5011648379")]}],
    }]})
