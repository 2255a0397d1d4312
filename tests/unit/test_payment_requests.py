"""gateway.validation.payments through gateway.validation.body.structure: the canonical payment order, every problem
named by its exact field path, and ISO 13616 IBAN check digits."""
from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any, Callable

import pytest

from gateway.errors import ValidationFailed
from gateway.models.payments import PaymentAccount
from gateway.validation.body import structure
from gateway.validation.payments import CompletePaymentRequest, CreatePaymentRequest, iban_valid

BODY: dict[str, Any] = {
    "type": "domestic",
    "amount": {"amount": "10.50", "currency": "GBP"},
    "creditor": {"name": "Acme Ltd", "account": {"scheme": "uk_sort_code", "sort_code": "04-00-04",
                                                 "account_number": "12345678"}},
    "reference": "INV-123456",
    "redirect_uri": "https://app.example.com/cb",
}


def _body(change: Callable[[dict[str, Any]], Any] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    if change is not None:
        change(body)
    return body


def _errors(body: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as caught:
        structure(body, CreatePaymentRequest)
    assert caught.value.status == 422 and caught.value.code == "validation_failed"
    return caught.value.errors


def _one_error(body: Any) -> tuple[str, str]:
    errors = _errors(body)
    assert len(errors) == 1, errors
    assert errors[0]["location"] == "body"
    return errors[0]["field"], errors[0]["message"]


def _account(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda b: b["creditor"].__setitem__("account", fields)


# --- accepted --------------------------------------------------------------------------------------------------
def test_a_valid_body_is_accepted_and_normalised():
    order = structure(_body(), CreatePaymentRequest)
    assert order.type == "domestic"
    assert order.amount.amount == "10.50" and order.amount.currency == "GBP"
    assert order.amount.value == Decimal("10.50") and isinstance(order.amount.value, Decimal)
    assert order.creditor.name == "Acme Ltd"
    assert order.creditor.account.sort_code == "040004"  # dashes removed
    assert order.creditor.account.account_number == "12345678"
    assert (order.provider, order.region, order.debtor_account, order.end_to_end_id, order.customer_id) == (
        None, None, None, None, None)


def test_the_amount_value_keeps_its_precision():
    order = structure(_body(lambda b: b["amount"].update(amount="10.5")), CreatePaymentRequest)
    assert order.amount.value == Decimal("10.5")
    assert str(order.amount.value) == "10.5"


def test_sort_code_without_dashes_is_kept():
    order = structure(_body(lambda b: b["creditor"]["account"].update(sort_code="040004")), CreatePaymentRequest)
    assert order.creditor.account.sort_code == "040004"


def test_iban_spaces_removed_and_upper_cased():
    order = structure(_body(_account(scheme="iban", iban="gb82 west 1234 5698 7654 32", bic="NWBKGB2L")),
                      CreatePaymentRequest)
    assert order.creditor.account.iban == "GB82WEST12345698765432"
    assert order.creditor.account.to_account() == PaymentAccount(scheme="iban", iban="GB82WEST12345698765432",
                                                                 bic="NWBKGB2L")


def test_to_account_carries_every_field():
    order = structure(_body(lambda b: b["creditor"]["account"].update(secondary_identification="ROLL-1")),
                      CreatePaymentRequest)
    assert order.creditor.account.to_account() == PaymentAccount(
        scheme="uk_sort_code", sort_code="040004", account_number="12345678", secondary_identification="ROLL-1")


def test_every_optional_field_accepted():
    def change(b: dict[str, Any]) -> None:
        b.update(provider="stripe-uk", region="GB", end_to_end_id="E2E/2024-05:01 (a.b,'c'+d)?", customer_id="cus_1234",
                 debtor_account={"scheme": "uk_sort_code", "sort_code": "20-20-20", "account_number": "87654321"})
    order = structure(_body(change), CreatePaymentRequest)
    assert order.end_to_end_id == "E2E/2024-05:01 (a.b,'c'+d)?"
    assert order.debtor_account.sort_code == "202020"
    assert order.customer_id == "cus_1234"


@pytest.mark.parametrize("account", [
    {"scheme": "wallet", "wallet_id": "acct_1Nv0FGQ9RKHgCVdK"},
    {"scheme": "iban", "iban": "DE89370400440532013000"},
    {"scheme": "iban", "iban": "DE89 3704 0044 0532 0130 00", "bic": "COBADEFFXXX"},
])
def test_other_schemes_accepted(account):
    structure(_body(_account(**account)), CreatePaymentRequest)


@pytest.mark.parametrize("payment_type", ["domestic", "sepa", "international"])
def test_every_payment_type_accepted(payment_type):
    assert structure(_body(lambda b: b.update(type=payment_type)), CreatePaymentRequest).type == payment_type


@pytest.mark.parametrize(("amount", "currency"), [
    ("0.01", "GBP"), ("10", "GBP"), ("10.5", "GBP"), ("9999999999999.99", "GBP"), ("100", "JPY"),
    ("1.234", "BHD"), ("1.5", "KWD"),
])
def test_amounts_accepted(amount, currency):
    order = structure(_body(lambda b: b.update(amount={"amount": amount, "currency": currency})), CreatePaymentRequest)
    assert order.amount.value == Decimal(amount)


@pytest.mark.parametrize("uri", ["https://app.example.com/cb?x=1", "http://localhost:8080/cb", "http://127.0.0.1/cb"])
def test_redirect_uris_accepted(uri):
    structure(_body(lambda b: b.update(redirect_uri=uri)), CreatePaymentRequest)


def test_reference_limits_accepted():
    structure(_body(lambda b: b.update(reference="R")), CreatePaymentRequest)
    structure(_body(lambda b: b.update(reference="R" * 140)), CreatePaymentRequest)


# --- amount ----------------------------------------------------------------------------------------------------
def test_more_decimals_than_the_currency_has():
    field, message = _one_error(_body(lambda b: b["amount"].update(amount="10.555")))
    assert field == "amount.amount"
    assert message == "GBP has 2 decimal places; 10.555 has 3"


@pytest.mark.parametrize("amount", ["100.5", "100.0", "0.1"])
def test_jpy_with_decimals_refused(amount):
    field, message = _one_error(_body(lambda b: b.update(amount={"amount": amount, "currency": "JPY"})))
    assert field == "amount.amount"
    assert message.startswith("JPY has 0 decimal places")


def test_bhd_has_three_decimal_places():
    field, message = _one_error(_body(lambda b: b.update(amount={"amount": "1.2345", "currency": "BHD"})))
    assert (field, message) == ("amount.amount", "BHD has 3 decimal places; 1.2345 has 4")


@pytest.mark.parametrize("amount", ["0", "0.00", "-1", "-0.01", "-0"])
def test_zero_or_negative_refused(amount):
    field, message = _one_error(_body(lambda b: b["amount"].update(amount=amount)))
    assert (field, message) == ("amount.amount", "must be greater than zero")


@pytest.mark.parametrize("amount", ["1e3", "1E3", " 1", "1 ", "", "NaN", "Infinity", "1,000.00", "10.5.0", "£10",
                                    "0x10", "١٠"])
def test_malformed_amount_text_refused(amount):
    field, message = _one_error(_body(lambda b: b["amount"].update(amount=amount)))
    assert field == "amount.amount"
    assert "decimal string" in message


@pytest.mark.parametrize("amount", [10.5, 10, None, True])
def test_a_json_number_is_not_an_amount(amount):
    field, _ = _one_error(_body(lambda b: b["amount"].update(amount=amount)))
    assert field == "amount.amount"


def test_too_large_amount_refused():
    field, message = _one_error(_body(lambda b: b["amount"].update(amount="10000000000000.00")))
    assert field == "amount.amount"
    assert "too large" in message and "13 integer digits" in message


@pytest.mark.parametrize("currency", ["gbp", "GB", "GBPX", "", "G1P", " GBP"])
def test_currency_not_iso_4217_refused(currency):
    field, message = _one_error(_body(lambda b: b["amount"].update(currency=currency)))
    assert (field, message) == ("amount.currency", "must be an ISO 4217 code such as GBP")


def test_amount_missing():
    assert _one_error(_body(lambda b: b.pop("amount"))) == ("amount", "required field missing")
    assert _one_error(_body(lambda b: b["amount"].pop("currency"))) == ("amount.currency", "required field missing")


# --- accounts --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("iban", ["GB83WEST12345698765432", "GB82WEST12345698765433", "DE88370400440532013000"])
def test_iban_with_a_bad_check_digit_refused(iban):
    field, message = _one_error(_body(_account(scheme="iban", iban=iban)))
    assert field == "creditor.account.iban"
    assert message == "is not a valid IBAN (format or check digits)"


@pytest.mark.parametrize("iban", ["GB82", "GB82WEST", "82GBWEST12345698765432", "GB82WEST1234569876543212345678901234",
                                  "GB82-WEST-1234-5698-7654-32", "", "GBXXWEST12345698765432"])
def test_iban_of_a_bad_format_refused(iban):
    field, _ = _one_error(_body(_account(scheme="iban", iban=iban)))
    assert field == "creditor.account.iban"


@pytest.mark.parametrize("sort_code", ["04000", "0400045", "04-00-0A", "04 00 04", "", "ab-cd-ef"])
def test_bad_sort_code_refused(sort_code):
    field, message = _one_error(_body(lambda b: b["creditor"]["account"].update(sort_code=sort_code)))
    assert field == "creditor.account.sort_code"
    assert message == "must be 6 digits (dashes allowed: 04-00-04)"


@pytest.mark.parametrize("number", ["1234567", "123456789", "1234567A", "1234-5678", ""])
def test_bad_account_number_refused(number):
    field, message = _one_error(_body(lambda b: b["creditor"]["account"].update(account_number=number)))
    assert (field, message) == ("creditor.account.account_number", "must be 8 digits")


@pytest.mark.parametrize("wallet_id", ["acct-1", "", "a" * 65, "acct 1", "acct_1!"])
def test_bad_wallet_id_refused(wallet_id):
    field, message = _one_error(_body(_account(scheme="wallet", wallet_id=wallet_id)))
    assert (field, message) == ("creditor.account.wallet_id", "must be 1 to 64 letters, digits or underscores")


@pytest.mark.parametrize("bic", ["NWBKGB", "NWBKGB2LX", "nwbkgb2l", "1WBKGB2L"])
def test_bad_bic_refused(bic):
    field, message = _one_error(_body(_account(scheme="iban", iban="GB82WEST12345698765432", bic=bic)))
    assert (field, message) == ("creditor.account.bic", "must be a BIC of 8 or 11 characters")


@pytest.mark.parametrize(("account", "field", "scheme"), [
    ({"scheme": "uk_sort_code", "sort_code": "040004", "account_number": "12345678", "iban": "GB82WEST12345698765432"},
     "iban", "uk_sort_code"),
    ({"scheme": "uk_sort_code", "sort_code": "040004", "account_number": "12345678", "wallet_id": "acct_1"},
     "wallet_id", "uk_sort_code"),
    ({"scheme": "uk_sort_code", "sort_code": "040004", "account_number": "12345678", "bic": "NWBKGB2L"},
     "bic", "uk_sort_code"),
    ({"scheme": "iban", "iban": "GB82WEST12345698765432", "sort_code": "040004"}, "sort_code", "iban"),
    ({"scheme": "iban", "iban": "GB82WEST12345698765432", "secondary_identification": "R1"},
     "secondary_identification", "iban"),
    ({"scheme": "wallet", "wallet_id": "acct_1", "account_number": "12345678"}, "account_number", "wallet"),
])
def test_fields_of_another_scheme_refused(account, field, scheme):
    got_field, message = _one_error(_body(_account(**account)))
    assert got_field == f"creditor.account.{field}"
    assert message == f"not used by scheme {scheme}"


@pytest.mark.parametrize(("account", "field"), [
    ({"scheme": "uk_sort_code", "account_number": "12345678"}, "sort_code"),
    ({"scheme": "uk_sort_code", "sort_code": "040004"}, "account_number"),
    ({"scheme": "iban", "bic": "NWBKGB2L"}, "iban"),
    ({"scheme": "wallet"}, "wallet_id"),
])
def test_fields_a_scheme_needs(account, field):
    got_field, message = _one_error(_body(_account(**account)))
    assert got_field == f"creditor.account.{field}"
    assert message == f"required for scheme {account['scheme']}"


@pytest.mark.parametrize("scheme", ["bacs", "IBAN", "", "sort_code"])
def test_unknown_scheme_refused(scheme):
    field, message = _one_error(_body(_account(scheme=scheme, iban="GB82WEST12345698765432")))
    assert field == "creditor.account.scheme"
    assert message == "must be one of uk_sort_code, iban, wallet"


def test_secondary_identification_limits():
    field, message = _one_error(_body(lambda b: b["creditor"]["account"].update(secondary_identification="R" * 35)))
    assert field == "creditor.account.secondary_identification"
    assert "1 to 34 characters" in message


def test_debtor_account_errors_name_the_debtor_path():
    body = _body(lambda b: b.update(debtor_account={"scheme": "uk_sort_code", "sort_code": "20-20-2",
                                                    "account_number": "87654321"}))
    assert _one_error(body)[0] == "debtor_account.sort_code"


# --- other fields ----------------------------------------------------------------------------------------------
def test_unknown_top_level_field_refused():
    field, message = _one_error(_body(lambda b: b.update(amount_minor=1050)))
    assert (field, message) == ("$", "unknown field(s): amount_minor")


def test_unknown_nested_field_refused():
    field, message = _one_error(_body(lambda b: b["creditor"]["account"].update(iban_country="GB")))
    assert (field, message) == ("creditor.account", "unknown field(s): iban_country")


def test_unknown_field_in_amount_refused():
    assert _one_error(_body(lambda b: b["amount"].update(minor=True))) == ("amount", "unknown field(s): minor")


@pytest.mark.parametrize("payment_type", ["SEPA", "Domestic", "instant", "", "bacs"])
def test_type_outside_the_three_refused(payment_type):
    field, message = _one_error(_body(lambda b: b.update(type=payment_type)))
    assert (field, message) == ("type", "must be one of domestic, sepa, international")


@pytest.mark.parametrize(("uri", "fragment"), [
    ("http://app.example.com/cb", "must use https"),
    ("ftp://app.example.com/cb", "absolute http(s) URL"),
    ("/cb", "absolute http(s) URL"),
    ("https://app.example.com/cb#frag", "fragment"),
    ("https://app.example.com/" + "a" * 2000, "at most 2000"),
])
def test_redirect_uri_refused(uri, fragment):
    field, message = _one_error(_body(lambda b: b.update(redirect_uri=uri)))
    assert field == "redirect_uri"
    assert fragment in message


@pytest.mark.parametrize("e2e", ["E2E#1", "E2E_1", "é2e", "a" * 36, "", "line\nbreak", "x@y"])
def test_end_to_end_id_refused(e2e):
    field, message = _one_error(_body(lambda b: b.update(end_to_end_id=e2e)))
    assert field == "end_to_end_id"
    assert message.startswith("must be 1 to 35 letters, digits, spaces")


def test_end_to_end_id_of_35_accepted():
    assert structure(_body(lambda b: b.update(end_to_end_id="a" * 35)), CreatePaymentRequest).end_to_end_id == "a" * 35


@pytest.mark.parametrize("reference", ["", "R" * 141, " INV-1", "INV-1 "])
def test_reference_refused(reference):
    field, message = _one_error(_body(lambda b: b.update(reference=reference)))
    assert (field, message) == ("reference", "must be 1 to 140 characters, without surrounding spaces")


@pytest.mark.parametrize("name", ["", "N" * 71, " Acme"])
def test_creditor_name_refused(name):
    field, message = _one_error(_body(lambda b: b["creditor"].update(name=name)))
    assert field == "creditor.name"
    assert "1 to 70 characters" in message


@pytest.mark.parametrize("customer_id", ["cus", "c" * 65])
def test_customer_id_refused(customer_id):
    assert _one_error(_body(lambda b: b.update(customer_id=customer_id)))[0] == "customer_id"


@pytest.mark.parametrize("missing", ["type", "amount", "creditor", "reference", "redirect_uri"])
def test_required_fields(missing):
    assert _one_error(_body(lambda b: b.pop(missing))) == (missing, "required field missing")


def test_problems_in_separate_nested_objects_are_all_named():
    def change(b: dict[str, Any]) -> None:
        b["amount"]["currency"] = "gbp"
        b["creditor"]["account"]["sort_code"] = "1"
        b["surplus"] = 1
    assert [e["field"] for e in _errors(_body(change))] == ["amount.currency", "creditor.account.sort_code", "$"]


def test_top_level_field_checks_report_the_first_problem():
    # attrs stops at the first failing validator of an object, in field order
    errors = _errors(_body(lambda b: b.update(type="cheque", reference="", redirect_uri="http://evil.example/cb")))
    assert errors == [{"location": "body", "field": "type", "message": "must be one of domestic, sepa, international"}]


@pytest.mark.parametrize("body", [[], "x", None, 1])
def test_the_body_must_be_an_object(body):
    assert _errors(body) == [{"location": "body", "field": "$", "message": "must be an object"}]


def test_complete_payment_request():
    assert structure({"redirect_result": "code=abc&state=s"}, CompletePaymentRequest).submit is True
    assert structure({"redirect_result": "code=abc", "submit": False}, CompletePaymentRequest).submit is False
    with pytest.raises(ValidationFailed) as caught:
        structure({"redirect_result": ""}, CompletePaymentRequest)
    assert [e["field"] for e in caught.value.errors] == ["redirect_result"]


# --- iban_valid ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("iban", ["GB82WEST12345698765432", "DE89370400440532013000", "PL61109010140000071219812874",
                                  "FR1420041010050500013M02606", "NL91ABNA0417164300", "gb82west12345698765432"])
def test_iban_valid_known_good(iban):
    assert iban_valid(iban) is True


@pytest.mark.parametrize("iban", ["GB82WEST12345698765433", "GB28WEST12345698765432", "DE89370400440532013001",
                                  "PL61109010140000071219812875", "FR1420041010050500013M02607"])
def test_iban_valid_bad_check_digits(iban):
    assert iban_valid(iban) is False
