"""PIS: credit-transfer consents of the three types, the transfer that redeems an approved SCA, payment status, raw
consents. The swagger's schema check has run before these handlers; they add the banks' own rules."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from adapters.ob_connect.sandbox_ais import aspsps, bank, granted_consent, health, redirect_target
from adapters.ob_connect.sandbox_data import DOMESTIC, IBAN, PAYMENT_TYPES, SEPA, Account
from adapters.ob_connect.sandbox_http import SANDBOX, answer, bad_request, body_of
from adapters.ob_connect.sandbox_world import PaymentConsent

_DIGITS8, _DIGITS6, _NRB = re.compile(r"\d{8}\Z"), re.compile(r"\d{6}\Z"), re.compile(r"(PL)?\d{26}\Z")


def _invalid(description: str, source: str) -> Exception:
    return bad_request("INVALID_PAYMENT", description, source=source)


async def _payment_bank(request: web.Request, kind: str) -> Any:
    sandbox = request.app[SANDBOX]
    aspsp = await bank(sandbox, body_of(request), "PIS")
    if kind not in aspsp.payment_types:
        raise bad_request("SERVICE_NOT_SUPPORTED", f"{aspsp.name} does not offer {kind} credit transfers",
                          source="requestInfo.aspspId")
    return aspsp


def _kind(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind not in PAYMENT_TYPES:
        raise web.HTTPNotFound()
    return kind


async def create_consent(request: web.Request) -> web.Response:
    kind = _kind(request)
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await _payment_bank(request, kind)
    payment = body["payments"]
    for field in ("schedule", "requestedExecutionDate"):
        if field in payment:
            raise bad_request("SERVICE_NOT_SUPPORTED", "only single immediate payments are offered",
                              source=f"payments.{field}")
    amount = Decimal(str(payment["instructedAmount"]["amount"]))
    if amount != amount.quantize(Decimal("0.01")):
        raise _invalid("the amount has more than 2 decimals", "payments.instructedAmount.amount")
    own = sandbox.data.by_bank[aspsp.id]
    if kind == DOMESTIC:
        _check_domestic(aspsp.country, payment)
    debtor = _debtor(kind, payment, own)
    if debtor == "":
        raise _invalid("the PSU holds no such account at this ASPSP", "payments.debtorAccount")
    consent = sandbox.world.new_payment_consent(
        aspsp_id=aspsp.id, type=kind, payments=payment, tpp_redirect_uri=body["requestInfo"]["tppRedirectURI"],
        debtor_account_id=debtor)
    out: dict[str, Any] = {"consentRequestId": consent.consent_request_id, "aspspSCAApproach": "REDIRECT",
                           "_links": {"scaRedirect": redirect_target(sandbox, consent.ticket)}}
    if "Return.Raw.Consent" in (body["requestInfo"].get("flags") or []):
        out["additionalData"] = {"rawConsent": raw(consent)}
    return answer(request, out)


def _check_domestic(country: str, payment: dict[str, Any]) -> None:
    creditor = payment["creditorAccount"]
    currency = payment["instructedAmount"]["currency"]
    if country == "GB":
        if payment["localInstrument"] != "UK.FasterPayments" or currency != "GBP":
            raise _invalid("domestic payments at this ASPSP are UK.FasterPayments in GBP", "payments.localInstrument")
        if creditor.get("schemeName", "UK.AccountNumber") != "UK.AccountNumber":
            raise _invalid("schemeName must be UK.AccountNumber", "payments.creditorAccount.schemeName")
        if not _DIGITS8.match(creditor["identification"]):
            raise _invalid("a UK account number has 8 digits", "payments.creditorAccount.identification")
        agent = payment.get("creditorAgent")
        if not agent:
            raise _invalid("creditorAgent (UK.SortCode) is required", "payments.creditorAgent")
        if not _DIGITS6.match(agent["memberIdentification"]):
            raise _invalid("a sort code has 6 digits", "payments.creditorAgent.memberIdentification")
    else:  # PL
        if payment["localInstrument"] != "PL.Elixir" or currency != "PLN":
            raise _invalid("domestic payments at this ASPSP are PL.Elixir in PLN", "payments.localInstrument")
        if creditor.get("schemeName", "PL.AccountNumber") != "PL.AccountNumber":
            raise _invalid("schemeName must be PL.AccountNumber", "payments.creditorAccount.schemeName")
        if not _NRB.match(creditor["identification"]):
            raise _invalid("a Polish account number (NRB) has 26 digits", "payments.creditorAccount.identification")


def _debtor(kind: str, payment: dict[str, Any], own: list[Account]) -> str | None:
    """The named debtor account's resource id, None when none is named, "" when the PSU holds no such account."""
    named = payment.get("debtorAccount")
    if not named:
        return None
    if kind == SEPA:
        wanted = [a for a in own if a.scheme == IBAN and a.number == named["iban"]]
    elif kind == DOMESTIC:
        ident = named["identification"]
        wanted = [a for a in own if a.domestic_number() == (ident[2:] if ident.startswith("PL") else ident)]
    else:
        wanted = [a for a in own if a.scheme == named["schemeName"] and a.number == named["identification"]]
    return wanted[0].resource_id if wanted else ""


