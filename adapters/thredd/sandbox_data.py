"""Seeded data for the Thredd simulator: pre-existing open-banking customers and their Finicity-shaped accounts.

Thredd rides on Mastercard Finicity, so its accounts are Finicity accounts: the account templates (names, types,
balances), the institutions, and the account and ABA routing number generators come from the Finicity simulator's
data. Thredd shares only checking and savings accounts (instant account verification), so a connection links those
two of a FinBank profile. Every number derives from the seed and the account id.

Seeded customers (ids are strings of digits, as Thredd sends them):

- 8100000001  connected at FinBank Profiles - A (102105): checking 7300000001, savings 7300000002
- 8100000002  connected at FinBank Profiles - B (102224): checking 7300000011, savings 7300000012
- 8100000003  registered, never connected: its account list is empty
"""
from __future__ import annotations

import random
from typing import Any

import attrs

from adapters.mastercard_us.sandbox_data import (
    INSTITUTIONS, PROFILES, AccountTemplate, account_number, json_number, routing_number,
)

CONNECTED_CUSTOMER = "8100000001"
SECOND_CONNECTED_CUSTOMER = "8100000002"
UNCONNECTED_CUSTOMER = "8100000003"
DEFAULT_INSTITUTION = "102105"
SHARED_TYPES = ("checking", "savings")
# Which FinBank profile's accounts an end user connects at an institution; profile_02 everywhere else.
PROFILE_BY_INSTITUTION = {102105: "profile_03", 102224: "profile_02"}
FIRST_NEW_CUSTOMER = 8100000100
FIRST_NEW_ACCOUNT = 7300001000
FIRST_NEW_LOGIN = 6200001000


@attrs.define
class ThreddAccount:
    id: str
    customer_id: str
    institution_id: int
    login_id: int
    template: AccountTemplate
    number: str
    routing: str
    created: int  # epoch seconds
    status: str = "active"

    @property
    def last4(self) -> str:
        return self.number[-4:]


@attrs.define
class ThreddCustomer:
    id: str
    created: int  # epoch seconds
    accounts: list[ThreddAccount] = attrs.Factory(list)
    revoked: bool = False


@attrs.frozen
class SeedCustomer:
    id: str
    institution_id: int | None = None
    login_id: int | None = None
    first_account_id: int | None = None


SEEDED_CUSTOMERS: tuple[SeedCustomer, ...] = (
    SeedCustomer(CONNECTED_CUSTOMER, 102105, 6200000001, 7300000001),
    SeedCustomer(SECOND_CONNECTED_CUSTOMER, 102224, 6200000002, 7300000011),
    SeedCustomer(UNCONNECTED_CUSTOMER),
)


def shared_templates(institution_id: int) -> list[AccountTemplate]:
    """The checking and savings templates of the profile an end user connects at this institution."""
    profile = PROFILES[PROFILE_BY_INSTITUTION.get(institution_id, "profile_02")]
    return [next(t for t in profile.accounts if t.type == kind) for kind in SHARED_TYPES]


def make_accounts(*, seed: int, customer_id: str, institution_id: int, login_id: int, first_account_id: int,
                  created: int) -> list[ThreddAccount]:
    if institution_id not in INSTITUTIONS:
        raise KeyError(f"unknown institution {institution_id}")
    out = []
    for offset, template in enumerate(shared_templates(institution_id)):
        account_id = str(first_account_id + offset)
        numbers = random.Random(f"{seed}:thredd:account:{account_id}")
        out.append(ThreddAccount(account_id, customer_id, institution_id, login_id, template,
                                 account_number(numbers), routing_number(numbers), created))
    return out


def account_json(account: ThreddAccount, *, refreshed: int) -> dict[str, Any]:
    """The Finicity account object as Thredd passes it on (the essential fields only)."""
    return {
        "id": account.id, "number": account.last4, "accountNumberDisplay": account.last4,
        "realAccountNumberLast4": account.last4, "name": account.template.name, "type": account.template.type,
        "status": account.status, "customerId": account.customer_id, "institutionId": str(account.institution_id),
        "institutionLoginId": account.login_id, "balance": json_number(account.template.balance),
        "balanceDate": refreshed, "currency": "USD", "createdDate": account.created,
    }


def details_json(account: ThreddAccount) -> dict[str, Any]:
    return {"type": "ach", "accountNumber": account.number,
            "descriptors": [{"type": "routingNumber", "value": account.routing}]}
