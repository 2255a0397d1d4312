"""adapters.stripe_uk.translate_pis: canonical payment orders into OB v3.1.2 domestic payment bodies, Stripe's
reference rules, and the bank's answers (consents, payments, funds) into canonical statuses."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import orjson
import pytest

from adapters.base import PaymentInput
from adapters.stripe_uk import translate_pis as pis
from gateway.errors import ProviderBadResponse, ValidationFailed
from gateway.models.payments import Creditor, PaymentAccount, PaymentStatus

S = PaymentStatus
SORT_CODE = PaymentAccount(scheme="uk_sort_code", sort_code="040004", account_number="12345678")
WALLET = PaymentAccount(scheme="wallet", wallet_id="acct_1Nv0FGQ9RKHgCVdK")
OB_AMOUNT = re.compile(r"^\d{1,13}\.\d{1,5}$")  # OBActiveCurrencyAndAmount_SimpleType in upstream-pis-openapi.yaml


def _input(**over: Any) -> PaymentInput:
    fields: dict[str, Any] = dict(
        type="domestic", amount=Decimal("10.50"), currency="GBP", creditor=Creditor("Acme Ltd", SORT_CODE),
        reference="INV-123456", end_to_end_id="E2E-0001", instruction_id="INSTR-0001",
        redirect_uri="https://app.example.com/cb")
    fields.update(over)
    return PaymentInput(**fields)


def _refusal(data: PaymentInput) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        pis.check_payment(data)
    return caught.value.errors


# --- check_payment ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", ["INV-123456", "ABC123", "Order 2024-05 ref ABCDEF", "a" * 5 + "b",
                                       "xy" * 17 + "z", "123456", "AB-CDEFGH-12"])
def test_check_payment_accepts(reference):
    assert pis.check_payment(_input(reference=reference)) is None


@pytest.mark.parametrize("reference", ["AB-12-CD", "ABCDE", "INV 12345", "ab.cd.ef.gh", "12345-67890"])
def test_check_payment_needs_six_alphanumerics_in_a_row(reference):
    errors = _refusal(_input(reference=reference))
    assert errors == [{"location": "body", "field": "reference",
                       "message": "stripe-uk needs at least 6 letters or digits in a row"}]


@pytest.mark.parametrize("reference", ["AAAAAA", "aAaAaA", "111111", "AAAAAA-AAAA"])
def test_check_payment_refuses_one_repeated_character(reference):
    errors = _refusal(_input(reference=reference))
    assert errors == [{"location": "body", "field": "reference",
                       "message": "stripe-uk refuses a reference of one repeated character"}]


def test_check_payment_separated_repeats_break_both_rules():
    errors = _refusal(_input(reference="a-a-a-a-a-a"))
    assert [e["field"] for e in errors] == ["reference", "reference"]
    assert "6 letters or digits in a row" in errors[0]["message"]
    assert "one repeated character" in errors[1]["message"]


def test_check_payment_reference_length_limit():
    assert pis.check_payment(_input(reference="R" + "1234567890" * 3 + "ABCD")) is None  # 35
    errors = _refusal(_input(reference="R" + "1234567890" * 3 + "ABCDE"))  # 36
    assert errors == [{"location": "body", "field": "reference",
                       "message": "at most 35 characters (RemittanceInformation.Reference)"}]


def test_check_payment_names_every_problem():
    data = _input(reference="-" * 36, creditor=Creditor("Shop", PaymentAccount(scheme="wallet", wallet_id="acc_1")))
    with pytest.raises(ValidationFailed) as caught:
        pis.check_payment(data)
    assert [e["field"] for e in caught.value.errors] == ["reference", "reference", "creditor.account.wallet_id"]
    assert caught.value.detail.startswith("reference: at most 35 characters")
    assert caught.value.status == 422


@pytest.mark.parametrize("wallet_id", ["acct_1", "acct_1Nv0FGQ9RKHgCVdK", "acct_" + "a" * 59])
def test_check_payment_accepts_stripe_account_ids(wallet_id):
    pis.check_payment(_input(creditor=Creditor("Shop", PaymentAccount(scheme="wallet", wallet_id=wallet_id))))


@pytest.mark.parametrize("wallet_id", ["acct_", "acc_123", "ACCT_123", "cus_123", "acct_12_3", "acct_" + "a" * 60,
                                       "xacct_123", "acct_123\n"])
def test_check_payment_refuses_other_wallet_ids(wallet_id):
    errors = _refusal(_input(creditor=Creditor("Shop", PaymentAccount(scheme="wallet", wallet_id=wallet_id))))
    assert errors == [{"location": "body", "field": "creditor.account.wallet_id",
                       "message": "a Stripe wallet is a Stripe account id (acct_…)"}]


def test_check_payment_wallet_without_id_is_refused():
    errors = _refusal(_input(creditor=Creditor("Shop", PaymentAccount(scheme="wallet"))))
    assert [e["field"] for e in errors] == ["creditor.account.wallet_id"]


# --- ob_account ------------------------------------------------------------------------------------------------
def test_ob_account_sort_code():
    assert pis.ob_account(SORT_CODE, "Acme Ltd") == {
        "SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "04000412345678", "Name": "Acme Ltd"}


def test_ob_account_sort_code_with_secondary_identification():
    account = PaymentAccount(scheme="uk_sort_code", sort_code="202020", account_number="87654321",
                             secondary_identification="ROLL-0001")
    assert pis.ob_account(account, "Building Society Saver") == {
        "SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "20202087654321",
        "Name": "Building Society Saver", "SecondaryIdentification": "ROLL-0001"}


def test_ob_account_without_name_has_no_name_key():
    assert pis.ob_account(SORT_CODE) == {"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                         "Identification": "04000412345678"}


def test_ob_account_wallet():
    assert pis.ob_account(WALLET, "Shop") == {"SchemeName": "UK.OBIE.Wallet", "Identification": "acct_1Nv0FGQ9RKHgCVdK",
                                              "Name": "Shop"}


def test_ob_account_iban():
    account = PaymentAccount(scheme="iban", iban="GB82WEST12345698765432")
    assert pis.ob_account(account) == {"SchemeName": "UK.OBIE.IBAN", "Identification": "GB82WEST12345698765432"}


# --- initiation / consent / payment bodies ---------------------------------------------------------------------
INITIATION = {
    "InstructionIdentification": "INSTR-0001",
    "EndToEndIdentification": "E2E-0001",
    "InstructedAmount": {"Amount": "10.50", "Currency": "GBP"},
    "CreditorAccount": {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "04000412345678",
                        "Name": "Acme Ltd"},
    "RemittanceInformation": {"Reference": "INV-123456"},
}


def test_initiation_exact():
    assert pis.initiation(_input()) == INITIATION


def test_initiation_amount_is_text_never_a_float():
    amount = pis.initiation(_input())["InstructedAmount"]["Amount"]
    assert amount == "10.50" and isinstance(amount, str)
    assert b'"Amount":"10.50"' in orjson.dumps(pis.initiation(_input()))


@pytest.mark.parametrize(("amount", "text"), [
    (Decimal("10.5"), "10.50"), (Decimal("0.01"), "0.01"), (Decimal("9999999999999.99"), "9999999999999.99"),
    (Decimal("1.00"), "1.00"), (Decimal("1.0E+2"), "100.00"),
])
def test_initiation_amount_text(amount, text):
    got = pis.initiation(_input(amount=amount))["InstructedAmount"]["Amount"]
    assert got == text and isinstance(got, str)
    assert "E" not in got and "e" not in got


@pytest.mark.parametrize("amount", [Decimal("10"), Decimal("1E+3")])
def test_initiation_whole_amount_matches_the_ob_amount_pattern(amount):
    assert OB_AMOUNT.fullmatch(pis.initiation(_input(amount=amount))["InstructedAmount"]["Amount"])


@pytest.mark.parametrize("amount", [Decimal("10.50"), Decimal("10.5"), Decimal("0.01")])
def test_initiation_fractional_amount_matches_the_ob_amount_pattern(amount):
    assert OB_AMOUNT.fullmatch(pis.initiation(_input(amount=amount))["InstructedAmount"]["Amount"])


def test_initiation_with_debtor_account_has_no_debtor_name():
    debtor = PaymentAccount(scheme="uk_sort_code", sort_code="202020", account_number="87654321")
    body = pis.initiation(_input(debtor_account=debtor))
    assert body["DebtorAccount"] == {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "20202087654321"}
    assert {k: v for k, v in body.items() if k != "DebtorAccount"} == INITIATION


def test_initiation_without_debtor_account_omits_the_key():
    assert "DebtorAccount" not in pis.initiation(_input())


def test_initiation_to_a_wallet():
    body = pis.initiation(_input(creditor=Creditor("Shop", WALLET)))
    assert body["CreditorAccount"] == {"SchemeName": "UK.OBIE.Wallet", "Identification": "acct_1Nv0FGQ9RKHgCVdK",
                                       "Name": "Shop"}


def test_initiation_does_not_leak_canonical_only_fields():
    body = pis.initiation(_input(idempotency_key="k" * 40))
    assert set(body) == {"InstructionIdentification", "EndToEndIdentification", "InstructedAmount",
                         "CreditorAccount", "RemittanceInformation"}
    assert "k" * 40 not in orjson.dumps(body).decode()


def test_consent_body_exact():
    assert pis.consent_body(_input()) == {"Data": {"Initiation": INITIATION}, "Risk": {}}


def test_payment_body_carries_the_consents_initiation_and_risk_unchanged():
    initiation = pis.initiation(_input())
    risk = {"PaymentContextCode": "EcommerceGoods"}
    body = pis.payment_body("pcon-58923", initiation, risk)
    assert body == {"Data": {"ConsentId": "pcon-58923", "Initiation": INITIATION},
                    "Risk": {"PaymentContextCode": "EcommerceGoods"}}
    assert body["Data"]["Initiation"] is initiation and body["Risk"] is risk


def test_consent_and_payment_bodies_agree_byte_for_byte():
    consent = pis.consent_body(_input())
    payment = pis.payment_body("pcon-1", consent["Data"]["Initiation"], consent["Risk"])
    assert orjson.dumps(payment["Data"]["Initiation"]) == orjson.dumps(consent["Data"]["Initiation"])
    assert payment["Risk"] == consent["Risk"] == {}


# --- status tables ---------------------------------------------------------------------------------------------
def test_payment_status_table_is_exactly_the_ob_enum():
    assert pis.PAYMENT_STATUSES == {
        "Pending": S.SUBMITTED,
        "AcceptedSettlementInProcess": S.PENDING,
        "AcceptedWithoutPosting": S.PENDING,
        "AcceptedSettlementCompleted": S.COMPLETED,
        "AcceptedCreditSettlementCompleted": S.COMPLETED,
        "Rejected": S.REJECTED,
    }


def test_consent_status_table_is_exactly_the_ob_enum():
    assert pis.CONSENT_STATUSES == {"AwaitingAuthorisation": S.AWAITING_AUTHORISATION, "Authorised": S.AUTHORISED,
                                    "Rejected": S.REJECTED}
    assert pis.CONSUMED == "Consumed"
    assert pis.CONSUMED not in pis.CONSENT_STATUSES  # consumed is resolved by asking for the payment


def test_scheme_names():
    assert pis.SCHEMES == {"uk_sort_code": "UK.OBIE.SortCodeAccountNumber", "wallet": "UK.OBIE.Wallet",
                           "iban": "UK.OBIE.IBAN"}


# --- reading answers -------------------------------------------------------------------------------------------
def test_created_consent():
    body = {"Data": {"ConsentId": "pcon-58923", "Status": "AwaitingAuthorisation", "Initiation": INITIATION},
            "Risk": {}, "Links": {"Self": "https://x"}, "Meta": {}}
    assert pis.created_consent(body) == ("pcon-58923", "AwaitingAuthorisation")


@pytest.mark.parametrize("body", [
    None, [], "Data", {}, {"Data": None}, {"Data": []}, {"Data": "x"},
    {"Data": {"Status": "AwaitingAuthorisation"}},
    {"Data": {"ConsentId": "pcon-1"}},
    {"Data": {"ConsentId": 123, "Status": "AwaitingAuthorisation"}},
    {"Data": {"ConsentId": "pcon-1", "Status": None}},
])
def test_created_consent_malformed(body):
    with pytest.raises(ProviderBadResponse) as caught:
        pis.created_consent(body)
    assert caught.value.code == "provider_bad_response"
    assert caught.value.status == 502


@pytest.mark.parametrize("status", ["AwaitingAuthorisation", "Authorised", "Rejected", "Consumed"])
def test_consent_status_known(status):
    assert pis.consent_status({"Data": {"ConsentId": "pcon-1", "Status": status}}) == status


@pytest.mark.parametrize("status", ["Revoked", "authorised", "", None, 1, ["Authorised"], {"a": 1}])
def test_consent_status_unknown_is_a_bad_response(status):
    with pytest.raises(ProviderBadResponse, match="unknown payment-consent status"):
        pis.consent_status({"Data": {"Status": status}})


@pytest.mark.parametrize("body", [None, {}, {"Data": None}, {"data": {"Status": "Authorised"}}])
def test_consent_status_without_data(body):
    with pytest.raises(ProviderBadResponse, match="without Data"):
        pis.consent_status(body)


@pytest.mark.parametrize(("ob", "canonical"), list(pis.PAYMENT_STATUSES.items()))
def test_payment_every_ob_status(ob, canonical):
    body = {"Data": {"DomesticPaymentId": "pmt-7", "ConsentId": "pcon-1", "Status": ob}}
    got = pis.payment(body)
    assert got == ("pmt-7", ob, canonical)
    assert got[2] is canonical


@pytest.mark.parametrize("body", [
    {"Data": {"DomesticPaymentId": "pmt-7", "Status": "Settled"}},
    {"Data": {"DomesticPaymentId": "pmt-7", "Status": "pending"}},
    {"Data": {"DomesticPaymentId": "pmt-7", "Status": "AwaitingAuthorisation"}},  # a consent status, not a payment's
    {"Data": {"DomesticPaymentId": "pmt-7", "Status": "Consumed"}},
    {"Data": {"DomesticPaymentId": "pmt-7"}},
    {"Data": {"DomesticPaymentId": "pmt-7", "Status": None}},
    {"Data": {"Status": "Pending"}},
    {"Data": {"DomesticPaymentId": 7, "Status": "Pending"}},
    {"Data": {"DomesticPaymentId": None, "Status": "Pending"}},
    {"Data": None}, {}, None, "oops",
])
def test_payment_malformed_or_unknown_status_is_a_bad_response(body):
    with pytest.raises(ProviderBadResponse):
        pis.payment(body)


@pytest.mark.parametrize("status", [["Pending"], {"Code": "Pending"}])
def test_payment_unhashable_status_is_a_bad_response(status):
    with pytest.raises(ProviderBadResponse):
        pis.payment({"Data": {"DomesticPaymentId": "pmt-7", "Status": status}})


@pytest.mark.parametrize("available", [True, False])
def test_funds_available(available):
    body = {"Data": {"FundsAvailableResult": {"FundsAvailableDateTime": "2024-05-01T10:00:00+00:00",
                                              "FundsAvailable": available}}, "Links": {}, "Meta": {}}
    assert pis.funds_available(body) is available


@pytest.mark.parametrize("body", [
    {"Data": {}},
    {"Data": {"FundsAvailableResult": None}},
    {"Data": {"FundsAvailableResult": True}},
    {"Data": {"FundsAvailableResult": {}}},
    {"Data": {"FundsAvailableResult": {"FundsAvailable": "true"}}},
    {"Data": {"FundsAvailableResult": {"FundsAvailable": 1}}},
    {"Data": {"FundsAvailableResult": {"FundsAvailable": None}}},
    {"Data": {"FundsAvailable": True}},
    {"Data": None}, None,
])
def test_funds_available_malformed(body):
    with pytest.raises(ProviderBadResponse):
        pis.funds_available(body)
