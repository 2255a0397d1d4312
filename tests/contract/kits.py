"""What the contract suite needs to know to drive each provider through the canonical API.

A kit says how to get an authorised consent (customer fields, end-user choices) and nothing else: every
assertion in the suite is the same for every provider.
"""
from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class ProviderKit:
    provider: str
    customer: dict[str, Any] | None  # body extras for POST /v1/customers; None if the provider has no customers
    consent: dict[str, Any] = attrs.field(factory=dict)  # body extras for POST /v1/consents
    end_user: dict[str, Any] = attrs.field(factory=dict)  # what the simulated end user chooses
    payment_scheme: str | None = None  # the payment-coordinates scheme its accounts expose
    consumer: dict[str, Any] | None = None  # body for POST /v1/customers/{id}/consumer, where reports need one
    report_types: tuple[str, ...] = ()  # report types its test customers can have
    payment: dict[str, Any] | None = None  # a payment order it accepts (POST /v1/payments body, without provider)


# ob-connect's Rheinufer Bank (DE): account information, SEPA and cross-border payments (UPSTREAM.md)
OB_CONNECT_BANK = "2d5a7e23-1711-5059-8e3c-3a4471941b8c"

KITS: dict[str, ProviderKit] = {
    "mastercard-us": ProviderKit(
        provider="mastercard-us",
        customer={"type": "testing"},
        end_user={"institution_id": "102105", "username": "profile_03"},
        payment_scheme="us_ach",
        # The platform also needs the consumer's state: without an address, the adapter reads the account owner's.
        consumer={"first_name": "Jordan", "last_name": "Whitaker", "email": "jordan.whitaker@example.com",
                  "birth_date": "1985-04-12"},
        report_types=("voa", "voi", "cash_flow"),
    ),
    "mastercard-au": ProviderKit(
        provider="mastercard-au",
        customer={"type": "testing"},
        end_user={"institution_id": "200003", "username": "profile_4110"},
        payment_scheme="au_bsb",
        consumer={"first_name": "Charlotte", "last_name": "Wilson"},
        report_types=("voa", "voi"),
    ),
    "stripe-uk": ProviderKit(
        provider="stripe-uk",
        customer=None,  # the ASPSP knows its own customers; a consent needs none here
        end_user={"outcome": "approve"},
        payment_scheme="uk_sort_code",
        payment={"type": "domestic", "amount": {"amount": "12.34", "currency": "GBP"},
                 "creditor": {"name": "Contract Creditor Ltd",
                              "account": {"scheme": "uk_sort_code", "sort_code": "040004",
                                          "account_number": "87654321"}},
                 "reference": "CONTRACT01", "redirect_uri": "https://app.example.com/cb"},
    ),
    "thredd": ProviderKit(
        provider="thredd",
        customer=None,  # Thredd registers its customer when the consent is created
        end_user={"outcome": "approve"},
        payment_scheme="us_ach",
    ),
    "ob-connect": ProviderKit(
        provider="ob-connect",
        customer=None,  # the banks behind the hub know their own customers
        consent={"institution_id": OB_CONNECT_BANK},  # the hub reaches many banks: a consent names one
        end_user={"outcome": "approve"},
        payment_scheme="iban",
        payment={"type": "sepa", "institution_id": OB_CONNECT_BANK,
                 "amount": {"amount": "12.34", "currency": "EUR"}, "debtor_name": "Alex Morgan",
                 "creditor": {"name": "Contract Creditor GmbH",
                              "account": {"scheme": "iban", "iban": "DE89370400440532013000", "bic": "COBADEFFXXX"},
                              "address": {"country": "DE"}},
                 "reference": "CONTRACT01", "redirect_uri": "https://app.example.com/cb"},
    ),
}
