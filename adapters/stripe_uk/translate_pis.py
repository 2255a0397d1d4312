"""Canonical payments ⇄ Open Banking v3.1.2 domestic payments (OBWriteDomesticConsent3, OBWriteDomestic2 and their
responses). Pure functions, no I/O."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from adapters.base import PaymentInput
from gateway.errors import ProviderBadResponse, ValidationFailed
from gateway.models.money import minor_units
from gateway.models.payments import PaymentAccount, PaymentStatus
from gateway.models.serialize import decimal_text
from gateway.validation.body import field_error

PROVIDER = "stripe-uk"

SCHEMES = {"uk_sort_code": "UK.OBIE.SortCodeAccountNumber", "wallet": "UK.OBIE.Wallet", "iban": "UK.OBIE.IBAN"}

# OB payment statuses → the canonical state machine.
PAYMENT_STATUSES: dict[str, PaymentStatus] = {
    "Pending": PaymentStatus.SUBMITTED,  # received by the bank, not yet accepted
    "AcceptedSettlementInProcess": PaymentStatus.PENDING,
    "AcceptedWithoutPosting": PaymentStatus.PENDING,  # accepted, not yet posted to the creditor's account
    "AcceptedSettlementCompleted": PaymentStatus.COMPLETED,  # the debtor's account was debited
    "AcceptedCreditSettlementCompleted": PaymentStatus.COMPLETED,  # the creditor's account was credited
    "Rejected": PaymentStatus.REJECTED,
}
# OB payment-consent statuses, for a payment not yet submitted. "Consumed" means a payment was made from it.
CONSENT_STATUSES: dict[str, PaymentStatus] = {
    "AwaitingAuthorisation": PaymentStatus.AWAITING_AUTHORISATION,
    "Authorised": PaymentStatus.AUTHORISED,
    "Rejected": PaymentStatus.REJECTED,
}
CONSUMED = "Consumed"

_RUN_OF_SIX = re.compile(r"[A-Za-z0-9]{6}")
_WALLET = re.compile(r"^acct_[A-Za-z0-9]{1,59}$")


def check_payment(data: PaymentInput) -> None:
    """Stripe's rules, as its documentation states them, before anything is sent."""
    errors = payment_problems(data)
    if errors:
        raise ValidationFailed.of(errors)


def payment_problems(data: PaymentInput) -> list[dict[str, str]]:
    """Every way `data` breaks Stripe's rules (empty when it keeps them)."""
    errors = []
    reference = data.reference
    if len(reference) > 35:
        errors.append(field_error("reference", "at most 35 characters (RemittanceInformation.Reference)"))
    if not _RUN_OF_SIX.search(reference):
        errors.append(field_error("reference", f"{PROVIDER} needs at least 6 letters or digits in a row"))
    alphanumerics = re.sub(r"[^A-Za-z0-9]", "", reference).upper()  # as the bank reads it: ASCII letters and digits
    if alphanumerics and len(set(alphanumerics)) == 1:
        errors.append(field_error("reference", f"{PROVIDER} refuses a reference of one repeated character"))
    account = data.creditor.account
    if data.debtor_name is not None:
        errors.append(field_error("debtor_name", f"{PROVIDER} takes the payer's name from the payer's bank"))
    if data.institution_id is not None:
        errors.append(field_error("institution_id", f"{PROVIDER} is itself the payer's bank; name no institution"))
    for where, wallet in (("creditor.account", account), ("debtor_account", data.debtor_account)):
        if wallet is not None and wallet.scheme == "wallet" and not _WALLET.fullmatch(wallet.wallet_id or ""):
            errors.append(field_error(f"{where}.wallet_id", "a Stripe wallet is a Stripe account id (acct_…)"))
    return errors