async def transfer(request: web.Request) -> web.Response:
    kind = _kind(request)
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await _payment_bank(request, kind)
    consent: PaymentConsent = granted_consent(sandbox, body["requestInfo"]["authorization"], kind, aspsp.id)
    payment = sandbox.world.payments.get(consent.payment_id or "")
    if payment is None:  # one payment per consent, whatever number of times its authorization is presented
        rejected = aspsp.rejects_payments or sandbox.reject_payments
        payment = sandbox.world.new_payment(consent, sandbox.payment_timeline, rejected)
    status, reason = payment.status()
    transfer_json: dict[str, Any] = {"paymentId": payment.payment_id, "transactionStatus": status}
    if reason:
        transfer_json["statusReasonCode"] = reason
    return answer(request, {"consent": {"consentId": consent.consent_id,
                                        "consentRequestId": consent.consent_request_id},
                            "transfer": transfer_json})


async def payment_status(request: web.Request) -> web.Response:
    kind = _kind(request)
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await _payment_bank(request, kind)
    consent = sandbox.world.pis_by_consent_id.get(body["requestInfo"]["consentId"])
    if consent is None or consent.aspsp_id != aspsp.id or consent.type != kind:
        raise bad_request("CONSENT_NOT_FOUND", f"no {kind} payment consent with this id at this ASPSP",
                          source="requestInfo.consentId")
    if consent.payment_id is None or consent.payment_id != body["paymentId"]:
        raise bad_request("PAYMENT_NOT_FOUND", "no payment with this id under the consent", source="paymentId")
    status, reason = sandbox.world.payments[consent.payment_id].status()
    out: dict[str, Any] = {"transactionStatus": status}
    if reason:
        out["statusReasonCode"] = reason
    return answer(request, {"payments": out})


async def raw_consent(request: web.Request) -> web.Response:
    sandbox = request.app[SANDBOX]
    body = body_of(request)
    aspsp = await bank(sandbox, body, "PIS")
    wanted = body["requestInfo"]["consentId"]
    consent = sandbox.world.pis_by_consent_id.get(wanted) or sandbox.world.payment_consents.get(wanted)
    if consent is None or consent.aspsp_id != aspsp.id:
        raise bad_request("CONSENT_NOT_FOUND", "no payment consent with this id at this ASPSP",
                          source="requestInfo.consentId")
    return answer(request, {"rawConsent": raw(consent)})


def raw(consent: PaymentConsent) -> str:
    return orjson.dumps({"consentId": consent.consent_id, "consentRequestId": consent.consent_request_id,
                         "type": consent.type, "status": consent.status, "payments": consent.payments},
                        default=float).decode()


ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/payments/health", health),
    ("POST", "/payments/aspsps", aspsps),
    ("POST", "/payments/consents/raw", raw_consent),
    ("POST", "/payments/{kind}-credit-transfers/consents", create_consent),
    ("POST", "/payments/{kind}-credit-transfers", transfer),
    ("POST", "/payments/{kind}-credit-transfers/payment-status", payment_status),
]
