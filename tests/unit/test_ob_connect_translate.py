"""adapters.ob_connect.translate: the hub's AIS answers (shaped as UPSTREAM.md has them) into canonical models, the
PIS `payments` bodies (checked against the hub's own PIS spec, as the simulator checks them), ISO 20022 statuses and
the hub's error body into canonical errors."""
from __future__ import annotations

import json
import random
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.connectivity.fapi import AuthorisationRefused
from multidict import CIMultiDict, MultiDict

from adapters.base import PaymentInput
from adapters.ob_connect import translate as obc
from adapters.ob_connect import translate_pis as pis
from adapters.sandbox_kit import OpenAPISpec
from gateway.errors import (
    AccountUnavailable,
    ConsentEndedUpstream,
    ConsentNotActive,
    GatewayCredentialsRejected,
    GatewayRequestRejected,
    InstitutionNotSupported,
    NotFound,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
)
from gateway.ids import IdMinter
from gateway.models import (
    Account, AccountDetails, AccountType, Balance, BalanceType, Institution, Money, Owner, PaymentCoordinates,
    StandingOrder, TransactionStatus,
)
from gateway.models.payments import Creditor, PaymentAccount, PaymentStatus
from gateway.models.resources import PostalAddress
from gateway.models.serialize import decimal_text

UTC = timezone.utc
S = PaymentStatus
ALBION = "c058ee30-0239-5401-a3a7-6f0aec2ea477"
RHEINUFER = "2d5a7e23-1711-5059-8e3c-3a4471941b8c"
WISLA = "7ed56ade-eaf3-5460-b1dc-77bf9a7c6a13"
POLDER = "402f12c6-97b0-5f55-8e5c-4ef3ab61557d"
KEY = b"k" * 32
ACCOUNT_ID = "acc_0123456789abcdef0123456789"
PIS_SPEC = OpenAPISpec.load(Path(obc.__file__).with_name("upstream-pis-openapi.yaml"))


def minter(tenant: str = "tenant-a", consent: str = "con_1") -> IdMinter:
    return IdMinter(KEY, tenant, consent)


def _bad(call: Any, *args: Any, **kwargs: Any) -> ProviderBadResponse:
    with pytest.raises(ProviderBadResponse) as caught:
        call(*args, **kwargs)
    return caught.value


# --- institutions ---------------------------------------------------------------------------------------------------
def _capabilities(**on: bool) -> dict[str, bool]:
    keys = ("obtain_ais_consent", "delete_ais_consent", "retrieve_accounts", "retrieve_balances",
            "retrieve_transactions", "retrieve_standing_orders", "domestic_credit_transfer", "sepa_credit_transfer",
            "cross_border_credit_transfer")
    return {key: on.get(key, False) for key in keys}


ALBION_ROW = {"id": ALBION, "name": "Albion Savings Bank", "country": "GB", "profile": "CMA9",
              "aspspServices": ["AIS", "PIS"],
              "capabilities": _capabilities(obtain_ais_consent=True, delete_ais_consent=True, retrieve_accounts=True,
                                            retrieve_balances=True, retrieve_transactions=True,
                                            retrieve_standing_orders=True, domestic_credit_transfer=True,
                                            cross_border_credit_transfer=True)}


def test_institution_exact():
    assert obc.institution(ALBION_ROW) == Institution(
        id=ALBION, provider="ob-connect", provider_ref=ALBION, name="Albion Savings Bank", country="GB", url=None,
        capabilities=("ais", "pis_domestic", "pis_international", "standing_orders"))


@pytest.mark.parametrize(("on", "expected"), [
    ({"obtain_ais_consent": True}, ("ais",)),
    ({"domestic_credit_transfer": True}, ("pis_domestic",)),
    ({"sepa_credit_transfer": True}, ("pis_sepa",)),
    ({"cross_border_credit_transfer": True}, ("pis_international",)),
    ({"retrieve_standing_orders": True}, ("standing_orders",)),
    ({"obtain_ais_consent": True, "sepa_credit_transfer": True, "cross_border_credit_transfer": True,
      "retrieve_standing_orders": True}, ("ais", "pis_international", "pis_sepa", "standing_orders")),
    ({key: True for key in _capabilities()}, ("ais", "pis_domestic", "pis_international", "pis_sepa",
                                              "standing_orders")),
    ({"retrieve_accounts": True, "retrieve_balances": True, "delete_ais_consent": True}, ()),  # no canonical name
    ({}, ()),  # every key present, all false: the hub says nothing is offered
])
def test_institution_capability_names(on, expected):
    row = {"id": POLDER, "name": "Polder Data Bank", "country": "NL", "aspspServices": ["AIS", "PIS"],
           "capabilities": _capabilities(**on)}
    assert obc.institution(row).capabilities == expected


@pytest.mark.parametrize(("services", "expected"), [
    (["AIS", "PIS"], ("ais", "pis")),
    (["AIS"], ("ais",)),
    (["PIS"], ("pis",)),
    ([], ()),
    (None, ()),
])
def test_institution_without_capabilities_reads_the_services(services, expected):
    row = {"id": WISLA, "name": "Bank Wiślany", "country": "PL", "profile": "PolishAPI", "aspspServices": services}
    assert obc.institution(row).capabilities == expected
    assert obc.institution({**row, "capabilities": {}}).capabilities == expected  # an empty object says as little


@pytest.mark.parametrize("missing", ["id", "name", "country"])
def test_institution_without_id_name_or_country_is_a_bad_response(missing):
    row = {k: v for k, v in ALBION_ROW.items() if k != missing}
    assert str(_bad(obc.institution, row)) == "ob-connect sent an ASPSP without id, name or country"


def test_institution_with_capabilities_not_an_object_is_a_bad_response():
    _bad(obc.institution, {**ALBION_ROW, "capabilities": ["obtain_ais_consent"]})


def test_institutions_list():
    body = {"originalRequestInfo": {"xRequestId": "x"}, "aspsps": [ALBION_ROW]}
    assert obc.institutions(body) == [ALBION_ROW]
    assert obc.institutions({"aspsps": []}) == []


@pytest.mark.parametrize("body", [None, [], "aspsps", {}, {"aspsps": None}, {"aspsps": {"id": ALBION}},
                                  {"aspsps": [ALBION_ROW, "x"]}])
def test_institutions_without_a_list_is_a_bad_response(body):
    assert str(_bad(obc.institutions, body)) == "ob-connect sent an answer without a aspsps list"


# --- accounts -------------------------------------------------------------------------------------------------------
GB_ACCOUNT = {"resourceId": "acc-albion-0001", "name": "Everyday Current", "accountType": "CACC", "currency": "GBP",
              "accountNumber": "20000012345678", "schemeName": "SortCodeAccountNumber", "holderName": "Alex Example",
              "accountHolderType": "INDIVIDUAL"}
