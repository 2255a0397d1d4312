"""Canonical payments ⇄ Open Banking Connect credit transfers: the `payments` body of each type (per the hub's PIS
swagger), the transfer and payment-status answers, and ISO 20022 statuses mapped onto the canonical state machine.
Pure functions, no I/O. Amounts go out as JSON numbers written from the exact decimal text (never a float)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from adapters.base import PaymentInput
from adapters.ob_connect.translate import _bad
from gateway.connectivity.fapi import AuthorisationRefused
from gateway.models.money import minor_units
from gateway.models.payments import PaymentStatus
from gateway.models.serialize import decimal_text

# Canonical payment types → the hub's path segment and the capability that offers it.
PAYMENT_PATHS = {"domestic": "domestic", "sepa": "sepa", "international": "cross-border"}
PAYMENT_CAPABILITIES = {"domestic": "domestic_credit_transfer", "sepa": "sepa_credit_transfer",
                        "international": "cross_border_credit_transfer"}

# ISO 20022 transaction statuses → the canonical state machine.
ISO_STATUSES: dict[str, PaymentStatus] = {
    "RCVD": PaymentStatus.SUBMITTED,  # received
    "PDNG": PaymentStatus.SUBMITTED,  # pending further checks
    "ACTC": PaymentStatus.PENDING,  # accepted after technical validation
    "ACCP": PaymentStatus.PENDING,  # accepted after customer profile checks
    "ACSP": PaymentStatus.PENDING,  # accepted, settlement in process
    "ACWC": PaymentStatus.PENDING,  # accepted with change
    "ACWP": PaymentStatus.PENDING,  # accepted without posting
    "ACSC": PaymentStatus.COMPLETED,  # accepted, settlement completed
    "RJCT": PaymentStatus.REJECTED,
    "CANC": PaymentStatus.CANCELLED,
}
def amount(value: Decimal, currency: str) -> orjson.Fragment:
    """The hub takes amounts as JSON numbers (the swagger: number/double). Written as the exact decimal text with
    the currency's places (`149.90`), straight into the JSON: no float is ever made of it."""
    return orjson.Fragment(decimal_text(Decimal(value).quantize(Decimal(1).scaleb(-minor_units(currency)))).encode())


def _account_identification(account: Any) -> dict[str, str]:
    if account.scheme == "iban":
        return {"identification": account.iban, "schemeName": "IBAN"}
    return {"identification": f"{account.sort_code}{account.account_number}", "schemeName": "SortCodeAccountNumber"}


def _domestic_number(account: Any, country: str) -> dict[str, str]:
    if country == "GB":
        return {"identification": account.account_number, "schemeName": "UK.AccountNumber"}
    return {"identification": (account.iban or "").removeprefix("PL"), "schemeName": "PL.AccountNumber"}


def _address(creditor: Any) -> dict[str, Any] | None:
    address = creditor.address
    if address is None:
        return None
    out: dict[str, Any] = {"country": address.country}
    if address.city:
        out["city"] = address.city
    if address.postal_code:
        out["postalCode"] = address.postal_code
    if address.lines:
        out["street"] = address.lines[0]
    return out


def payment_body(data: PaymentInput, *, country: str) -> dict[str, Any]:
    """The `payments` object of a credit-transfer consent, per the hub's swagger for the payment's type (and, for
    domestic payments, the bank's country: UK Faster Payments or Polish Elixir)."""
    creditor = data.creditor
    account = creditor.account
    body: dict[str, Any] = {
        "endToEndIdentification": data.end_to_end_id,
        "instructedAmount": {"amount": amount(data.amount, data.currency), "currency": data.currency},
        "creditorName": creditor.name,
        "remittanceInformationUnstructured": data.reference,
    }
    address = _address(creditor) if data.type != "domestic" else None  # optional for domestic, and the hub's
    # domestic address needs a building number the canonical address does not carry: not sent
    if data.type == "domestic":
        body["creditorAccount"] = _domestic_number(account, country)
        if country == "GB":
            body["creditorAgent"] = {"clearingSystemIdentification": "UK.SortCode",
                                     "memberIdentification": account.sort_code}
        body["localInstrument"] = "UK.FasterPayments" if country == "GB" else "PL.Elixir"
        if data.debtor_account is not None:
            body["debtorAccount"] = {"identification": _domestic_number(data.debtor_account, country)["identification"]}
    elif data.type == "sepa":
        body["creditorAccount"] = {"iban": account.iban}
        body["creditorAgent"] = {"bicfi": account.bic}
        body["localInstrument"] = "SEPA"
        body["instructionPriority"] = "Normal"
        body["debtorName"] = data.debtor_name
        if data.debtor_account is not None:
            body["debtorAccount"] = {"iban": data.debtor_account.iban}
    else:
        body["creditorAccount"] = _account_identification(account)
        body["creditorAgent"] = {"identification": account.bic, "schemeName": "BIC"}
        body["localInstrument"] = "Swift"
        body["instructionPriority"] = "Normal"
        if data.debtor_account is not None:
            body["debtorAccount"] = _account_identification(data.debtor_account)
        if data.debtor_name:
            body["debtorName"] = data.debtor_name
    if address is not None:
        body["creditorAddress"] = address
    return body


def transfer(body: Any, *, consent_request_id: str | None = None) -> tuple[str, str, str | None, PaymentStatus]:
    """(paymentId, consentId, ISO status, canonical status) of a transfer answer. With `consent_request_id`, the
    transfer must be of that consent: an authorisation of another payment made (or found) another payment."""
    node = body.get("transfer") if isinstance(body, dict) else None
    consent = body.get("consent") if isinstance(body, dict) else None
    if consent_request_id is not None and (not isinstance(consent, dict)
                                           or consent.get("consentRequestId") != consent_request_id):
        raise AuthorisationRefused("redirect_result: it authorised another payment, not this one", errors=[
            {"location": "body", "field": "redirect_result", "message": "the authorisation of another payment"}])
    if not isinstance(node, dict) or not isinstance(node.get("paymentId"), str):
        raise _bad("a transfer without paymentId")
    status = node.get("transactionStatus")
    consent_id = consent.get("consentId") if isinstance(consent, dict) else None
    if not isinstance(status, str) or status not in ISO_STATUSES or not isinstance(consent_id, str):
        raise _bad("a transfer without a known transactionStatus or its consentId")
    return node["paymentId"], consent_id, status, ISO_STATUSES[status]


def payment_status(body: Any) -> tuple[str, PaymentStatus, str | None]:
    node = body.get("payments") if isinstance(body, dict) else None
    status = node.get("transactionStatus") if isinstance(node, dict) else None
    if not isinstance(status, str) or status not in ISO_STATUSES:
        raise _bad("a payment status that is not an ISO 20022 status")
    return status, ISO_STATUSES[status], node.get("statusReasonCode")