def ob_account(account: PaymentAccount, name: str | None = None) -> dict[str, Any]:
    if account.scheme == "uk_sort_code":
        identification = f"{account.sort_code}{account.account_number}"
    elif account.scheme == "wallet":
        identification = account.wallet_id or ""
    else:
        identification = account.iban or ""
    out: dict[str, Any] = {"SchemeName": SCHEMES[account.scheme], "Identification": identification}
    if name is not None:
        out["Name"] = name
    if account.secondary_identification:
        out["SecondaryIdentification"] = account.secondary_identification
    return out


def ob_amount(amount: Decimal, currency: str) -> str:
    """OB amounts always have a fraction (`^\\d{1,13}\\.\\d{1,5}$`): "10" is sent as "10.00". Exact, since the
    canonical checks allow no more places than the currency has."""
    places = max(minor_units(currency), 1)
    return decimal_text(amount.quantize(Decimal(1).scaleb(-places)))


def initiation(data: PaymentInput) -> dict[str, Any]:
    body: dict[str, Any] = {
        "InstructionIdentification": data.instruction_id,
        "EndToEndIdentification": data.end_to_end_id,
        "InstructedAmount": {"Amount": ob_amount(Decimal(data.amount), data.currency), "Currency": data.currency},
        "CreditorAccount": ob_account(data.creditor.account, data.creditor.name),
        "RemittanceInformation": {"Reference": data.reference},
    }
    if data.debtor_account is not None:
        body["DebtorAccount"] = ob_account(data.debtor_account)
    address = data.creditor.address
    if address is not None:
        postal: dict[str, Any] = {"Country": address.country}
        if address.lines:
            postal["AddressLine"] = list(address.lines)
        if address.city:
            postal["TownName"] = address.city
        if address.postal_code:
            postal["PostCode"] = address.postal_code
        body["CreditorPostalAddress"] = postal
    return body


def consent_body(data: PaymentInput) -> dict[str, Any]:
    """OBWriteDomesticConsent3. Risk stays empty: the gateway has no payment context to declare."""
    return {"Data": {"Initiation": initiation(data)}, "Risk": {}}


def payment_body(consent_id: str, initiation_: dict[str, Any], risk: dict[str, Any]) -> dict[str, Any]:
    """OBWriteDomestic2: the same Initiation and Risk as the consent, or the ASPSP refuses it."""
    return {"Data": {"ConsentId": consent_id, "Initiation": initiation_}, "Risk": risk}


def _data(body: Any) -> dict[str, Any]:
    data = body.get("Data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ProviderBadResponse(f"{PROVIDER} answered without Data")
    return data


def created_consent(body: Any) -> tuple[str, str]:
    data = _data(body)
    consent_id, status = data.get("ConsentId"), data.get("Status")
    if not isinstance(consent_id, str) or not isinstance(status, str):
        raise ProviderBadResponse(f"{PROVIDER} created a payment consent without ConsentId or Status")
    return consent_id, status


def consent_status(body: Any) -> str:
    status = _data(body).get("Status")
    if status not in (*CONSENT_STATUSES, CONSUMED):
        raise ProviderBadResponse(f"{PROVIDER} reported an unknown payment-consent status {status!r}")
    return str(status)


def payment(body: Any) -> tuple[str, str, PaymentStatus]:
    """(DomesticPaymentId, OB status, canonical status) of an OBWriteDomesticResponse3."""
    data = _data(body)
    payment_id, status = data.get("DomesticPaymentId"), data.get("Status")
    if not isinstance(payment_id, str) or not isinstance(status, str) or status not in PAYMENT_STATUSES:
        raise ProviderBadResponse(f"{PROVIDER} answered a payment without DomesticPaymentId or a known Status")
    return payment_id, str(status), PAYMENT_STATUSES[str(status)]


def funds_available(body: Any) -> bool:
    result = _data(body).get("FundsAvailableResult")
    if not isinstance(result, dict) or not isinstance(result.get("FundsAvailable"), bool):
        raise ProviderBadResponse(f"{PROVIDER} answered a funds confirmation without FundsAvailable")
    return bool(result["FundsAvailable"])