DE_SAVINGS = {"resourceId": "acc-rhein-0002", "name": "Tagesgeld", "accountType": "SVGS", "currency": "EUR",
              "accountNumber": "DE89370400440532013000", "schemeName": "IBAN", "holderName": "Alex Example",
              "accountHolderType": "INDIVIDUAL"}


def test_account_exact():
    ids = minter()
    assert obc.account(GB_ACCOUNT, consent_id="con_1", ids=ids, institution_id=ALBION) == Account(
        id=ids.account("acc-albion-0001"), provider="ob-connect", provider_ref="acc-albion-0001", consent_id="con_1",
        name="Everyday Current", type=AccountType.CHECKING, currency="GBP", masked_number="•••• 5678",
        institution_id=ALBION, status="active",
        extra={"account_type": "CACC", "scheme_name": "SortCodeAccountNumber"})


def test_account_ids_are_derived_and_stable():
    first = obc.account(GB_ACCOUNT, consent_id="con_1", ids=minter(), institution_id=ALBION)
    again = obc.account(GB_ACCOUNT, consent_id="con_1", ids=minter(), institution_id=ALBION)
    assert first.id == again.id == IdMinter(KEY, "tenant-a", "con_1").derive("acc", "acc-albion-0001")
    assert first.id.startswith("acc_") and len(first.id) == 4 + 30
    other_consent = obc.account(GB_ACCOUNT, consent_id="con_2", ids=minter(consent="con_2"), institution_id=ALBION)
    other_tenant = obc.account(GB_ACCOUNT, consent_id="con_1", ids=minter(tenant="tenant-b"), institution_id=ALBION)
    assert len({first.id, other_consent.id, other_tenant.id}) == 3
    assert first.provider_ref == other_consent.provider_ref == "acc-albion-0001"


@pytest.mark.parametrize(("kind", "expected"), [("CACC", AccountType.CHECKING), ("SVGS", AccountType.SAVINGS),
                                                ("CARD", AccountType.CREDIT_CARD), ("LOAN", AccountType.LOAN),
                                                ("TRAN", AccountType.OTHER), (None, AccountType.OTHER)])
def test_account_types(kind, expected):
    row = {**GB_ACCOUNT, "accountType": kind}
    assert obc.account(row, consent_id="c", ids=minter(), institution_id=None).type is expected


def test_accounts_list_iban_savings_and_defaults():
    ids = minter()
    bare = {"resourceId": "acc-3", "currency": "EUR"}
    short = {"resourceId": "acc-4", "currency": "EUR", "accountNumber": "1234"}
    out = obc.accounts({"accounts": [GB_ACCOUNT, DE_SAVINGS, bare, short]}, consent_id="con_1", ids=ids,
                       institution_id=RHEINUFER)
    assert [a.id for a in out] == [ids.account(r) for r in ("acc-albion-0001", "acc-rhein-0002", "acc-3", "acc-4")]
    assert len({a.id for a in out}) == 4
    assert [a.masked_number for a in out] == ["•••• 5678", "•••• 3000", None, "1234"]
    assert [a.type for a in out] == [AccountType.CHECKING, AccountType.SAVINGS, AccountType.OTHER, AccountType.OTHER]
    assert [a.name for a in out] == ["Everyday Current", "Tagesgeld", "Account", "Account"]
    assert {a.institution_id for a in out} == {RHEINUFER}
    assert out[1].extra == {"account_type": "SVGS", "scheme_name": "IBAN"}
    assert out[2].extra == {"account_type": None, "scheme_name": None}


@pytest.mark.parametrize("missing", ["resourceId", "currency"])
def test_account_without_resource_id_or_currency_is_a_bad_response(missing):
    row = {k: v for k, v in GB_ACCOUNT.items() if k != missing}
    err = _bad(obc.account, row, consent_id="c", ids=minter(), institution_id=None)
    assert str(err) == "ob-connect sent an account without resourceId or currency"
    _bad(obc.accounts, {"accounts": [GB_ACCOUNT, row]}, consent_id="c", ids=minter(), institution_id=None)


@pytest.mark.parametrize("body", [None, {}, {"accounts": None}, {"accounts": [1]}, {"accounts": GB_ACCOUNT}])
def test_accounts_without_a_list_is_a_bad_response(body):
    _bad(obc.accounts, body, consent_id="c", ids=minter(), institution_id=None)


def test_one_account():
    assert obc.one_account({"originalRequestInfo": {}, "account": GB_ACCOUNT}) is GB_ACCOUNT
    for body in (None, {}, {"account": None}, {"account": [GB_ACCOUNT]}, {"accounts": [GB_ACCOUNT]}):
        assert str(_bad(obc.one_account, body)) == "ob-connect sent an answer without the account"


def test_coordinates_iban():
    assert obc.coordinates(DE_SAVINGS, account_id=ACCOUNT_ID) == AccountDetails(
        account_id=ACCOUNT_ID, coordinates=(PaymentCoordinates(scheme="iban", iban="DE89370400440532013000"),))


def test_coordinates_sort_code_and_account_number_split_six_and_eight():
    assert obc.coordinates(GB_ACCOUNT, account_id=ACCOUNT_ID) == AccountDetails(
        account_id=ACCOUNT_ID, coordinates=(PaymentCoordinates(scheme="uk_sort_code", sort_code="200000",
                                                               account_number="12345678"),))


@pytest.mark.parametrize(("number", "scheme"), [
    ("2000001234567", "SortCodeAccountNumber"),  # 13 digits
    ("200000123456789", "SortCodeAccountNumber"),  # 15 digits
    ("", "SortCodeAccountNumber"),
    ("DE89370400440532013000", "BBAN"),
    ("DE89370400440532013000", None),
    ("20000012345678", "UK.AccountNumber"),
])
def test_coordinates_of_an_unknown_scheme_is_a_bad_response(number, scheme):
    err = _bad(obc.coordinates, {"accountNumber": number, "schemeName": scheme}, account_id=ACCOUNT_ID)
    assert str(err) == f"ob-connect sent an account number of an unknown scheme ({scheme!r})"


def test_owner():
    assert obc.owner(GB_ACCOUNT, account_id=ACCOUNT_ID) == Owner(account_id=ACCOUNT_ID, names=("Alex Example",))
    assert obc.owner({"resourceId": "x"}, account_id=ACCOUNT_ID) == Owner(account_id=ACCOUNT_ID, names=())
    assert obc.owner({"holderName": ""}, account_id=ACCOUNT_ID).names == ()


# --- balances -------------------------------------------------------------------------------------------------------
AT = "2025-03-01T10:15:00+00:00"


