"""adapters.stripe_uk.translate: Open Banking UK v3.1.2 payloads (shaped like the spec and the simulator's views)
into canonical models, request bodies, and OB error bodies into canonical errors."""
from __future__ import annotations

import copy
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from adapters.stripe_uk import translate as t
from gateway.errors import (
    ConsentEndedUpstream,
    ConsentNotActive,
    GatewayCredentialsRejected,
    GatewayRequestRejected,
    NotFound,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from gateway.ids import IdMinter
from gateway.models import AccountType, BalanceType, Money, PaymentCoordinates, PostalAddress, TransactionStatus

UTC = timezone.utc
IDS = IdMinter(b"k" * 32, "tenant", "con_x")
TXN_ID = re.compile(r"^txn_[a-z0-9]+$")

ACCOUNT = {"AccountId": "acc-1001-current", "Status": "Enabled", "StatusUpdateDateTime": "2021-03-15T09:30:00+00:00",
           "Currency": "GBP", "AccountType": "Personal", "AccountSubType": "CurrentAccount",
           "Nickname": "Everyday", "Account": [{"SchemeName": "UK.OBIE.SortCodeAccountNumber",
                                                "Identification": "04007512345678", "Name": "Olivia Bennett"}],
           "Servicer": {"SchemeName": "UK.OBIE.BICFI", "Identification": "SRLGGB2L"}}


def _accounts(*rows: dict) -> dict:
    return {"Data": {"Account": list(rows)}, "Links": {"Self": "https://x/accounts"}, "Meta": {"TotalPages": 1}}


def _balance(kind: str, amount: str, indicator: str = "Credit", currency: str = "GBP") -> dict:
    return {"AccountId": "acc-1", "CreditDebitIndicator": indicator, "Type": kind,
            "DateTime": "2024-05-01T10:00:00+00:00", "Amount": {"Amount": amount, "Currency": currency}}


def _txn(ref: str, amount: str = "12.30", indicator: str = "Debit", status: str = "Booked", **extra: object) -> dict:
    row = {"AccountId": "acc-1", "TransactionId": ref, "Amount": {"Amount": amount, "Currency": "GBP"},
           "CreditDebitIndicator": indicator, "Status": status, "BookingDateTime": "2024-04-30T13:45:00+01:00",
           "BankTransactionCode": {"Code": "IssuedCreditTransfers", "SubCode": "AutomaticTransfer"},
           "ProprietaryBankTransactionCode": {"Code": "CARD", "Issuer": "Stripe"}}
    row.update(extra)
    return row


def _txns(*rows: dict, links: dict | None = None) -> dict:
    return {"Data": {"Transaction": list(rows)}, "Links": links or {"Self": "https://x"}, "Meta": {"TotalPages": 1}}


# --- permissions and consent body ------------------------------------------------------------------------------------
def test_permission_mapping() -> None:
    assert t.ob_permissions(("accounts",)) == ["ReadAccountsBasic"]
    assert t.ob_permissions(("details",)) == ["ReadAccountsDetail"]
    assert t.ob_permissions(("accounts", "balances", "transactions", "owner")) == [
        "ReadAccountsBasic", "ReadBalances", "ReadTransactionsBasic", "ReadTransactionsDetail",
        "ReadTransactionsCredits", "ReadTransactionsDebits", "ReadParty"]


def test_accounts_basic_added_when_no_account_permission() -> None:
    assert t.ob_permissions(("balances",)) == ["ReadAccountsBasic", "ReadBalances"]
    out = t.ob_permissions(("transactions",))
    assert out[0] == "ReadAccountsBasic"
    assert "ReadTransactionsDebits" in out and "ReadTransactionsCredits" in out


def test_accounts_basic_not_added_with_detail() -> None:
    assert t.ob_permissions(("details", "balances")) == ["ReadAccountsDetail", "ReadBalances"]


def test_permissions_not_duplicated() -> None:
    out = t.ob_permissions(("accounts", "accounts", "balances", "balances"))
    assert out == ["ReadAccountsBasic", "ReadBalances"]


def test_consent_body_formats() -> None:
    body = t.consent_body(("accounts", "transactions"),
                          expires_at=datetime(2024, 8, 1, 12, 30, tzinfo=timezone(timedelta(hours=1))),
                          transactions_from=date(2024, 1, 1), transactions_to=date(2024, 6, 30))
    data = body["Data"]
    assert body["Risk"] == {}
    assert data["ExpirationDateTime"] == "2024-08-01T11:30:00Z"
    assert data["TransactionFromDateTime"] == "2024-01-01T00:00:00Z"
    assert data["TransactionToDateTime"] == "2024-06-30T23:59:59Z"
    assert data["Permissions"][0] == "ReadAccountsBasic"


def test_consent_body_without_dates() -> None:
    body = t.consent_body(("balances",), expires_at=None, transactions_from=None, transactions_to=None)
    assert body == {"Data": {"Permissions": ["ReadAccountsBasic", "ReadBalances"]}, "Risk": {}}


def test_consent_body_expiry_in_utc_without_offset() -> None:
    body = t.consent_body(("accounts",), expires_at=datetime(2024, 8, 1, 0, 0, tzinfo=UTC),
                          transactions_from=None, transactions_to=None)
    assert body["Data"]["ExpirationDateTime"] == "2024-08-01T00:00:00Z"


# --- accounts ---------------------------------------------------------------------------------------------------------
def test_account_detail() -> None:
    [account] = t.accounts(_accounts(ACCOUNT), consent_id="con_x", ids=IDS)
    assert account.id == IDS.account("acc-1001-current")
    assert account.provider == "stripe-uk"
    assert account.provider_ref == "acc-1001-current"
    assert account.consent_id == "con_x"
    assert account.type is AccountType.CHECKING
    assert account.currency == "GBP"
    assert account.name == "Everyday"
    assert account.masked_number == "••••5678"
    assert "04007512345678" not in account.masked_number
    assert account.status == "enabled"
    assert account.extra["account_sub_type"] == "CurrentAccount"
    assert account.extra["identifiers"][0]["scheme"] == "UK.OBIE.SortCodeAccountNumber"


def test_account_ids_are_stable() -> None:
    first = t.accounts(_accounts(ACCOUNT), consent_id="con_x", ids=IDS)[0].id
    second = t.accounts(_accounts(ACCOUNT), consent_id="con_x", ids=IdMinter(b"k" * 32, "tenant", "con_x"))[0].id
    assert first == second
    assert first != t.accounts(_accounts(ACCOUNT), consent_id="con_x",
                               ids=IdMinter(b"k" * 32, "other", "con_x"))[0].id


@pytest.mark.parametrize("sub_type, expected", [
    ("CurrentAccount", AccountType.CHECKING), ("Savings", AccountType.SAVINGS),
    ("CreditCard", AccountType.CREDIT_CARD), ("ChargeCard", AccountType.CREDIT_CARD), ("Loan", AccountType.LOAN),
    ("Mortgage", AccountType.MORTGAGE), ("EMoney", AccountType.CHECKING), ("PrePaidCard", AccountType.OTHER),
    ("SomethingNew", AccountType.OTHER), (None, AccountType.OTHER),
])
def test_account_types(sub_type: str | None, expected: AccountType) -> None:
    row = dict(ACCOUNT, AccountSubType=sub_type)
    if sub_type is None:
        del row["AccountSubType"]
    assert t.accounts(_accounts(row), consent_id="con_x", ids=IDS)[0].type is expected


def test_account_basic_permission_no_identifiers() -> None:
    row = {k: v for k, v in ACCOUNT.items() if k not in ("Account", "Servicer")}
    [account] = t.accounts(_accounts(row), consent_id="con_x", ids=IDS)
    assert account.masked_number is None
    assert account.name == "Everyday"
    assert account.extra["identifiers"] == []


def test_account_name_falls_back_to_holder_then_default() -> None:
    row = {k: v for k, v in ACCOUNT.items() if k != "Nickname"}
    assert t.accounts(_accounts(row), consent_id="c", ids=IDS)[0].name == "Olivia Bennett"
    row = {k: v for k, v in ACCOUNT.items() if k not in ("Nickname", "Account")}
    assert t.accounts(_accounts(row), consent_id="c", ids=IDS)[0].name == "Account"


def test_account_short_identification_not_masked_further() -> None:
    row = dict(ACCOUNT, Account=[{"SchemeName": "UK.OBIE.Wallet", "Identification": "123"}])
    assert t.accounts(_accounts(row), consent_id="c", ids=IDS)[0].masked_number == "123"


def test_account_iban_masked() -> None:
    row = dict(ACCOUNT, Account=[{"SchemeName": "UK.OBIE.IBAN", "Identification": "GB33SRLG04007512345678"}])
    assert t.accounts(_accounts(row), consent_id="c", ids=IDS)[0].masked_number == "••••5678"


@pytest.mark.parametrize("missing", ["AccountId", "Currency"])
def test_account_missing_required_field(missing: str) -> None:
    row = {k: v for k, v in ACCOUNT.items() if k != missing}
    with pytest.raises(ProviderBadResponse):
        t.accounts(_accounts(row), consent_id="c", ids=IDS)


@pytest.mark.parametrize("body", [{}, {"Data": {}}, {"Data": {"Account": "x"}}, None, []])
def test_accounts_malformed_body(body: object) -> None:
    with pytest.raises(ProviderBadResponse):
        t.accounts(body, consent_id="c", ids=IDS)


def test_accounts_empty_and_non_dict_rows_skipped() -> None:
    assert t.accounts(_accounts(), consent_id="c", ids=IDS) == []
    assert len(t.accounts({"Data": {"Account": ["junk", ACCOUNT]}}, consent_id="c", ids=IDS)) == 1


# --- balances ---------------------------------------------------------------------------------------------------------
def test_balances_available_and_current() -> None:
    body = {"Data": {"Balance": [_balance("InterimAvailable", "1234.50"), _balance("InterimBooked", "1200.00")]}}
    out = t.balances(body, account_id="acc_1")
    by_type = {b.type: b for b in out}
    assert set(by_type) == {BalanceType.AVAILABLE, BalanceType.CURRENT}
    assert by_type[BalanceType.AVAILABLE].amount == Money(Decimal("1234.50"), "GBP")
    assert str(by_type[BalanceType.AVAILABLE].amount.amount) == "1234.50"
    assert str(by_type[BalanceType.CURRENT].amount.amount) == "1200.00"
    assert by_type[BalanceType.CURRENT].as_of == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert all(b.live and b.account_id == "acc_1" for b in out)


def test_balance_debit_is_negative() -> None:
    body = {"Data": {"Balance": [_balance("InterimBooked", "45.67", "Debit")]}}
    [balance] = t.balances(body, account_id="a")
    assert balance.type is BalanceType.CURRENT
    assert balance.amount.amount == Decimal("-45.67")
    assert str(balance.amount.amount) == "-45.67"


def test_balance_decimal_exactness() -> None:
    body = {"Data": {"Balance": [_balance("InterimAvailable", "0.10"), _balance("InterimBooked", "99999999.99")]}}
    out = {b.type: b.amount.amount for b in t.balances(body, account_id="a")}
    assert str(out[BalanceType.AVAILABLE]) == "0.10"
    assert str(out[BalanceType.CURRENT]) == "99999999.99"


def test_balance_preference_order() -> None:
    body = {"Data": {"Balance": [_balance("ClosingBooked", "1.00"), _balance("InterimBooked", "2.00"),
                                 _balance("Expected", "3.00"), _balance("InterimAvailable", "4.00")]}}
    out = {b.type: b.amount.amount for b in t.balances(body, account_id="a")}
    assert out == {BalanceType.AVAILABLE: Decimal("4.00"), BalanceType.CURRENT: Decimal("2.00")}


def test_balance_only_available() -> None:
    body = {"Data": {"Balance": [_balance("ClosingAvailable", "5.00")]}}
    assert [b.type for b in t.balances(body, account_id="a")] == [BalanceType.AVAILABLE]


def test_balances_unknown_types_only() -> None:
    body = {"Data": {"Balance": [_balance("PreviouslyClosedBooked", "5.00"), _balance("Information", "1.00")]}}
    with pytest.raises(ProviderBadResponse):
        t.balances(body, account_id="a")
    with pytest.raises(ProviderBadResponse):
        t.balances({"Data": {"Balance": []}}, account_id="a")


@pytest.mark.parametrize("amount", [{"Amount": "abc", "Currency": "GBP"}, {"Amount": "1.00", "Currency": "GB"},
                                    {"Amount": "NaN", "Currency": "GBP"}, {"Currency": "GBP"}, None])
def test_balance_bad_amount(amount: object) -> None:
    row = _balance("InterimBooked", "1.00")
    row["Amount"] = amount
    with pytest.raises(ProviderBadResponse):
        t.balances({"Data": {"Balance": [row]}}, account_id="a")


# --- transactions -----------------------------------------------------------------------------------------------------
def test_transactions_booked_and_signs() -> None:
    body = _txns(_txn("T1", "12.30", "Debit", TransactionInformation="Tesco", MerchantDetails={"MerchantName": "T"}),
                 _txn("T2", "2500.00", "Credit", TransactionReference="SALARY"))
    out = t.transactions(body, account_id="acc_1", ids=IDS, include_pending=True)
    assert [x.provider_ref for x in out] == ["T1", "T2"]
    assert out[0].amount == Money(Decimal("-12.30"), "GBP") and str(out[0].amount.amount) == "-12.30"
    assert out[1].amount == Money(Decimal("2500.00"), "GBP")
    assert out[0].status is TransactionStatus.BOOKED
    assert out[0].booked_at == datetime(2024, 4, 30, 12, 45, tzinfo=UTC)
    assert out[0].transaction_date == date(2024, 4, 30)
    assert out[0].description == "Tesco"
    assert out[0].category == "IssuedCreditTransfers"
    assert out[1].memo == "SALARY"
    assert out[0].account_id == "acc_1"


def test_transaction_description_falls_back_to_merchant() -> None:
    body = _txns(_txn("T1", MerchantDetails={"MerchantName": "Pret"}), _txn("T2"))
    out = t.transactions(body, account_id="a", ids=IDS, include_pending=True)
    assert out[0].description == "Pret"
    assert out[1].description == ""


def test_pending_included_or_skipped() -> None:
    body = _txns(_txn("P1", status="Pending"), _txn("B1"))
    with_pending = t.transactions(body, account_id="a", ids=IDS, include_pending=True)
    assert [x.status for x in with_pending] == [TransactionStatus.PENDING, TransactionStatus.BOOKED]
    assert with_pending[0].booked_at is None
    assert with_pending[1].booked_at is not None
    without = t.transactions(body, account_id="a", ids=IDS, include_pending=False)
    assert [x.provider_ref for x in without] == ["B1"]


@pytest.mark.parametrize("ref", ["T1", "txn-2024-04-30-ABC", "ABCdef-123_x", "a b/c", "ÜNÎ-ÇØDÉ", "x" * 200])
def test_transaction_ids_stable_and_well_formed(ref: str) -> None:
    body = _txns(_txn(ref))
    first = t.transactions(body, account_id="acc_1", ids=IDS, include_pending=True)[0].id
    again = t.transactions(copy.deepcopy(body), account_id="acc_1",
                           ids=IdMinter(b"k" * 32, "tenant", "con_x"), include_pending=True)[0].id
    assert first == again
    assert TXN_ID.match(first), first


def test_transaction_ids_distinct() -> None:
    body = _txns(_txn("A-1"), _txn("a-1"), _txn("A1"), _txn("A-1-"))
    ids = [x.id for x in t.transactions(body, account_id="acc_1", ids=IDS, include_pending=True)]
    assert len(set(ids)) == 4
    other_account = t.transactions(_txns(_txn("A-1")), account_id="acc_2", ids=IDS, include_pending=True)[0].id
    assert other_account != ids[0]
    other_tenant = t.transactions(_txns(_txn("A-1")), account_id="acc_1",
                                  ids=IdMinter(b"k" * 32, "other", "con_x"), include_pending=True)[0].id
    assert other_tenant != ids[0]


def test_transaction_reference_used_when_no_id() -> None:
    row = _txn("x", TransactionReference="REF-9")
    del row["TransactionId"]
    [txn] = t.transactions(_txns(row), account_id="a", ids=IDS, include_pending=True)
    assert txn.provider_ref == "REF-9"


def test_transaction_without_any_id() -> None:
    row = _txn("x")
    del row["TransactionId"]
    with pytest.raises(ProviderBadResponse):
        t.transactions(_txns(row), account_id="a", ids=IDS, include_pending=True)


def test_transactions_malformed() -> None:
    with pytest.raises(ProviderBadResponse):
        t.transactions({"Data": {}}, account_id="a", ids=IDS, include_pending=True)
    with pytest.raises(ProviderBadResponse):
        t.transactions(_txns(_txn("x", Amount={"Amount": "1,00", "Currency": "GBP"})), account_id="a", ids=IDS,
                       include_pending=True)


def test_booking_window() -> None:
    assert t.booking_window(date(2024, 1, 1), date(2024, 1, 31)) == {
        "fromBookingDateTime": "2024-01-01T00:00:00", "toBookingDateTime": "2024-01-31T23:59:59"}


def test_next_link() -> None:
    assert t.next_link(_txns(links={"Self": "s", "Next": "https://x?page=2"})) == "https://x?page=2"
    assert t.next_link(_txns(links={"Self": "s"})) is None
    assert t.next_link(_txns(links={"Next": ""})) is None
    assert t.next_link({"Data": {}}) is None
    assert t.next_link({"Links": None}) is None
    assert t.next_link(None) is None


# --- payment coordinates -------------------------------------------------------------------------------------------
def test_coordinates_sort_code() -> None:
    details = t.payment_coordinates(_accounts(ACCOUNT), account_id="acc_1")
    assert details.account_id == "acc_1"
    assert details.coordinates == (PaymentCoordinates(scheme="uk_sort_code", sort_code="040075",
                                                      account_number="12345678"),)


def test_coordinates_iban_and_wallet() -> None:
    row = dict(ACCOUNT, Account=[{"SchemeName": "UK.OBIE.IBAN", "Identification": "GB33 SRLG 0400 7512 3456 78"},
                                 {"SchemeName": "UK.OBIE.Wallet", "Identification": "wallet-77"}])
    details = t.payment_coordinates(_accounts(row), account_id="a")
    assert details.coordinates == (PaymentCoordinates(scheme="iban", iban="GB33SRLG04007512345678"),
                                   PaymentCoordinates(scheme="wallet", account_number="wallet-77"))


@pytest.mark.parametrize("identifier", [
    {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "0400751234567"},    # 13 digits
    {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "04-00-75-12345678"},
    {"SchemeName": "UK.OBIE.SortCodeAccountNumber", "Identification": "04007512345A78"},
    {"SchemeName": "UK.OBIE.IBAN", "Identification": ""},
    {"SchemeName": "UK.OBIE.IBAN"},
    {"SchemeName": "UK.OBIE.Wallet", "Identification": ""},
    {"SchemeName": "UK.OBIE.PAN", "Identification": "5409050000000000"},
    {"Identification": "04007512345678"},
])
def test_coordinates_malformed_skipped(identifier: dict) -> None:
    row = dict(ACCOUNT, Account=[identifier, ACCOUNT["Account"][0]])
    details = t.payment_coordinates(_accounts(row), account_id="a")
    assert [c.scheme for c in details.coordinates] == ["uk_sort_code"]


def test_coordinates_non_object_identifier_skipped() -> None:
    row = dict(ACCOUNT, Account=["04007512345678", ACCOUNT["Account"][0]])
    details = t.payment_coordinates(_accounts(row), account_id="a")
    assert [c.scheme for c in details.coordinates] == ["uk_sort_code"]


def test_coordinates_without_identifiers() -> None:
    row = {k: v for k, v in ACCOUNT.items() if k != "Account"}
    assert t.payment_coordinates(_accounts(row), account_id="a").coordinates == ()
    with pytest.raises(ProviderBadResponse):
        t.payment_coordinates({"Data": {}}, account_id="a")


# --- owner ------------------------------------------------------------------------------------------------------------
PARTY = {"PartyId": "PXSIF023", "PartyNumber": "0000007", "PartyType": "Sole", "Name": "Olivia Bennett",
         "FullLegalName": "Olivia Jane Bennett", "EmailAddress": "olivia@example.com", "Mobile": "+44-7700900123",
         "Address": [{"AddressType": "Residential", "BuildingNumber": "27", "StreetName": "Acacia Avenue",
                      "TownName": "Manchester", "PostCode": "M1 4BT", "Country": "GB"}]}


def test_owner_from_simulator_shape() -> None:
    owner = t.owner({"Data": {"Party": PARTY}}, account_id="acc_1")
    assert owner.account_id == "acc_1"
    assert owner.names == ("Olivia Jane Bennett",)
    assert owner.emails == ("olivia@example.com",)
    assert owner.phones == ("+44-7700900123",)
    assert owner.addresses == (PostalAddress(lines=("27 Acacia Avenue",), city="Manchester", region=None,
                                             postal_code="M1 4BT", country="GB"),)


def test_owner_name_fallback_and_list_of_parties() -> None:
    first = {k: v for k, v in PARTY.items() if k != "FullLegalName"}
    second = {"Name": "Rahul Mistry", "Phone": "+44-2079460000", "Mobile": "+44-7700900999",
              "Address": [{"AddressLine": ["Flat 2", "1 High St"], "TownName": "Leeds",
                           "CountrySubDivision": "West Yorkshire", "PostCode": "LS1 1AA", "Country": "GB"},
                          {"StreetName": "Mill Lane", "AddressLine": ["Unit 4"]}]}
    owner = t.owner({"Data": {"Party": [first, "junk", second]}}, account_id="a")
    assert owner.names == ("Olivia Bennett", "Rahul Mistry")
    assert owner.phones == ("+44-7700900123", "+44-2079460000", "+44-7700900999")
    assert owner.emails == ("olivia@example.com",)
    assert owner.addresses[1] == PostalAddress(lines=("Flat 2", "1 High St"), city="Leeds", region="West Yorkshire",
                                               postal_code="LS1 1AA", country="GB")
    assert owner.addresses[2].lines == ("Mill Lane", "Unit 4")


def test_owner_without_name_or_party() -> None:
    with pytest.raises(ProviderBadResponse):
        t.owner({"Data": {"Party": {"EmailAddress": "x@example.com"}}}, account_id="a")
    with pytest.raises(ProviderBadResponse):
        t.owner({"Data": {}}, account_id="a")


# --- errors -----------------------------------------------------------------------------------------------------------
def _ob_error(code: str, message: str = "m", status_code: str = "400") -> bytes:
    return orjson.dumps({"Code": status_code, "Id": "e1", "Message": "failed",
                         "Errors": [{"ErrorCode": code, "Message": message, "Path": "Data.Permissions"}]})


def test_invalid_consent_status_is_consent_ended() -> None:
    exc = t.error_from_response(403, _ob_error("UK.OBIE.Resource.InvalidConsentStatus"), retry_after=None)
    assert type(exc) is ConsentEndedUpstream
    assert exc.provider_code == "UK.OBIE.Resource.InvalidConsentStatus"
    assert exc.provider_body["Errors"][0]["ErrorCode"] == "UK.OBIE.Resource.InvalidConsentStatus"
    exc = t.error_from_response(400, _ob_error("UK.OBIE.Resource.ConsentMismatch"), retry_after=None)
    assert type(exc) is ConsentEndedUpstream


def test_resource_not_found() -> None:
    exc = t.error_from_response(400, _ob_error("UK.OBIE.Resource.NotFound"), retry_after=None)
    assert type(exc) is NotFound and exc.status == 404
    assert type(t.error_from_response(404, b"", retry_after=None)) is NotFound


def test_field_missing_is_gateway_request_rejected() -> None:
    exc = t.error_from_response(400, _ob_error("UK.OBIE.Field.Missing"), retry_after=None)
    assert type(exc) is GatewayRequestRejected
    assert exc.retryable is False
    assert "UK.OBIE.Field.Missing" in exc.detail
    for code in ("UK.OBIE.Header.Invalid", "UK.OBIE.Unsupported.Scheme"):
        assert type(t.error_from_response(400, _ob_error(code), retry_after=None)) is GatewayRequestRejected


def test_401_is_credentials_rejected() -> None:
    exc = t.error_from_response(401, orjson.dumps({"error": "invalid_token"}), retry_after=None)
    assert type(exc) is GatewayCredentialsRejected
    assert exc.retryable is False
    assert exc.provider_code == "invalid_token"


def test_403_other_is_consent_not_active() -> None:
    exc = t.error_from_response(403, _ob_error("UK.OBIE.Reauthenticate"), retry_after=None)
    assert type(exc) is ConsentNotActive
    assert type(t.error_from_response(403, b"", retry_after=None)) is ConsentNotActive


def test_429_rate_limited() -> None:
    exc = t.error_from_response(429, b"", retry_after=7.0)
    assert type(exc) is ProviderRateLimited
    assert exc.retry_after == 7.0
    assert exc.provider_code == "http_429"
    assert exc.retryable is True


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_unavailable_retryable(status: int) -> None:
    exc = t.error_from_response(status, _ob_error("UK.OBIE.UnexpectedError", status_code=str(status)),
                                retry_after=None)
    assert type(exc) is ProviderUnavailable
    assert exc.retryable is True
    assert exc.provider_code == "UK.OBIE.UnexpectedError"


def test_non_json_body() -> None:
    exc = t.error_from_response(502, b"<html>Bad gateway</html>", retry_after=None)
    assert type(exc) is ProviderUnavailable
    assert exc.provider_code == "http_502" and exc.provider_body is None
    exc = t.error_from_response(400, b"not json", retry_after=None)
    assert type(exc) is ProviderRejected
    assert exc.provider_code == "http_400" and exc.retryable is False


def test_other_4xx_provider_rejected() -> None:
    exc = t.error_from_response(400, _ob_error("UK.OBIE.Rules.AfterCutOffDateTime"), retry_after=None)
    assert type(exc) is ProviderRejected
    assert exc.provider_code == "UK.OBIE.Rules.AfterCutOffDateTime"


def test_ob_error_code() -> None:
    assert t.ob_error_code(_ob_error("UK.OBIE.Field.Invalid"))[0] == "UK.OBIE.Field.Invalid"
    assert t.ob_error_code(orjson.dumps({"error": "invalid_grant"}))[0] == "invalid_grant"
    assert t.ob_error_code(b"") == (None, None)
    assert t.ob_error_code(b"[1,2]") == (None, [1, 2])
    assert t.ob_error_code(orjson.dumps({"Errors": [{"Message": "no code"}, "x"]}))[0] is None
