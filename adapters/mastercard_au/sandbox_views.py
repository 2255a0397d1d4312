"""The AU platform's JSON shapes for the simulator's state: accounts, balances, payment details, owners, consent
receipts, customers, applications and subscriptions.

Shapes are the US platform's (as the US simulator renders them) with AU values: AUD, Australian account types,
BSB payment instructions, CDR data scopes and access periods.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from adapters.mastercard_au.sandbox_data import (
    D, DEPOSIT_TYPES, INSTITUTIONS, PROFILES, SCOPE_NAMES, AccountTemplate, money, sydney_date, sydney_epoch,
)
from adapters.mastercard_au.sandbox_world import Account, Application, Arrangement, Customer, Receipt, World

PURPOSES = (
    {"id": "PFM", "name": "Personal financial management",
     "statement": "to show your accounts and transactions in one place and help you budget",
     "dataScopes": ["bank:accounts.basic:read", "bank:accounts.detail:read", "bank:transactions:read",
                    "common:customer.basic:read"]},
    {"id": "LENDING", "name": "Lending decision",
     "statement": "to verify your income, expenses and assets for your loan application",
     "dataScopes": ["bank:accounts.basic:read", "bank:accounts.detail:read", "bank:transactions:read",
                    "common:customer.basic:read"]},
    {"id": "PAYMENTS", "name": "Payment set-up",
     "statement": "to confirm your account details and balance before setting up payments",
     "dataScopes": ["bank:accounts.basic:read", "bank:accounts.detail:read"]},
)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _refreshed(world: World) -> int:
    """When the platform last aggregated: 05:00 Sydney time today (or now, if that is still ahead)."""
    now = world.now()
    return min(sydney_epoch(sydney_date(now), 5 * 60), int(now.timestamp()))


def _hold(template: AccountTemplate) -> Decimal:
    return (abs(template.balance) % 89).quantize(D("0.01"))


def masked(account: Account) -> str:
    return f"xxxx-xxxx-xxxx-{account.last4}"


def account_json(world: World, account: Account) -> dict[str, Any]:
    template, refreshed = account.template, _refreshed(world)
    return {
        "id": account.id, "number": masked(account), "accountNumberDisplay": masked(account),
        "realAccountNumberLast4": account.last4, "name": template.name, "accountNickname": template.name,
        "balance": money(template.balance), "type": template.type,
        "aggregationStatusCode": int(account.error_code or 0), "status": "active",
        "customerId": account.customer_id, "institutionId": str(account.institution_id),
        "balanceDate": refreshed, "aggregationSuccessDate": refreshed, "aggregationAttemptDate": refreshed,
        "createdDate": account.created, "lastUpdatedDate": refreshed, "marketSegment": template.segment,
        "currency": "AUD", "institutionLoginId": account.login_id, "displayPosition": account.position,
        "linkedAccountDate": account.created, "detail": _detail(template, refreshed),
    }


def _detail(template: AccountTemplate, refreshed: int) -> dict[str, Any]:
    balance, day, cents = template.balance, 86_400, D("0.01")
    if template.type in DEPOSIT_TYPES:
        detail = {"dateAsOf": refreshed, "availableBalanceAmount": money(balance - _hold(template)),
                  "currentBalance": money(balance), "openDate": refreshed - 1100 * day,
                  "interestYtdAmount": money((abs(balance) / 300).quantize(cents))}
        if template.type == "termDeposit":
            detail.update(maturityDate=refreshed + 140 * day, interestRate="4.35")
        return detail
    if template.type in ("loan", "mortgage"):
        owed = -balance
        return {"dateAsOf": refreshed, "principalBalance": money(owed), "payoffAmount": money(owed + D("184.30")),
                "nextPayment": money((owed / 150).quantize(cents)), "nextPaymentDate": refreshed + 9 * day,
                "interestRate": "6.24" if template.type == "mortgage" else "11.49", "loanPaymentFreq": "monthly",
                "originalPrincipal": money((owed * D("1.25")).quantize(D("1")))}
    limit = D("25000") if template.segment == "business" else D("8000")  # cards: the balance is owed, negative
    return {"dateAsOf": refreshed, "creditMaxAmount": money(limit), "creditAvailableAmount": money(limit + balance),
            "currentBalance": money(-balance), "paymentMinAmount": money((-balance / 50).quantize(cents)),
            "paymentDueDate": refreshed + 16 * day, "lastPaymentAmount": 500.0, "lastPaymentDate": refreshed - 14 * day,
            "statementCloseBalance": money(-balance - D("86.40")), "interestRate": "13.99"}


def balance_json(world: World, account: Account, *, live: bool) -> dict[str, Any]:
    """Cached: as of the last aggregation. Live: now, with the pending transactions applied."""
    available = account.template.balance - _hold(account.template)
    when = _refreshed(world)
    if live:
        available += world.book(account).pending_total
        when = world.now_epoch()
    return {"id": int(account.id), "realAccountNumberLast4": account.last4, "availableBalance": money(available),
            "availableBalanceDate": when, "clearedBalance": money(account.template.balance),
            "clearedBalanceDate": when, "aggregationStatusCode": 0, "currency": "AUD"}


def details_json(account: Account) -> dict[str, Any]:
    return {"paymentInstructions": [{"type": "moneyTransfer", "accountNumber": account.number,
                                     "descriptors": [{"type": "bsbNumber", "value": account.bsb}]}]}


def owner_json(account: Account) -> dict[str, Any]:
    owner = PROFILES[account.profile].owner
    name = owner.business or f"{owner.first} {owner.last}"
    holder: dict[str, Any] = {
        "relationship": "PRIMARY", "ownerName": name.upper(),
        "nameClassification": "business" if owner.business else "person", "nameClassificationConfidenceScore": 0.97,
        "addresses": [{"ownerAddress": f"{owner.line1} {owner.city} {owner.state} {owner.postcode}".upper(),
                       "type": "Business" if owner.business else "Home", "line1": owner.line1, "city": owner.city,
                       "state": owner.state, "postalCode": owner.postcode, "country": "AUS"}],
        "emails": [{"isPrimary": True, "email": owner.email,
                    "emailType": "Business" if owner.business else "Personal"}],
        "phones": [{"type": "HOME" if owner.phone.startswith("0") and owner.phone[1] != "4" else "CELL",
                    "country": "61", "phone": owner.phone}],
    }
    if not owner.business:
        holder.update(firstName=owner.first, lastName=owner.last)
    return {"holders": [holder]}


def _scopes(scopes: tuple[str, ...]) -> list[dict[str, str]]:
    return [{"id": s, "name": SCOPE_NAMES[s]} for s in scopes]


def _period(start: datetime, end: datetime) -> dict[str, str]:
    return {"type": "timeframe", "startDate": iso(start), "endDate": iso(end)}


def _arrangement_json(world: World, receipt: Receipt, arrangement: Arrangement, category: str) -> dict[str, Any]:
    accounts = [world.accounts[i] for i in arrangement.account_ids]
    account_status = "ACTIVE" if arrangement.status == "ACTIVE" else "INACTIVE"
    out: dict[str, Any] = {
        "institutionId": str(arrangement.institution_id), "institutionLoginId": str(arrangement.login_id),
        "institutionName": INSTITUTIONS[arrangement.institution_id].name,
        "accounts": [{"id": a.id, "realAccountNumberLast4": a.last4, "type": a.template.type,
                      "name": a.template.name, "status": account_status} for a in accounts],
        "createdDate": iso(arrangement.created),
        "statusDetails": {"status": arrangement.status, "statusDate": iso(arrangement.status_date)},
        "accessPeriod": _period(arrangement.created, receipt.end), "dataScopes": _scopes(arrangement.scopes),
        "dataHandling": {"postUsageStorage": "deletion", "statement": "Your data is deleted when you stop sharing it"},
        "accountOwnerCategory": category, "isBusinessConsumerStatement": str(category == "BUSINESS").lower(),
    }
    if arrangement.updated_by:
        out["lastUpdatedBy"] = arrangement.updated_by
    return out


def receipt_json(world: World, receipt: Receipt, *, status: str | None = None,
                 arrangements: list[Arrangement] | None = None) -> dict[str, Any]:
    """A consent receipt; `status` and `arrangements` override what is shown (a notification's snapshot)."""
    customer = world.customers[receipt.customer_id]
    purpose = PURPOSES[0]
    shown = receipt.arrangements if arrangements is None else arrangements
    return {
        "consentReceiptId": receipt.id, "receiptVersion": receipt.version, "customerId": receipt.customer_id,
        "customerCategory": customer.category, "purpose": purpose["name"], "purposeStatement": purpose["statement"],
        "partnerId": world.partner_id, "context": "partner", "allowedTrnxHistoryInDays": 365,
        "allowedTrnxHistorySinceDate": iso(receipt.created - timedelta(days=365)), "createdDate": iso(receipt.created),
        "statusDetails": {"status": status or receipt.status, "statusDate": iso(receipt.status_date)},
        "dataScopes": _scopes(receipt.scopes), "accessPeriod": _period(receipt.created, receipt.end),
        "institutions": [_arrangement_json(world, receipt, a, customer.category) for a in shown],
    }


def customer_json(customer: Customer) -> dict[str, Any]:
    out = {"id": customer.id, "username": customer.username, **customer.fields, "type": customer.type,
           "category": customer.category, "createdDate": str(customer.created)}
    if customer.abn:
        out["abn"] = customer.abn
    return out


def application_json(application: Application) -> dict[str, Any]:
    return {"applicationId": application.id, "appName": application.fields["appName"], "status": application.status,
            "accessModel": application.access_model, "createdDate": application.created}