def _balance(kind: str, amount: str, indicator: str = "CRDT", currency: str = "GBP", at: str | None = AT) -> str:
    """One balance as the hub writes it: the amount is a JSON number written as-is."""
    when = f',"dateTime":"{at}"' if at else ""
    return (f'{{"balanceType":"{kind}","balanceAmount":{{"amount":{amount},"currency":"{currency}"}},'
            f'"creditDebitIndicator":"{indicator}"{when}}}')


def _balances(*rows: str) -> Any:
    return orjson.loads('{"originalRequestInfo":{"xRequestId":"x"},"balances":[' + ",".join(rows) + "]}")


def test_balances_exact():
    body = _balances(_balance("interimAvailable", "1234.56"), _balance("closingBooked", "0.3", "DBIT"))
    at = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
    assert obc.balances(body, account_id=ACCOUNT_ID) == [
        Balance(account_id=ACCOUNT_ID, type=BalanceType.AVAILABLE, amount=Money(Decimal("1234.56"), "GBP"),
                as_of=at, live=True),
        Balance(account_id=ACCOUNT_ID, type=BalanceType.CURRENT, amount=Money(Decimal("-0.30"), "GBP"),
                as_of=at, live=True),
    ]


@pytest.mark.parametrize(("raw", "indicator", "text"), [
    ("1234.56", "CRDT", "1234.56"),
    ("0.3", "CRDT", "0.30"),
    ("10.1", "CRDT", "10.10"),
    ("10.1", "DBIT", "-10.10"),
    ("0.1", "DBIT", "-0.10"),
    ("100", "CRDT", "100.00"),
    ("0.29", "CRDT", "0.29"),
    ("1.15", "DBIT", "-1.15"),
    ("99999999999.99", "CRDT", "99999999999.99"),
    ("0.30000000000000004", "CRDT", "0.30000000000000004"),  # never rounded away: kept as the hub wrote it
])
def test_balance_amounts_are_exact_decimals_of_the_json_number(raw, indicator, text):
    body = _balances(_balance("interimAvailable", raw, indicator))
    assert isinstance(body["balances"][0]["balanceAmount"]["amount"], (float, int))  # orjson gave a float
    (balance,) = obc.balances(body, account_id=ACCOUNT_ID)
    assert decimal_text(balance.amount.amount) == text
    assert balance.amount.to_json() == {"amount": text, "currency": "GBP"}


def test_balances_first_of_each_kind_wins_and_others_map():
    body = _balances(_balance("expected", "1.00"), _balance("interimAvailable", "2.00"),
                     _balance("interimBooked", "3.00", at=None), _balance("closingBooked", "4.00"),
                     _balance("forwardAvailable", "5.00"))
    out = obc.balances(body, account_id=ACCOUNT_ID)
    assert [(b.type, decimal_text(b.amount.amount), b.as_of) for b in out] == [
        (BalanceType.AVAILABLE, "1.00", datetime(2025, 3, 1, 10, 15, tzinfo=UTC)),
        (BalanceType.CURRENT, "3.00", None)]


@pytest.mark.parametrize("body", [
    {"balances": []},
    _balances(_balance("forwardAvailable", "5.00")),
    {"balances": [{"balanceType": "interimAvailable"}]},  # no amount
    {"balances": [{"balanceType": "interimAvailable", "balanceAmount": {"amount": 1}}]},  # no currency
    {"balances": [{"balanceType": "interimAvailable", "balanceAmount": {"amount": "abc", "currency": "GBP"}}]},
    {"balances": [{"balanceType": "interimAvailable", "balanceAmount": {"amount": True, "currency": "GBP"}}]},
    {"balances": [{"balanceType": "interimAvailable", "balanceAmount": {"amount": None, "currency": "GBP"}}]},
    {"balances": [{"balanceType": "interimAvailable", "balanceAmount": [1, "GBP"]}]},
    {"balances": None},
    None,
])
def test_unreadable_balances_are_a_bad_response(body):
    _bad(obc.balances, body, account_id=ACCOUNT_ID)


def test_zero_debit_balance_is_not_negative_zero():
    (balance,) = obc.balances(_balances(_balance("closingBooked", "0", "DBIT")), account_id=ACCOUNT_ID)
    assert decimal_text(balance.amount.amount) == "0.00"


# --- transactions ---------------------------------------------------------------------------------------------------
TRANSACTIONS_RAW = b"""{"originalRequestInfo":{"xRequestId":"x"},"transactions":[
 {"transactionId":"tx-5","bookingDateTime":"2025-03-03T09:00:00+01:00","valueDate":"2025-03-04","status":"PDNG",
  "creditDebitIndicator":"DBIT","transactionAmount":{"amount":12.5,"currency":"GBP"},
  "remittanceInformationUnstructured":"Coffee Corner 03/03","recipientName":"Coffee Corner","transactionType":"CARD"},
 {"transactionId":"tx-4","bookingDateTime":"2025-03-02T08:30:00+00:00","valueDate":"2025-02-28","status":"BOOK",
  "creditDebitIndicator":"CRDT","transactionAmount":{"amount":2750.1,"currency":"GBP"},
  "remittanceInformationUnstructured":"Salary","senderName":"Acme Ltd","transactionType":"SALARY"},
 {"transactionId":"tx-3","bookingDateTime":"2025-03-01T12:00:00Z","valueDate":"2025-03-01","status":"BOOK",
  "creditDebitIndicator":"DBIT","transactionAmount":{"amount":0.1,"currency":"GBP"},
  "recipientName":"Harbour Lettings","transactionType":"TRANSFER"},
 {"transactionId":"tx-2","bookingDateTime":"2025-02-27T23:30:00-02:00","status":"BOOK",
  "creditDebitIndicator":"CRDT","transactionAmount":{"amount":45,"currency":"GBP"},
  "senderName":"Jo Friend","transactionType":"TRANSFER"},
 {"transactionId":"tx-1","bookingDateTime":"2025-02-20T10:00:00+00:00","valueDate":"2025-02-20","status":"BOOK",
  "creditDebitIndicator":"DBIT","transactionAmount":{"amount":9.99,"currency":"GBP"},"transactionType":"DIRECT_DEBIT"}
],"offset":"opaque-next"}"""


def _txns(include_pending: bool = True, account_id: str = ACCOUNT_ID, ids: IdMinter | None = None) -> list:
    return obc.transactions(orjson.loads(TRANSACTIONS_RAW), account_id=account_id, ids=ids or minter(),
                            include_pending=include_pending)


def test_transactions_exact():
    out = _txns()
    assert [t.provider_ref for t in out] == ["tx-5", "tx-4", "tx-3", "tx-2", "tx-1"]
    assert [decimal_text(t.amount.amount) for t in out] == ["-12.50", "2750.10", "-0.10", "45.00", "-9.99"]
    assert {t.amount.currency for t in out} == {"GBP"}
    assert [t.status for t in out] == [TransactionStatus.PENDING] + [TransactionStatus.BOOKED] * 4
    assert [t.description for t in out] == ["Coffee Corner 03/03", "Salary", "Harbour Lettings", "Jo Friend", ""]
    assert [t.booked_at for t in out] == [None, datetime(2025, 3, 2, 8, 30, tzinfo=UTC),
                                          datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
                                          datetime(2025, 2, 28, 1, 30, tzinfo=UTC),
                                          datetime(2025, 2, 20, 10, 0, tzinfo=UTC)]
    # valueDate is the transaction date; without it, the booking date (in UTC)
    assert [t.transaction_date for t in out] == [date(2025, 3, 4), date(2025, 2, 28), date(2025, 3, 1),
                                                 date(2025, 2, 28), date(2025, 2, 20)]
    assert [t.category for t in out] == ["CARD", "SALARY", "TRANSFER", "TRANSFER", "DIRECT_DEBIT"]
    assert {t.account_id for t in out} == {ACCOUNT_ID}
    assert {(t.memo, t.check_number) for t in out} == {(None, None)}


def test_transactions_exclude_pending_when_asked():
    assert [t.provider_ref for t in _txns(include_pending=False)] == ["tx-4", "tx-3", "tx-2", "tx-1"]


def test_transaction_ids_unique_per_account_and_stable():
    first, again = _txns(), _txns(ids=minter())
    assert [t.id for t in first] == [t.id for t in again]
    assert [t.id for t in first] == [minter().derive("txn", f"{ACCOUNT_ID}\x00tx-{n}") for n in (5, 4, 3, 2, 1)]
    assert len({t.id for t in first}) == 5 and all(t.id.startswith("txn_") for t in first)
    other = _txns(account_id="acc_other")  # the same upstream ids under another account
    assert not {t.id for t in first} & {t.id for t in other}
    assert [t.provider_ref for t in other] == [t.provider_ref for t in first]
    other_tenant = _txns(ids=minter(tenant="tenant-b"))
    assert not {t.id for t in first} & {t.id for t in other_tenant}


@pytest.mark.parametrize("row", [
    {"transactionAmount": {"amount": 1, "currency": "GBP"}, "status": "BOOK"},
    {"transactionId": "", "transactionAmount": {"amount": 1, "currency": "GBP"}, "status": "BOOK"},
])
def test_transaction_without_id_is_a_bad_response(row):
    err = _bad(obc.transactions, {"transactions": [row]}, account_id=ACCOUNT_ID, ids=minter(), include_pending=True)
    assert str(err) == "ob-connect sent a transaction without transactionId"


@pytest.mark.parametrize("body", [None, {}, {"transactions": "x"}, {"transactions": [None]},
                                  {"transactions": [{"transactionId": "t", "transactionAmount": {"amount": "x",
                                                                                                 "currency": "GBP"}}]}])
def test_unreadable_transactions_are_a_bad_response(body):
    _bad(obc.transactions, body, account_id=ACCOUNT_ID, ids=minter(), include_pending=True)


def test_transaction_with_unreadable_value_date_is_a_bad_response():
    row = {"transactionId": "t", "status": "BOOK", "valueDate": "2025-03-01T10:00:00+00:00",
           "transactionAmount": {"amount": 1, "currency": "GBP"}}
    _bad(obc.transactions, {"transactions": [row]}, account_id=ACCOUNT_ID, ids=minter(), include_pending=True)


@pytest.mark.parametrize(("body", "expected"), [
    ({"transactions": [], "offset": "opaque-next"}, "opaque-next"),
    ({"transactions": []}, None),
    ({"transactions": [], "offset": ""}, None),
    ({"transactions": [], "offset": None}, None),
    ({"transactions": [], "offset": 50}, None),
    (None, None),
    ([], None),
])
def test_next_offset(body, expected):
    assert obc.next_offset(body) == expected
    assert obc.next_offset(orjson.loads(TRANSACTIONS_RAW)) == "opaque-next"


# --- standing orders ------------------------------------------------------------------------------------------------
STANDING_ORDERS = orjson.loads(b"""{"originalRequestInfo":{"xRequestId":"x"},"standingOrders":[
 {"standingOrderId":"so-0001","status":"ACTIVE","reference":"Rent","schedule":{"frequency":"MNTH"},
  "firstPayment":{"date":"2024-05-01","amount":750.5,"currency":"GBP"},
  "nextPayment":{"date":"2025-04-01","amount":800.1,"currency":"GBP"},
  "recipientAccount":{"identification":"20000087654321","schemeName":"SortCodeAccountNumber",
                      "name":"Harbour Lettings"}},
 {"standingOrderId":"so-0002","status":"ACTIVE","reference":"Gym membership","schedule":{"frequency":"WEEK"},
  "firstPayment":{"date":"2024-09-15","amount":25,"currency":"GBP"},
  "finalPayment":{"date":"2026-03-20","amount":25,"currency":"GBP"},
  "recipientAccount":{"identification":"20000011112222","schemeName":"SortCodeAccountNumber","name":"FitLife Clubs"}}
]}""")


def test_standing_orders_exact():
    ids = minter()
    assert obc.standing_orders(STANDING_ORDERS, account_id=ACCOUNT_ID, ids=ids) == [
        StandingOrder(id=ids.derive("sto", f"{ACCOUNT_ID}\x00so-0001"), account_id=ACCOUNT_ID, provider_ref="so-0001",
                      frequency="MNTH", amount=Money(Decimal("-800.10"), "GBP"), creditor_name="Harbour Lettings",
                      creditor_account="20000087654321", reference="Rent", first_payment_date=date(2024, 5, 1),
                      next_payment_date=date(2025, 4, 1), final_payment_date=None, status="active"),
        # no nextPayment: the first payment's amount, no next date
        StandingOrder(id=ids.derive("sto", f"{ACCOUNT_ID}\x00so-0002"), account_id=ACCOUNT_ID, provider_ref="so-0002",
                      frequency="WEEK", amount=Money(Decimal("-25.00"), "GBP"), creditor_name="FitLife Clubs",
                      creditor_account="20000011112222", reference="Gym membership",
                      first_payment_date=date(2024, 9, 15), next_payment_date=None,
                      final_payment_date=date(2026, 3, 20), status="active"),
    ]


def test_standing_order_amount_text_and_defaults():
    (order,) = obc.standing_orders({"standingOrders": [{"standingOrderId": "so-9",
                                                        "nextPayment": {"amount": 0.1, "currency": "EUR"}}]},
                                   account_id=ACCOUNT_ID, ids=minter())
    assert order.amount.to_json() == {"amount": "-0.10", "currency": "EUR"}
    assert (order.frequency, order.status, order.creditor_name, order.creditor_account, order.reference) == \
        ("", "active", None, None, None)
    assert (order.first_payment_date, order.next_payment_date, order.final_payment_date) == (None, None, None)


@pytest.mark.parametrize(("body", "message"), [
    ({"standingOrders": [{"nextPayment": {"amount": 1, "currency": "GBP"}}]},
     "ob-connect sent a standing order without standingOrderId"),
    ({"standingOrders": [{"standingOrderId": "so-1"}]}, "ob-connect sent an amount without amount or currency"),
    ({"standingOrders": None}, "ob-connect sent an answer without a standingOrders list"),
])
def test_unreadable_standing_orders_are_a_bad_response(body, message):
    assert str(_bad(obc.standing_orders, body, account_id=ACCOUNT_ID, ids=minter())) == message


# --- amounts sent -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "currency", "wire"), [
    ("149.9", "EUR", b"149.90"),
    ("149.90", "EUR", b"149.90"),
    ("10", "GBP", b"10.00"),
    ("0.01", "GBP", b"0.01"),
    ("0.3", "PLN", b"0.30"),
    ("1234.56", "GBP", b"1234.56"),
    ("9999999999999.99", "EUR", b"9999999999999.99"),
    ("1500", "JPY", b"1500"),
    ("1.234", "BHD", b"1.234"),
])
def test_amount_is_the_exact_decimal_as_a_json_number(value, currency, wire):
    sent = pis.amount(Decimal(value), currency)
    assert type(sent) is orjson.Fragment  # raw JSON text: no float is ever made of the amount
    assert orjson.dumps({"amount": sent}) == b'{"amount":' + wire + b"}"
    assert json.loads(orjson.dumps({"amount": sent}), parse_float=Decimal)["amount"] == Decimal(value)


def test_amount_never_loses_a_cent_up_to_thirteen_integer_digits():
    rng = random.Random(20250301)
    values = [Decimal(cents).scaleb(-2) for cents in (1, 10, 29, 30, 57, 99, 100, 101, 110, 999, 1005, 123456,
                                                    10 ** 15 - 1, 10 ** 15 - 10, 10 ** 15 - 100, 10 ** 14 + 1)]
    for digits in range(1, 16):
        values += [Decimal(rng.randrange(10 ** (digits - 1), 10 ** digits)).scaleb(-2) for _ in range(150)]
    for value in values:
        text = orjson.dumps(pis.amount(value, "EUR")).decode()
        assert Decimal(text) == value and text == str(value.quantize(Decimal("0.01"))), value  # what the hub reads


def _wire(body: dict) -> dict:
    """A body as the hub reads it: its JSON, numbers as exact decimals."""
    return json.loads(orjson.dumps(body), parse_float=Decimal, parse_int=Decimal)


# --- payment bodies -------------------------------------------------------------------------------------------------
GB_CREDITOR = Creditor("Harbour Lettings", PaymentAccount(scheme="uk_sort_code", sort_code="200000",
                                                          account_number="55779911"))
GB_DEBTOR = PaymentAccount(scheme="uk_sort_code", sort_code="200000", account_number="12345678")
PL_CREDITOR = Creditor("Sklep Wiślany sp. z o.o.", PaymentAccount(scheme="iban", iban="PL61109010140000071219812874"))
PL_DEBTOR = PaymentAccount(scheme="iban", iban="PL27114020040000300201355387")
DE_ADDRESS = PostalAddress(lines=("Rheinallee 12", "Hinterhaus"), city="Köln", postal_code="50667", country="DE")
DE_CREDITOR = Creditor("Rheinufer Handel GmbH", PaymentAccount(scheme="iban", iban="DE89370400440532013000",
                                                               bic="COBADEFFXXX"), DE_ADDRESS)
DE_DEBTOR = PaymentAccount(scheme="iban", iban="DE02120300000000202051")
IE_CREDITOR = Creditor("Liffey Traders", PaymentAccount(scheme="iban", iban="IE29AIBK93115212345678",
                                                        bic="AIBKIE2D"),
                       PostalAddress(city="Dublin", country="IE"))


def _payment(**over: Any) -> PaymentInput:
    fields: dict[str, Any] = dict(
        type="domestic", amount=Decimal("25.5"), currency="GBP", creditor=GB_CREDITOR, reference="Rent March",
        end_to_end_id="E2E-0001", instruction_id="INSTR-0001", redirect_uri="https://tpp.example.com/ob/callback",
        institution_id=ALBION)
    fields.update(over)
    return PaymentInput(**fields)


def _spec_problems(data: PaymentInput, country: str) -> list:
    """What the simulator's gate finds wrong with the consent request carrying this body (its own check)."""
    path = f"/payments/{pis.PAYMENT_PATHS[data.type]}-credit-transfers/consents"
    found = PIS_SPEC.find("POST", path)
    assert found is not None, path
    operation, params = found
    raw = orjson.dumps({
        "requestInfo": {"xRequestId": "123e4567-e89b-42d3-a456-426655440000", "aspspId": data.institution_id,
                        "tppRedirectURI": data.redirect_uri, "merchant": {"id": "M-1", "name": "Example Shop"}},
        "payments": pis.payment_body(data, country=country)})
    return operation.check(params, MultiDict(), CIMultiDict({"Content-Type": "application/json"}), raw)


def test_payment_body_domestic_gb():
    data = _payment()
    assert _wire(pis.payment_body(data, country="GB")) == {
        "endToEndIdentification": "E2E-0001",
        "instructedAmount": {"amount": Decimal("25.50"), "currency": "GBP"},
        "creditorName": "Harbour Lettings",
        "remittanceInformationUnstructured": "Rent March",
        "creditorAccount": {"identification": "55779911", "schemeName": "UK.AccountNumber"},
        "creditorAgent": {"clearingSystemIdentification": "UK.SortCode", "memberIdentification": "200000"},
        "localInstrument": "UK.FasterPayments",
    }
    assert b'"instructedAmount":{"amount":25.50,"currency":"GBP"}' in orjson.dumps(pis.payment_body(data, country="GB"))
    assert _spec_problems(data, "GB") == []


def test_payment_body_domestic_gb_with_debtor():
    data = _payment(debtor_account=GB_DEBTOR, amount=Decimal("1000"))
    body = _wire(pis.payment_body(data, country="GB"))
    assert body["debtorAccount"] == {"identification": "12345678"}
    assert body["instructedAmount"] == {"amount": Decimal("1000.00"), "currency": "GBP"}
    assert set(body) == {"endToEndIdentification", "instructedAmount", "creditorName",
                         "remittanceInformationUnstructured", "creditorAccount", "creditorAgent", "localInstrument",
                         "debtorAccount"}
    assert _spec_problems(data, "GB") == []


def test_payment_body_domestic_pl():
    data = _payment(creditor=PL_CREDITOR, currency="PLN", amount=Decimal("149.99"), institution_id=WISLA,
                    reference="Faktura 2025/03/17")
    assert _wire(pis.payment_body(data, country="PL")) == {
        "endToEndIdentification": "E2E-0001",
        "instructedAmount": {"amount": Decimal("149.99"), "currency": "PLN"},
        "creditorName": "Sklep Wiślany sp. z o.o.",
        "remittanceInformationUnstructured": "Faktura 2025/03/17",
        "creditorAccount": {"identification": "61109010140000071219812874", "schemeName": "PL.AccountNumber"},
        "localInstrument": "PL.Elixir",
    }
    assert _spec_problems(data, "PL") == []
    with_debtor = _payment(creditor=PL_CREDITOR, currency="PLN", institution_id=WISLA, debtor_account=PL_DEBTOR)
    assert pis.payment_body(with_debtor, country="PL")["debtorAccount"] == {
        "identification": "27114020040000300201355387"}
    assert _spec_problems(with_debtor, "PL") == []


def test_payment_body_domestic_with_creditor_address_passes_the_spec():
    creditor = Creditor("Harbour Lettings", GB_CREDITOR.account,
                        PostalAddress(lines=("1 Quay Street",), city="Bristol", postal_code="BS1 4DJ", country="GB"))
    assert _spec_problems(_payment(creditor=creditor), "GB") == []


def test_payment_body_sepa():
    data = _payment(type="sepa", currency="EUR", amount=Decimal("149.9"), creditor=DE_CREDITOR,
                    debtor_name="Alex Example", reference="Rechnung 4711", institution_id=RHEINUFER)
    assert _wire(pis.payment_body(data, country="DE")) == {
        "endToEndIdentification": "E2E-0001",
        "instructedAmount": {"amount": Decimal("149.90"), "currency": "EUR"},
        "creditorName": "Rheinufer Handel GmbH",
        "remittanceInformationUnstructured": "Rechnung 4711",
        "creditorAccount": {"iban": "DE89370400440532013000"},
        "creditorAgent": {"bicfi": "COBADEFFXXX"},
        "debtorName": "Alex Example",
        "localInstrument": "SEPA",
        "instructionPriority": "Normal",
        "creditorAddress": {"country": "DE", "city": "Köln", "postalCode": "50667", "street": "Rheinallee 12"},
    }
    assert b'"amount":149.90,' in orjson.dumps(pis.payment_body(data, country="DE"))
    assert _spec_problems(data, "DE") == []


def test_payment_body_sepa_with_debtor_and_country_only_address():
    creditor = Creditor(DE_CREDITOR.name, DE_CREDITOR.account, PostalAddress(country="DE"))
    data = _payment(type="sepa", currency="EUR", creditor=creditor, debtor_name="Alex Example",
                    debtor_account=DE_DEBTOR, institution_id=RHEINUFER)
    body = _wire(pis.payment_body(data, country="DE"))
    assert body["creditorAddress"] == {"country": "DE"}
    assert body["debtorAccount"] == {"iban": "DE02120300000000202051"}
    assert _spec_problems(data, "DE") == []


def test_payment_body_international_iban_debtor():
    data = _payment(type="international", currency="USD", amount=Decimal("5000"), creditor=IE_CREDITOR,
                    debtor_account=DE_DEBTOR, debtor_name="Alex Example", institution_id=RHEINUFER,
                    reference="Invoice 2025-117")
    assert _wire(pis.payment_body(data, country="DE")) == {
        "endToEndIdentification": "E2E-0001",
        "instructedAmount": {"amount": Decimal("5000.00"), "currency": "USD"},
        "creditorName": "Liffey Traders",
        "remittanceInformationUnstructured": "Invoice 2025-117",
        "creditorAccount": {"identification": "IE29AIBK93115212345678", "schemeName": "IBAN"},
        "creditorAgent": {"identification": "AIBKIE2D", "schemeName": "BIC"},
        "localInstrument": "Swift",
        "instructionPriority": "Normal",
        "debtorAccount": {"identification": "DE02120300000000202051", "schemeName": "IBAN"},
        "debtorName": "Alex Example",
        "creditorAddress": {"country": "IE", "city": "Dublin"},
    }
    assert _spec_problems(data, "DE") == []


def test_payment_body_international_sort_code_debtor_without_name_or_address():
    creditor = Creditor("Rheinufer Handel GmbH", DE_CREDITOR.account)
    data = _payment(type="international", currency="EUR", amount=Decimal("0.5"), creditor=creditor,
                    debtor_account=GB_DEBTOR, institution_id=ALBION)
    body = _wire(pis.payment_body(data, country="GB"))
    assert body == {
        "endToEndIdentification": "E2E-0001",
        "instructedAmount": {"amount": Decimal("0.50"), "currency": "EUR"},
        "creditorName": "Rheinufer Handel GmbH",
        "remittanceInformationUnstructured": "Rent March",
        "creditorAccount": {"identification": "DE89370400440532013000", "schemeName": "IBAN"},
        "creditorAgent": {"identification": "COBADEFFXXX", "schemeName": "BIC"},
        "localInstrument": "Swift",
        "instructionPriority": "Normal",
        "debtorAccount": {"identification": "20000012345678", "schemeName": "SortCodeAccountNumber"},
    }
    assert _spec_problems(data, "GB") == []


def test_spec_check_is_not_vacuous():
    """The same check refuses what the hub refuses: a SEPA body in GBP, a domestic body without its instrument."""
    sepa_gbp = _payment(type="sepa", currency="GBP", creditor=DE_CREDITOR, debtor_name="Alex Example")
    assert [(p.name, p.kind) for p in _spec_problems(sepa_gbp, "DE")] == [
        ("payments.instructedAmount.currency", "invalid")]
    no_debtor = _payment(type="international", currency="EUR", creditor=IE_CREDITOR)
    assert [(p.name, p.kind) for p in _spec_problems(no_debtor, "DE")] == [("payments.debtorAccount", "missing")]


@pytest.mark.parametrize("kind", ["domestic", "sepa", "international"])
def test_payment_paths_and_capabilities(kind):
    assert PIS_SPEC.find("POST", f"/payments/{pis.PAYMENT_PATHS[kind]}-credit-transfers/consents") is not None
    assert PIS_SPEC.find("POST", f"/payments/{pis.PAYMENT_PATHS[kind]}-credit-transfers/payment-status") is not None
    assert pis.PAYMENT_CAPABILITIES[kind] in _capabilities()


# --- consents and transfers ---------------------------------------------------------------------------------------
SCA = "http://127.0.0.1:8099/sca/tk-123"


@pytest.mark.parametrize("links", [{"scaRedirect": SCA}, {"scaRedirect": {"href": SCA}}])
def test_consent_link(links):
    body = {"originalRequestInfo": {}, "consentRequestId": "cr-1", "aspspSCAApproach": "REDIRECT", "_links": links}
    assert obc.consent_link(body) == ("cr-1", SCA)


@pytest.mark.parametrize("body", [
    None, [],
    {"consentRequestId": "cr-1"},
    {"consentRequestId": "cr-1", "_links": {}},
    {"consentRequestId": "cr-1", "_links": {"scaRedirect": ""}},
    {"consentRequestId": "cr-1", "_links": {"scaRedirect": {"href": ""}}},
    {"consentRequestId": "cr-1", "_links": {"scaRedirect": {"url": SCA}}},
    {"consentRequestId": "cr-1", "_links": [SCA]},
    {"consentRequestId": 17, "_links": {"scaRedirect": SCA}},
    {"_links": {"scaRedirect": SCA}},
])
def test_consent_link_missing_parts_is_a_bad_response(body):
    assert str(_bad(obc.consent_link, body)) == \
        "ob-connect sent a consent without consentRequestId or _links.scaRedirect"


ISO_TABLE = {"RCVD": S.SUBMITTED, "PDNG": S.SUBMITTED, "ACTC": S.PENDING, "ACCP": S.PENDING, "ACSP": S.PENDING,
             "ACWC": S.PENDING, "ACWP": S.PENDING, "ACSC": S.COMPLETED, "RJCT": S.REJECTED, "CANC": S.CANCELLED}


def test_iso_status_table_pinned():
    assert pis.ISO_STATUSES == ISO_TABLE


@pytest.mark.parametrize(("iso", "status"), sorted(ISO_TABLE.items()))
def test_transfer_every_iso_status(iso, status):
    body = {"originalRequestInfo": {}, "consent": {"consentId": "pc-1", "consentRequestId": "cr-1"},
            "transfer": {"paymentId": "pay-1", "transactionStatus": iso}}
    assert pis.transfer(body) == ("pay-1", "pc-1", iso, status)


@pytest.mark.parametrize(("iso", "status"), sorted(ISO_TABLE.items()))
def test_payment_status_every_iso_status(iso, status):
    assert pis.payment_status({"payments": {"transactionStatus": iso}}) == (iso, status, None)


def test_payment_status_with_reason():
    assert pis.payment_status({"originalRequestInfo": {}, "payments": {"transactionStatus": "RJCT",
                                                                       "statusReasonCode": "AM04"}}) == \
        ("RJCT", S.REJECTED, "AM04")


@pytest.mark.parametrize("status", ["XXXX", "acsc", "", None, 5, ["ACSC"], {"code": "ACSC"}])
def test_unknown_or_non_string_status_is_a_bad_response(status):
    assert str(_bad(pis.payment_status, {"payments": {"transactionStatus": status}})) == \
        "ob-connect sent a payment status that is not an ISO 20022 status"
    body = {"consent": {"consentId": "pc-1"}, "transfer": {"paymentId": "pay-1", "transactionStatus": status}}
    assert str(_bad(pis.transfer, body)) == \
        "ob-connect sent a transfer without a known transactionStatus or its consentId"


@pytest.mark.parametrize("body", [None, {}, {"payments": None}, {"payments": "ACSC"}])
def test_payment_status_without_payments_is_a_bad_response(body):
    _bad(pis.payment_status, body)


@pytest.mark.parametrize("body", [
    None,
    {"consent": {"consentId": "pc-1"}},
    {"consent": {"consentId": "pc-1"}, "transfer": {"transactionStatus": "RCVD"}},
    {"consent": {"consentId": "pc-1"}, "transfer": {"paymentId": 7, "transactionStatus": "RCVD"}},
    {"transfer": {"paymentId": "pay-1", "transactionStatus": "RCVD"}},
    {"consent": {"consentRequestId": "cr-1"}, "transfer": {"paymentId": "pay-1", "transactionStatus": "RCVD"}},
    {"consent": "pc-1", "transfer": {"paymentId": "pay-1", "transactionStatus": "RCVD"}},
])
def test_transfer_missing_parts_is_a_bad_response(body):
    _bad(pis.transfer, body)


# --- errors -----------------------------------------------------------------------------------------------------------
def hub_body(code: str, recoverable: Any, source: str = "OBC", description: str = "what the hub says") -> dict:
    return {"Errors": {"Error": [{"Source": source, "ReasonCode": code, "Description": description,
                                  "Recoverable": recoverable, "Details": ""}]}}


# (HTTP, ReasonCode, Recoverable as UPSTREAM.md's table says) → (class, status, code, source)
ERROR_TABLE = [
    (400, "INVALID_REQUEST", False, GatewayRequestRejected, 502, "upstream_request_rejected", "gateway"),
    (400, "ASPSP_NOT_FOUND", False, InstitutionNotSupported, 422, "institution_not_supported", "institution"),
    (400, "SERVICE_NOT_SUPPORTED", False, InstitutionNotSupported, 422, "institution_not_supported", "institution"),
    (400, "CONSENT_NOT_FOUND", False, ConsentEndedUpstream, 403, "consent_revoked_upstream", "caller"),
    (400, "CONSENT_EXPIRED", False, ConsentEndedUpstream, 403, "consent_revoked_upstream", "caller"),
    (400, "CONSENT_INVALID", False, ConsentEndedUpstream, 403, "consent_revoked_upstream", "caller"),
    (400, "AUTHORIZATION_INVALID", False, AuthorisationRefused, 422, "authorisation_result_invalid", "caller"),
    (400, "PSU_REJECTED", False, ProviderRejected, 502, "provider_rejected", "provider"),
    (400, "PERMISSION_DENIED", False, ConsentNotActive, 403, "consent_not_active", "caller"),
    (400, "ACCOUNT_NOT_FOUND", False, AccountUnavailable, 410, "account_unavailable", "institution"),
    (400, "PAYMENT_NOT_FOUND", False, NotFound, 404, "not_found", "caller"),
    (400, "INVALID_PAYMENT", False, ProviderRejected, 502, "provider_rejected", "provider"),
    (401, "UNAUTHORIZED", False, GatewayCredentialsRejected, 502, "gateway_credentials_rejected", "gateway"),
    (401, "TIMESTAMP_OUT_OF_RANGE", False, GatewayCredentialsRejected, 502, "gateway_credentials_rejected", "gateway"),
    (401, "BODY_HASH_MISMATCH", False, GatewayCredentialsRejected, 502, "gateway_credentials_rejected", "gateway"),
    (401, "INVALID_SIGNATURE", False, GatewayCredentialsRejected, 502, "gateway_credentials_rejected", "gateway"),
    (401, "NONCE_REPLAYED", False, GatewayCredentialsRejected, 502, "gateway_credentials_rejected", "gateway"),
    (404, "NOT_FOUND", False, GatewayRequestRejected, 502, "upstream_request_rejected", "gateway"),
    (405, "METHOD_NOT_ALLOWED", False, GatewayRequestRejected, 502, "upstream_request_rejected", "gateway"),
    (429, "RATE_LIMITED", True, ProviderRateLimited, 503, "provider_rate_limited", "provider"),
    (500, "PROVIDER_ERROR", True, ProviderUnavailable, 502, "provider_unavailable", "provider"),
    (502, "PROVIDER_ERROR", True, ProviderUnavailable, 502, "provider_unavailable", "provider"),
    (503, "PROVIDER_ERROR", True, ProviderUnavailable, 502, "provider_unavailable", "provider"),
    (504, "PROVIDER_TIMEOUT", True, ProviderTimeout, 504, "provider_timeout", "provider"),
]


@pytest.mark.parametrize(("http", "reason", "recoverable", "cls", "status", "code", "source"), ERROR_TABLE,
                         ids=[f"{row[0]}-{row[1]}" for row in ERROR_TABLE])
def test_error_table(http, reason, recoverable, cls, status, code, source):
    body = hub_body(reason, recoverable, source="Gateway" if http == 401 else "OBC")
    err = obc.error_from_response(http, body, retry_after=None)
    assert type(err) is cls
    assert (err.status, err.code, err.source) == (status, code, source)
    assert err.retryable is recoverable
    assert err.provider_code == reason
    assert err.provider_body is body
    assert "(what the hub says)" in err.detail
    assert err.problem("req-1")["provider_code"] == reason


def test_hub_error():
    assert obc.hub_error(hub_body("INVALID_PAYMENT", False, description="amount has 3 decimals")) == \
        ("INVALID_PAYMENT", "amount has 3 decimals", False)
    assert obc.hub_error({"Errors": {"Error": [{"ReasonCode": "X"}]}}) == ("X", "", None)
    assert obc.hub_error({"Errors": {"Error": [{"Recoverable": "true"}]}}) == (None, "", None)
    for body in (None, "<html>", [], {}, {"Errors": None}, {"Errors": {"Error": []}}, {"Errors": {"Error": ["x"]}},
                 {"error": "ticket already used"}):
        assert obc.hub_error(body) == (None, "", None)


@pytest.mark.parametrize(("http", "reason", "recoverable", "cls"), [
    (400, "INVALID_PAYMENT", True, ProviderRejected),
    (400, "CONSENT_EXPIRED", True, ConsentEndedUpstream),
    (401, "INVALID_SIGNATURE", True, GatewayCredentialsRejected),
    (429, "RATE_LIMITED", False, ProviderRateLimited),
    (500, "PROVIDER_ERROR", False, ProviderUnavailable),
    (504, "PROVIDER_TIMEOUT", False, ProviderTimeout),
])
def test_recoverable_overrides_retryable(http, reason, recoverable, cls):
    default = cls.retryable
    err = obc.error_from_response(http, hub_body(reason, recoverable), retry_after=None)
    assert type(err) is cls and err.retryable is recoverable and default is not recoverable
    assert err.problem(None)["retryable"] is recoverable
    assert cls.retryable is default  # an instance override, the class keeps its default


@pytest.mark.parametrize("recoverable", [None, "true", 1, "false"])
def test_recoverable_that_is_not_a_boolean_keeps_the_class_default(recoverable):
    assert obc.error_from_response(400, hub_body("INVALID_PAYMENT", recoverable), retry_after=None).retryable is False
    assert obc.error_from_response(500, hub_body("PROVIDER_ERROR", recoverable), retry_after=None).retryable is True


def test_401_is_credentials_rejected_whatever_the_body():
    for body in (None, {}, hub_body("CONSENT_EXPIRED", False), hub_body("INVALID_REQUEST", False)):
        err = obc.error_from_response(401, body, retry_after=None)
        assert type(err) is GatewayCredentialsRejected and err.code == "gateway_credentials_rejected"
    assert obc.error_from_response(401, None, retry_after=None).provider_code == "http_401"


def test_429_carries_retry_after():
    err = obc.error_from_response(429, hub_body("RATE_LIMITED", True), retry_after=7.5)
    assert type(err) is ProviderRateLimited and err.retry_after == 7.5
    assert err.problem("r")["retry_after"] == 7.5
    assert obc.error_from_response(429, None, retry_after=None).retry_after is None
    assert obc.error_from_response(400, hub_body("INVALID_PAYMENT", False), retry_after=3).retry_after is None


def test_504_is_a_timeout_whatever_the_reason_code():
    for body in (None, hub_body("PROVIDER_ERROR", True), hub_body("INVALID_REQUEST", False)):
        err = obc.error_from_response(504, body, retry_after=None)
        assert type(err) is ProviderTimeout and err.code == "provider_timeout" and err.status == 504


@pytest.mark.parametrize(("http", "cls", "retryable"), [
    (400, ProviderRejected, False), (403, ProviderRejected, False), (404, GatewayRequestRejected, False),
    (409, ProviderRejected, False), (401, GatewayCredentialsRejected, False), (429, ProviderRateLimited, True),
    (500, ProviderUnavailable, True), (502, ProviderUnavailable, True), (503, ProviderUnavailable, True),
    (504, ProviderTimeout, True),
])
@pytest.mark.parametrize("body", [None, "<html>Bad Gateway</html>", {"error": "x"}, {"Errors": {"Error": []}}])
def test_error_without_the_hub_body_goes_by_http_status(http, cls, retryable, body):
    err = obc.error_from_response(http, body, retry_after=None)
    assert type(err) is cls and err.retryable is retryable
    assert err.provider_code == f"http_{http}"
    assert err.provider_body == body
    assert str(http) in err.detail or http in (401, 429, 504)


def test_unknown_reason_code_is_provider_rejected():
    err = obc.error_from_response(400, hub_body("SOMETHING_NEW", False), retry_after=None)
    assert type(err) is ProviderRejected and err.provider_code == "SOMETHING_NEW"
    assert err.detail == "ob-connect refused the request (HTTP 400) (what the hub says)."
